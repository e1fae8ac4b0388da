"""`python -m gara_model.export`: a SAM or GaRA-SAM as two ONNX files, the image encoder with its gates and the
prompt encoder + mask decoder, as SAM's own ONNX exporter and Isaac ROS split them (docs/deployment.md).

    python -m gara_model.export --sam vit_b --checkpoint sam_vit_b_01ec64.pth --adapter gara.safetensors --out DIR
    python -m gara_model.export --out DIR                # the embedded tiny GaRA-SAM

The encoder file holds every gate MLP, the binary decisions and each block's per-image weight W0 + Delta W(gates):
one run per image, no host round trip per block. DIR gets encoder.onnx, decoder.onnx, decoder_with_mask.onnx (the
decoder with SAM's mask prompt per object) and gara_onnx.json (the manifest, written last: a directory with a
manifest holds a complete export).
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import torch
from segment_anything.modeling import Sam

from gara_model.backends import (
    MANIFEST, DecoderStep, EncoderStep, OnnxFiles, OnnxRuntimeBackend, TorchBackend, model_fingerprint,
    sam_onnx_prompts,
)
from gara_model.build import build_from_files, model_description
from gara_model.cli import one_line_errors
from gara_model.modeling import set_attention_backend

log = logging.getLogger(__name__)

# ONNX opset of the files: 18, the lowest PyTorch's exporter writes (it raises a lower request to 18); TensorRT 10
# parses it (docs/deployment.md); onnxruntime takes any.
DEFAULT_OPSET = 18
PRECISIONS = ("fp32", "fp16")
ENCODER_FILE, DECODER_FILE, MASK_DECODER_FILE = "encoder.onnx", "decoder.onnx", "decoder_with_mask.onnx"
# Above this many bytes of weights a file keeps them in a side file (<name>.data): protobuf stops at 2 GB (ViT-H).
EXTERNAL_DATA_BYTES = 1 << 30


def export_onnx(
    model: Sam, out_dir: str | os.PathLike, precision: str = "fp32", opset: int = DEFAULT_OPSET
) -> OnnxFiles:
    """Writes `model` (eval mode, any device; not changed) as ENCODER_FILE, DECODER_FILE and MASK_DECODER_FILE into
    `out_dir`, then the manifest. Inputs and outputs are fp32; precision "fp16" stores and computes the weights in
    fp16.

    Encoder: "image" 1 x 3 x S x S (`Sam.preprocess`'d) -> "image_embeddings" 1 x C x h x w and, with adapters,
    "gate_table" 1 x G. Decoder: "image_embeddings", "point_coords" O x N x 2, "point_labels" O x N (SAM's ONNX
    point form, `backends.sam_onnx_prompts`; O = num_objects and N = num_points are dynamic) -> "low_res_masks"
    O x M x 4h x 4w, "iou_predictions" O x M. The decoder with mask: the same and "mask_input" O x 1 x 4h x 4w (low-res
    logits, SAM's mask prompt), N from 0. ValueError for non-finite weights (a traced graph cannot check Delta W
    per image, so the weights are checked here).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if opset < DEFAULT_OPSET:
        raise ValueError(f"opset must be {DEFAULT_OPSET} or newer (PyTorch's exporter writes no older one), "
                         f"got {opset}")
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise ValueError(f"model: {len(bad)} parameters hold NaN or infinity (first: {bad[0]}); nothing exported")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)  # until the new files are complete, the directory holds no export
    # A CPU fp32 copy with SAM's own attention math: the exporter's decomposition of F.scaled_dot_product_attention
    # changes the output's memory layout under a view that the trace recorded (torch 2.14); both are equal to float
    # tolerance (tests/model/test_attention.py).
    model = copy.deepcopy(model).to("cpu", torch.float32).eval()
    set_attention_backend(model, "sam")
    size = model.image_encoder.img_size
    encoder, decoder = EncoderStep(model), DecoderStep(model)
    image = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        features, *table = encoder(image)
    # O = 2 objects of N = 3 points: sizes above 1, which the tracer would otherwise fix as constants
    coords, labels = torch.zeros(2, 3, 2), torch.tensor([[1.0, 0.0, -1.0], [1.0, 2.0, 3.0]])
    mask_input = torch.zeros(2, 1, *model.prompt_encoder.mask_input_size)
    objects = torch.export.Dim("num_objects", min=1)
    # a prompt without a mask has at least 2 points (a point and the padding, or a box's corners); a mask alone none
    points, mask_points = torch.export.Dim("num_points", min=1), torch.export.Dim("num_points", min=0)
    external = sum(p.numel() * p.element_size() for p in model.parameters()) > EXTERNAL_DATA_BYTES
    steps = [
        (ENCODER_FILE, encoder, (image,), ["image"], ["image_embeddings"] + ["gate_table"] * bool(table), None),
        (DECODER_FILE, decoder, (features, coords, labels), ["image_embeddings", "point_coords", "point_labels"],
         ["low_res_masks", "iou_predictions"],
         {"image_embeddings": None, "point_coords": {0: objects, 1: points}, "point_labels": {0: objects, 1: points}}),
        (MASK_DECODER_FILE, decoder, (features, coords, labels, mask_input),
         ["image_embeddings", "point_coords", "point_labels", "mask_input"], ["low_res_masks", "iou_predictions"],
         {"image_embeddings": None, "point_coords": {0: objects, 1: mask_points},
          "point_labels": {0: objects, 1: mask_points}, "mask_input": {0: objects}}),
    ]
    for name, module, args, inputs, outputs, dynamic in steps:
        started = time.perf_counter()
        with warnings.catch_warnings():  # the exporter's notes on axis names and deprecations, not the user's concern
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, dynamo=True, opset_version=opset, input_names=inputs,
                                        output_names=outputs, dynamic_shapes=dynamic, verbose=False)
        proto = _outputs_from_nodes(program.model_proto)
        written_opset = next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))
        if precision == "fp16":
            from onnxruntime.transformers.float16 import convert_float_to_float16

            proto = convert_float_to_float16(proto, keep_io_types=True)
        _save(proto, out_dir / name, external)
        log.info("%s written in %.1f s", out_dir / name, time.perf_counter() - started)
    files = OnnxFiles(encoder=ENCODER_FILE, decoder=DECODER_FILE, decoder_with_mask=MASK_DECODER_FILE,
                      opset=written_opset, precision=precision, image_size=size, gate_columns=encoder.columns,
                      fingerprint=model_fingerprint(model), model_name=model_description(model))
    files.write(out_dir)
    return files


