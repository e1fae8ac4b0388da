"""GaraPredictor: set an image once (the gated, merged encoder runs once), then prompt any number of objects.

The model runs in PyTorch or, exported to ONNX, in onnxruntime (`backend`, gara_model/backends.py); everything here
(the numpy API, prompt checks, resizing and mask post-processing) is the same for both."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from gara_model.adapters.gates import GateSummary, summaries_from_table
from gara_model.backends import BACKENDS, OnnxRuntimeBackend, TorchBackend, model_fingerprint, sam_onnx_prompts
from gara_model.build import build_from_files, model_description
from gara_model.device import autocast, resolve_device
from gara_model.prompts import ObjectPrompt, validate_prompt


@dataclass
class Prediction:
    """Per-object outputs, in the order of the prompts. O objects, C masks each (1, or 3 with multimask)."""

    masks: np.ndarray  # O x C x H x W bool, at the original image size
    iou_scores: np.ndarray  # O x C float32, the decoder's predicted IoU
    low_res_logits: np.ndarray  # O x C x h x w float32 (h = w = 4 x the embedding grid)
    gates: GateSummary | None  # the image's adapter decisions; None for a model without adapters


# Objects per decoder call: the largest per-call tensor stays under this many bytes. On the CPU, glibc serves
# larger blocks by fresh mmap pages that the kernel zeroes on every call; ViT-B's decoder measured 1.3-1.4x faster in
# pairs of objects than with 16 at once (docs/benchmarks.md). On CUDA the bound only caps memory. Results do not
# depend on it.
CHUNK_BYTES = {"cpu": 16 * 2**20, "cuda": 512 * 2**20}


class GaraPredictor:
    """SamPredictor's workflow for GaRA-SAM (or plain SAM): `set_image` once, `predict` many objects at once."""

    def __init__(
        self,
        model: Sam,
        device: str | torch.device = "auto",
        precision: str = "auto",
        compile: bool = False,
        backend: str = "torch",
        onnx_dir: str | os.PathLike | None = None,
    ) -> None:
        """backend: "torch" runs `model`; "onnxruntime" runs its ONNX export in `onnx_dir` (None: exported once into
        the cache, `export.cached_export`), on CUDA or TensorRT where the installed onnxruntime has them and
        `device` is CUDA; `model` is then not moved to `device` (it supplies the host-side geometry only) and the
        files must hold its weights. compile: `torch.compile` the image encoder and the decoder (torch backend;
        the first image and the first call per prompt layout then take long to compile; see docs/benchmarks.md
        for what it gains). `chunk_bytes` (CHUNK_BYTES of the device type) bounds the decoder's per-call tensors
        by splitting the objects."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.device = resolve_device(device)
        self.precision = precision
        autocast(self.device, precision)  # validates the precision name now, not at the first image
        if backend == "torch":
            self.model = model.to(self.device).eval()
            self.backend = TorchBackend(self.model, self.device, precision, compile)
        else:
            if compile:
                raise ValueError("compile applies to the torch backend; the onnxruntime backend runs exported files")
            if precision == "bf16":
                raise ValueError("precision bf16: the onnxruntime backend runs fp32 or fp16 files (or 'auto')")
            self.model = model.eval()
            if onnx_dir is None:
                from gara_model.export import cached_export

                fp16 = precision == "fp16" or (precision == "auto" and self.device.type == "cuda")
                onnx_dir = cached_export(self.model, "fp16" if fp16 else "fp32")
            self.backend = OnnxRuntimeBackend(onnx_dir, model_fingerprint(self.model), self.device, precision,
                                              explicit_device=str(device) != "auto")
        self.transform = ResizeLongestSide(model.image_encoder.img_size)
        self.chunk_bytes = CHUNK_BYTES.get(self.device.type, CHUNK_BYTES["cuda"])
        self.reset_image()

    @classmethod
    def from_files(
        cls,
        sam_variant: str | None = None,
        checkpoint: str | os.PathLike | None = None,
        adapter: str | os.PathLike | None = None,
        device: str | torch.device = "auto",
        precision: str = "auto",
        image_size: int | None = None,
        compile: bool = False,
        backend: str = "torch",
        onnx_dir: str | os.PathLike | None = None,
    ) -> "GaraPredictor":
        """The model `build.build_from_files` makes of SAM `checkpoint` of `sam_variant` (None: vit_b) and an optional
        `adapter` file; without a checkpoint the embedded tiny SAM (with its shipped GaRA adapter unless `adapter`
        is given); adapter="none" (`build.NO_ADAPTER`) is plain SAM in every case. image_size: the encoder's input
        size (None = the adapter's, else the model's native one); masks stay at the image's own size. compile,
        backend, onnx_dir: as in `GaraPredictor`.
        """
        model = build_from_files(sam_variant, checkpoint, adapter, image_size)
        return cls(model, device=device, precision=precision, compile=compile, backend=backend, onnx_dir=onnx_dir)

    @property
    def model_name(self) -> str:
        return model_description(self.model)

    def reset_image(self) -> None:
        self.features: torch.Tensor | None = None
        self.gates: GateSummary | None = None
        self.original_size: tuple[int, int] | None = None
        self.input_size: tuple[int, int] | None = None

    @torch.no_grad()
    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """image: H x W x 3 uint8 in `image_format` ("RGB" or "BGR"). Runs the image encoder once."""
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"image must be an H x W x 3 uint8 array, got {got}")
        if image_format == "BGR":
            image = image[..., ::-1]
        resized = self.transform.apply_image(np.ascontiguousarray(image))
        tensor = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
        self.set_torch_image(tensor, image.shape[:2])

    @torch.no_grad()
    def set_torch_image(self, transformed_image: torch.Tensor, original_size: tuple[int, int]) -> None:
        """transformed_image: 1 x 3 x H x W, longest side resized to the encoder's input size (ResizeLongestSide)."""
        self.reset_image()
        image = self.model.preprocess(transformed_image.to(self.model.device).float())  # 1 x 3 x S x S
        self.features, table = self.backend.encode(image)
        self.gates = summaries_from_table(table, self.backend.gate_columns)[0] if table is not None else None
        self.original_size = tuple(original_size)
        self.input_size = tuple(transformed_image.shape[-2:])

    @torch.no_grad()
    def predict(
        self,
        objects: list[ObjectPrompt],
        multimask_output: bool = False,
        mask_threshold: float | None = None,
    ) -> Prediction:
        """All objects decoded in batches of equal prompt layout (same number of points, box or not, mask input or
        not)."""
        if self.features is None:
            raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")
        if not objects:
            raise ValueError("objects is empty: give at least one ObjectPrompt")
        prompts = [validate_prompt(p, i, self.original_size) for i, p in enumerate(objects)]
        mask_size = tuple(self.model.prompt_encoder.mask_input_size)
        for p in prompts:
            if p.mask_input is not None and p.mask_input.shape != mask_size:
                raise ValueError(f"object {p.object_id!r}: mask_input is {p.mask_input.shape[0]} x "
                                 f"{p.mask_input.shape[1]}, this model takes {mask_size[0]} x {mask_size[1]}")
        groups: dict[tuple[int, bool, bool], list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault((len(p.points), p.box is not None, p.mask_input is not None), []).append(i)
        low_res = [None] * len(prompts)
        scores = [None] * len(prompts)
        for (num_points, has_box, has_mask), members in groups.items():
            coords = labels = boxes = mask_input = None
            if num_points:
                points = np.stack([prompts[i].points for i in members])
                coords = torch.as_tensor(self.transform.apply_coords(points, self.original_size), device=self.device)
                labels = torch.as_tensor(np.stack([prompts[i].labels for i in members]), device=self.device)
            if has_box:
                box = np.stack([prompts[i].box for i in members])
                boxes = torch.as_tensor(self.transform.apply_boxes(box, self.original_size), device=self.device)
            if has_mask:
                mask_input = torch.as_tensor(np.stack([prompts[i].mask_input for i in members])[:, None],
                                             device=self.device)
            group_logits, group_scores = self.decode_prompts(coords, labels, boxes, multimask_output, mask_input)
            for j, i in enumerate(members):
                low_res[i], scores[i] = group_logits[j], group_scores[j]
        low_res_logits = torch.stack(low_res)  # O x C x h x w
        threshold = self.model.mask_threshold if mask_threshold is None else mask_threshold
        size = self.model.image_encoder.img_size
        masks = [
            (self.model.postprocess_masks(chunk, self.input_size, self.original_size) > threshold).cpu().numpy()
            for chunk in low_res_logits.split(self._objects_per_call(low_res_logits.shape[1] * size * size * 4))
        ]
        return Prediction(
            masks=np.concatenate(masks),
            iou_scores=torch.stack(scores).float().cpu().numpy(),
            low_res_logits=low_res_logits.float().cpu().numpy(),
            gates=self.gates,
        )

    @torch.no_grad()
    def decode_prompts(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        multimask_output: bool = False,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's output for O objects of one prompt layout on the set image (the tensor step of `predict`).

        point_coords O x N x 2 (X, Y) and boxes O x 4 (XYXY) are in the resized frame (ResizeLongestSide of the
        encoder's input size); point_labels O x N; mask_input O x 1 x h x w low-res logits (SAM's mask prompt).
        Returns low-res mask logits O x C x h x w (h = w = 4 x the embedding grid, not upscaled or thresholded:
        `predict` does that) and predicted IoU O x C, C = 3 with multimask_output else 1.
        """
        coords, labels = sam_onnx_prompts(point_coords, point_labels, boxes, mask_input)
        decoder = self.model.mask_decoder
        upscaled_bytes = decoder.transformer_dim // 8 * 16 * self.features[0, 0].numel() * 4  # per object, fp32
        per_call = self._objects_per_call(upscaled_bytes)
        calls = [slice(start, start + per_call) for start in range(0, len(coords), per_call)]
        masks, iou = zip(*(self.backend.decode(self.features, coords[objects], labels[objects],
                                               None if mask_input is None else mask_input[objects])
                           for objects in calls))
        selected = slice(1, None) if multimask_output else slice(0, 1)  # as SAM's MaskDecoder.forward
        return torch.cat(masks)[:, selected], torch.cat(iou)[:, selected]

    def _objects_per_call(self, bytes_per_object: int) -> int:
        return max(1, self.chunk_bytes // bytes_per_object)
