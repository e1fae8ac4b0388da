"""What runs a model for the predictor: PyTorch (`TorchBackend`) or its exported ONNX files in onnxruntime
(`OnnxRuntimeBackend`). Both run the same two steps, defined once here as modules; the ONNX files are their export
(`gara_model.export`):

- `EncoderStep`: preprocessed image 1 x 3 x S x S -> image embedding 1 x C x h x w and, with adapters, every gate
  decision as one table 1 x G (`adapters.gates.gate_table`): the gate MLPs, the binary decisions and each block's
  weight update W0 + Delta W(gates) run inside the step.
- `DecoderStep`: image embedding and O objects' prompts in SAM's ONNX point form (`sam_onnx_prompts`), with or
  without a mask prompt per object -> low-res mask logits O x M x 4h x 4w and predicted IoU O x M, for all M of
  SAM's mask tokens.

Everything above them (the numpy API, prompt checks, resizing, mask post-processing) is the predictor's, the same
for both backends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import MaskDecoder, Sam
from segment_anything.utils.onnx import SamOnnxModel
from torch import nn

from gara_model.adapters.gates import GateColumns, gate_columns, gate_table, record_gates
from gara_model.device import autocast

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime")
# SAM's ONNX point labels: -1 padding, 0 background, 1 foreground, 2 and 3 a box's top-left and bottom-right corner.
PAD_LABEL, BOX_CORNER_LABELS = -1.0, (2.0, 3.0)


def sam_onnx_prompts(
    point_coords: torch.Tensor | None,
    point_labels: torch.Tensor | None,
    boxes: torch.Tensor | None,
    mask_input: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """O objects of one prompt layout in SAM's ONNX form: coordinates O x N' x 2 (X, Y) and float labels O x N'.

    point_coords O x N x 2 with point_labels O x N, and/or boxes O x 4 (XYXY), all in the resized frame; mask_input
    O x 1 x h x w (SAM's mask prompt) only counts the objects of a prompt without points or box. The points come
    first, then the box's two corners (labels 2 and 3) or, for points without a box, one padding point (0, 0)
    labelled -1; a mask-only prompt has no points (N' = 0). This is how SAM's PromptEncoder pads, so the sparse
    embeddings are those of PromptEncoder.
    """
    reference = next(t for t in (point_coords, boxes, mask_input) if t is not None)
    num_objects = reference.shape[0]
    coords = [reference.new_zeros(num_objects, 0, 2, dtype=torch.float32)]
    labels = [reference.new_zeros(num_objects, 0, dtype=torch.float32)]
    if point_coords is not None:
        coords.append(point_coords.float())
        labels.append(point_labels.float())
    if boxes is not None:
        coords.append(boxes.float().reshape(num_objects, 2, 2))
        labels.append(torch.tensor(BOX_CORNER_LABELS, device=reference.device).expand(num_objects, 2))
    elif point_coords is not None:
        coords.append(reference.new_zeros(num_objects, 1, 2, dtype=torch.float32))
        labels.append(torch.full((num_objects, 1), PAD_LABEL, device=reference.device))
    return torch.cat(coords, dim=1), torch.cat(labels, dim=1)


def decode_masks(
    decoder: MaskDecoder,
    image_embedding: torch.Tensor,
    image_pe: torch.Tensor,
    sparse_prompt_embeddings: torch.Tensor,
    dense_prompt_embedding: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's `MaskDecoder.predict_masks` for O objects on one image, without copying the image O times.

    image_embedding, image_pe: 1 x C x h x w; dense_prompt_embedding: 1 x C x h x w without mask prompts (the
    same for every object), O x C x h x w with them; sparse_prompt_embeddings: O x T x C. Returns all mask logits
    O x M x 4h x 4w and IoU O x M.
    SAM repeats the embedding and its positional encoding per object; here the first two-way block
    broadcasts them (its keys are the same for every object) and only later blocks work per object.
    """
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    num_objects = sparse_prompt_embeddings.shape[0]
    tokens = torch.cat((output_tokens.expand(num_objects, -1, -1), sparse_prompt_embeddings), dim=1)
    _, c, h, w = image_embedding.shape
    hs, src = decoder.transformer(image_embedding + dense_prompt_embedding, image_pe, tokens)  # src: O x hw x C
    upscaled = decoder.output_upscaling(src.transpose(1, 2).view(num_objects, c, h, w))  # O x C' x 4h x 4w
    hyper_in = torch.stack([mlp(hs[:, 1 + i]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1)
    masks = (hyper_in @ upscaled.flatten(2)).view(num_objects, -1, *upscaled.shape[2:])
    return masks, decoder.iou_prediction_head(hs[:, 0])


class EncoderStep(nn.Module):
    """Image encoder with its gates: preprocessed image 1 x 3 x S x S -> (embedding 1 x C x h x w, gate table 1 x G),
    or (embedding,) for a model without adapters. `encoder`: the model's image encoder or a compiled form of it."""

    def __init__(self, sam: Sam, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.sam = sam
        self.encoder = sam.image_encoder if encoder is None else encoder
        self.columns: GateColumns = ()  # how the gate table splits into adapters; set by every call

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with record_gates(self.sam) as records:
            features = self.encoder(image)
        self.columns = gate_columns(records)
        return (features, gate_table(records)) if records else (features,)


class DecoderStep(SamOnnxModel):
    """SAM's own ONNX model class with its prompt embedding (`_embed_points`), the decoder replaced by our
    `decode_masks` (the embedding broadcast over the objects) and the mask post-processing left to the predictor.

    forward(image_embeddings 1 x C x h x w, point_coords O x N x 2, point_labels O x N (`sam_onnx_prompts`' form),
    mask_input O x 1 x 4h x 4w or None) -> (low-res mask logits O x M x 4h x 4w, IoU O x M). Without mask_input the
    dense embedding is SAM's no-mask embedding, one for all objects; with it, each object's downscaled mask (SAM's
    PromptEncoder), so the image embedding is no longer shared by the objects.
    """

    def __init__(self, sam: Sam) -> None:
        super().__init__(sam, return_single_mask=False)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        prompt_encoder = self.model.prompt_encoder
        sparse = self._embed_points(point_coords, point_labels)
        if mask_input is None:
            _, dense = prompt_encoder(points=None, boxes=None, masks=None)  # 1 x C x h x w
        else:
            dense = prompt_encoder.mask_downscaling(mask_input)  # O x C x h x w, as PromptEncoder._embed_masks
        return decode_masks(self.mask_decoder, image_embeddings, prompt_encoder.get_dense_pe(), sparse, dense)


class TorchBackend:
    """The steps in PyTorch on the model's device, under the predictor's autocast; `compile`: torch.compile both."""

    name = "torch"

    def __init__(self, model: Sam, device: torch.device, precision: str, compile: bool = False) -> None:
        self.device, self.precision = device, precision
        encoder = torch.compile(model.image_encoder) if compile else model.image_encoder
        self.encoder = EncoderStep(model, encoder)
        decoder = DecoderStep(model)
        self.decoder = torch.compile(decoder, dynamic=True) if compile else decoder

    @property
    def gate_columns(self) -> GateColumns:
        return self.encoder.columns

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        """image 1 x 3 x S x S (preprocessed) -> (embedding 1 x C x h x w fp32, gate table 1 x G on the host)."""
        with autocast(self.device, self.precision):
            features, *table = self.encoder(image)
        return features.float(), table[0].cpu().numpy() if table else None

    def decode(self, features: torch.Tensor, point_coords: torch.Tensor, point_labels: torch.Tensor,
               mask_input: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`DecoderStep` on the embedding and O objects -> (logits O x M x 4h x 4w, IoU O x M), fp32."""
        with autocast(self.device, self.precision):
            masks, iou = self.decoder(features, point_coords, point_labels, mask_input)
        return masks.float(), iou.float()


def model_fingerprint(model: nn.Module) -> str:
    """sha256 of every tensor of the model's state dict (names, dtypes, shapes, values) as fp32 on the host: which
    weights ONNX files were exported from. About a second for ViT-B."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().to("cpu", torch.float32 if tensor.is_floating_point() else tensor.dtype).contiguous()
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype};".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


ONNX_FORMAT = "gara-onnx-v1"
MANIFEST = "gara_onnx.json"


@dataclass(frozen=True)
class OnnxFiles:
    """An export directory's manifest (MANIFEST, JSON): what its two ONNX files take and which model they hold.

    encoder: file of `EncoderStep` (input "image" 1 x 3 x S x S; outputs "image_embeddings", and "gate_table" when
    gate_columns is not empty); decoder: file of `DecoderStep` (inputs "image_embeddings", "point_coords" and
    "point_labels" with dynamic num_objects and num_points; outputs "low_res_masks", "iou_predictions");
    decoder_with_mask: file of `DecoderStep` with a mask prompt per object, a fourth input "mask_input"
    num_objects x 1 x 4h x 4w (num_points may be 0: a mask-only prompt).
    precision: "fp32" or "fp16" (weights and compute; inputs and outputs are fp32 either way).
    fingerprint: `model_fingerprint` of the exported model.
    """

    encoder: str
    decoder: str
    decoder_with_mask: str
    opset: int
    precision: str
    image_size: int
    gate_columns: GateColumns
    fingerprint: str
    model_name: str
    format: str = ONNX_FORMAT

    def write(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, directory: str | os.PathLike) -> "OnnxFiles":
        """The manifest of `directory`; FileNotFoundError or ValueError naming it and what is wrong."""
        path = Path(directory) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{directory} holds no exported model ({MANIFEST} missing): export one with "
                                    "python -m gara_model.export --out DIR")
        try:
            fields = json.loads(path.read_text())
            if fields.get("format") != ONNX_FORMAT:
                raise ValueError(f"format {fields.get('format')!r}, expected {ONNX_FORMAT!r}")
            fields["gate_columns"] = tuple(tuple(column) for column in fields["gate_columns"])
            files = cls(**fields)
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(f"{path} is not a gara ONNX manifest: {' '.join(str(error).split())}") from error
        for name in (files.encoder, files.decoder, files.decoder_with_mask):
            if not (Path(directory) / name).is_file():
                raise FileNotFoundError(f"{directory}: {name}, named in {MANIFEST}, is missing")
        return files


def onnxruntime_providers(device: torch.device, explicit: bool, cache_dir: Path, fp16: bool) -> list:
    """onnxruntime execution providers for `device`: on CUDA TensorRT and CUDA where the installed onnxruntime has
    them (TensorRT engines cached in `cache_dir`), then the CPU. A CUDA device asked for by name (`explicit`) without
    a GPU provider is a ValueError; "auto" then falls back to the CPU, logged."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    index = device.index or 0
    gpu = []
    if "TensorrtExecutionProvider" in available:
        gpu.append(("TensorrtExecutionProvider", {"device_id": index, "trt_fp16_enable": fp16,
                                                  "trt_engine_cache_enable": True,
                                                  "trt_engine_cache_path": str(cache_dir)}))
    if "CUDAExecutionProvider" in available:
        gpu.append(("CUDAExecutionProvider", {"device_id": index, "use_tf32": 0}))  # fp32 files compute in fp32
    if not gpu:
        message = (f"device {device}: the installed onnxruntime has no CUDA or TensorRT provider "
                   f"({', '.join(available)}); install onnxruntime-gpu instead of onnxruntime")
        if explicit:
            raise ValueError(message)
        log.warning("%s; running the ONNX files on the CPU", message)
    return gpu + ["CPUExecutionProvider"]


class OnnxRuntimeBackend:
    """The exported steps of `directory` (an `OnnxFiles` manifest) in onnxruntime sessions; tensors cross to and from
    the predictor's device as fp32. `fingerprint`: the predictor's model's, which the files must hold."""

    name = "onnxruntime"

    def __init__(self, directory: str | os.PathLike, fingerprint: str, device: torch.device, precision: str,
                 explicit_device: bool = True) -> None:
        import onnxruntime

        directory = Path(directory)
        self.files = files = OnnxFiles.read(directory)
        if files.fingerprint != fingerprint:
            raise ValueError(f"{directory} holds ONNX files of another model ({files.model_name}, fingerprint "
                             f"{files.fingerprint[:16]}, this model {fingerprint[:16]}): export this one with "
                             "python -m gara_model.export")
        if precision not in ("auto", files.precision):
            raise ValueError(f"precision {precision!r}: the ONNX files in {directory} are {files.precision}; export "
                             f"them with --precision {precision} or use precision 'auto'")
        self.device = device
        providers = onnxruntime_providers(device, explicit_device, directory / "tensorrt_cache",
                                          fp16=files.precision == "fp16")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # as PyTorch's, so that --threads applies to both
        self.encoder, self.decoder, self.decoder_with_mask = (
            self._session(directory / name, options, providers)
            for name in (files.encoder, files.decoder, files.decoder_with_mask))
        self.providers = self.encoder.get_providers()
        log.info("onnxruntime %s on %s (%s, %s)", onnxruntime.__version__, ", ".join(self.providers), directory,
                 files.precision)

    @staticmethod
    def _session(path: Path, options, providers: list):
        """An onnxruntime session of `path`; ValueError in one line naming the file if onnxruntime refuses it."""
        import onnxruntime

        try:
            return onnxruntime.InferenceSession(str(path), options, providers=providers)
        except Exception as error:  # noqa: BLE001  onnxruntime raises its own types (Fail, InvalidProtobuf, ...)
            raise ValueError(f"{path}: onnxruntime cannot load it ({type(error).__name__}: "
                             f"{' '.join(str(error).split())[:300]}); export it again") from error

    @property
    def gate_columns(self) -> GateColumns:
        return self.files.gate_columns

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        """As `TorchBackend.encode`."""
        features, *table = self.encoder.run(None, {"image": image.detach().float().cpu().numpy()})
        return torch.from_numpy(features).to(self.device), table[0] if table else None

    def decode(self, features: torch.Tensor, point_coords: torch.Tensor, point_labels: torch.Tensor,
               mask_input: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """As `TorchBackend.decode`."""
        inputs = {
            "image_embeddings": features.detach().cpu().numpy(),
            "point_coords": point_coords.detach().float().cpu().numpy(),
            "point_labels": point_labels.detach().float().cpu().numpy(),
        }
        if mask_input is not None:
            inputs["mask_input"] = mask_input.detach().float().cpu().numpy()
        session = self.decoder if mask_input is None else self.decoder_with_mask
        masks, iou = session.run(None, inputs)
        return torch.from_numpy(masks).to(self.device), torch.from_numpy(iou).to(self.device)