def _outputs_from_nodes(proto):
    """The graph with every output computed by a node: an output the exporter folded into a constant (LoRA's gate
    table does not depend on the image) gets an Identity node, which the fp16 conversion and TensorRT need."""
    import onnx

    constants = {initializer.name: initializer for initializer in proto.graph.initializer}
    for output in proto.graph.output:
        if output.name in constants:
            constants[output.name].name = output.name + "_constant"
            proto.graph.node.append(onnx.helper.make_node("Identity", [output.name + "_constant"], [output.name]))
    return proto


def _save(proto, path: Path, external: bool) -> None:
    import onnx

    for stale in (path, path.with_name(path.name + ".data")):
        stale.unlink(missing_ok=True)
    onnx.save_model(proto, str(path), save_as_external_data=external, location=path.name + ".data")


def cache_dir() -> Path:
    """Where exports made on demand go: $GARA_CACHE_DIR, else $XDG_CACHE_HOME/gara or ~/.cache/gara."""
    if os.environ.get("GARA_CACHE_DIR"):
        return Path(os.environ["GARA_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gara"


def cached_export(model: Sam, precision: str = "fp32", opset: int = DEFAULT_OPSET) -> Path:
    """The export directory of `model` in the cache (`cache_dir()/onnx/<fingerprint>-<precision>-opset<N>`), exported
    now if it is not there yet (logged: ViT-B takes minutes). Written into a temporary directory and renamed, so a
    kill leaves no half export and two processes exporting at once both end with a complete one."""
    fingerprint = model_fingerprint(model)
    target = cache_dir() / "onnx" / f"{fingerprint[:20]}-{precision}-opset{opset}"
    if (target / MANIFEST).is_file() and OnnxFiles.read(target).fingerprint == fingerprint:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting the model to ONNX once, into %s (ViT-B takes minutes; python -m gara_model.export makes "
             "files ahead of time)", target)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        export_onnx(model, staging, precision, opset)
        try:
            os.rename(staging, target)
        except OSError:  # another process finished first, or a stale partial directory is in the way
            if not (target / MANIFEST).is_file():
                shutil.rmtree(target, ignore_errors=True)
                os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def verify_export(model: Sam, directory: str | os.PathLike, seed: int = 0) -> dict[str, float | bool]:
    """The export against PyTorch on one random image and 3 random one-point objects, on the CPU, then the same
    objects with their first masks as mask prompts (both decoder files): max |difference| of the embedding and of the
    mask logits, and whether every gate decision is the same."""
    generator = torch.Generator().manual_seed(seed)
    model = copy.deepcopy(model).to("cpu", torch.float32).eval()
    size = model.image_encoder.img_size
    image = model.preprocess(torch.rand(1, 3, size, size, generator=generator) * 255)
    coords, labels = sam_onnx_prompts(torch.rand(3, 1, 2, generator=generator) * size, torch.ones(3, 1), None)
    cpu = torch.device("cpu")
    torch_backend = TorchBackend(model, cpu, "fp32")
    onnx_backend = OnnxRuntimeBackend(directory, model_fingerprint(model), cpu, "auto")
    with torch.no_grad():
        want_features, want_table = torch_backend.encode(image)
        got_features, got_table = onnx_backend.encode(image)
        want_masks, _ = torch_backend.decode(want_features, coords, labels)
        got_masks, _ = onnx_backend.decode(want_features, coords, labels)
        mask_input = want_masks[:, :1]
        want_followed, _ = torch_backend.decode(want_features, coords, labels, mask_input)
        got_followed, _ = onnx_backend.decode(want_features, coords, labels, mask_input)
    same_gates = (want_table is None and got_table is None) or (
        want_table is not None and got_table is not None and (want_table == got_table).all())
    return {"embedding": float((got_features - want_features).abs().max()),
            "mask_logits": max(float((got - want).abs().max()) for got, want in
                               ((got_masks, want_masks), (got_followed, want_followed))),
            "gates_equal": bool(same_gates)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gara_model.export", description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default=None, help="SAM variant of --checkpoint: vit_b (default) | vit_l | vit_h")
    parser.add_argument("--checkpoint", help="SAM weights (official sam_vit_*.pth); omit for the embedded tiny model")
    parser.add_argument("--adapter", help="GaRA adapter file (omit: plain SAM; without --checkpoint: the embedded one; "
                        "none: plain SAM either way)")
    parser.add_argument("--image-size", type=int, default=None, help="encoder input size (default: the adapter's)")
    parser.add_argument("--out", required=True, help="directory for encoder.onnx, decoder.onnx and gara_onnx.json")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="weights and compute of the files (inputs and outputs stay fp32)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help="ONNX opset, 18 or newer (default: %(default)s)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the check against PyTorch on a random image with onnxruntime (CPU)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("onnxscript", "onnx_ir"):  # a line per graph rewrite
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if args.opset < DEFAULT_OPSET:
        parser.error(f"--opset {args.opset}: PyTorch's exporter writes opset {DEFAULT_OPSET} or newer")
    with one_line_errors(parser):
        model = build_from_files(args.sam, args.checkpoint, args.adapter, args.image_size)
        files = export_onnx(model, args.out, args.precision, args.opset)
    print(f"{files.model_name}, {files.precision}, opset {files.opset}: {args.out}/{{{files.encoder},{files.decoder},"
          f"{MANIFEST}}}; {sum(1 + r for _, _, r in files.gate_columns)} gate outputs")
    if not args.no_verify:
        check = verify_export(model, args.out)
        print(f"verified with onnxruntime (CPU) against PyTorch on a random image: embedding max |difference| "
              f"{check['embedding']:.2e}, mask logits {check['mask_logits']:.2e}, gate decisions "
              f"{'identical' if check['gates_equal'] else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
