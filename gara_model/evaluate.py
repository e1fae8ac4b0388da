"""`python -m gara_model.evaluate`: IoU/Dice of a base SAM and any number of adapters, side by side.

Example: python -m gara_model.evaluate --sam vit_b --checkpoint sam_vit_b_01ec64.pth \\
    --adapter gara=runs/gara/adapter.safetensors --data acdc=/data/ACDC:val --out outputs/eval
Several encoder sizes, with and without BA-SAM: --image-size 512,640,768,1024 --scaling none,basam
The exported ONNX models in onnxruntime instead of PyTorch: --backend onnxruntime

"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from gara_model.backends import BACKENDS
from gara_model.build import build_model
from gara_model.cli import one_line_errors
from gara_model.data.build import dataset_from_spec
from gara_model.data.corruptions import EVAL_CORRUPTIONS
from gara_model.engine.evaluation import evaluate
from gara_model.engine.report import write_report
from gara_model.modeling import SCALINGS, model_scaling
from gara_model.predictor import GaraPredictor


def parse_dataset(text: str) -> tuple[str, dict]:
    """"synthetic[:N]" or "name=root[:split]" -> (label, dataset spec)."""
    if text.startswith("synthetic"):
        size = int(text.split(":", 1)[1]) if ":" in text else 200
        return f"synthetic{size}", {"name": "synthetic", "size": size, "seed": 10_000}
    name, sep, rest = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--data {text!r}: use synthetic[:N] or name=root[:split]")
    root, _, split = rest.partition(":")
    return f"{name}:{split or 'val'}", {"name": name, "root": root, "split": split or "val"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gara_model.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default="tiny", help="SAM variant: vit_b | vit_l | vit_h | tiny (default: embedded tiny)")
    parser.add_argument("--checkpoint", help="SAM weights (official sam_vit_*.pth); omit for the embedded tiny model")
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=FILE", help="adapter file to compare (repeatable)")
    parser.add_argument("--no-base", action="store_true", help="leave the frozen base SAM out of the table")
    parser.add_argument("--data", action="append", default=[], metavar="SPEC", help="synthetic[:N] or name=root[:split] (repeatable)")
    parser.add_argument("--corruptions", default=",".join(EVAL_CORRUPTIONS),
                        help="comma-separated, applied to clear images; '' for none (default: %(default)s)")
    parser.add_argument("--severity", type=int, default=3, help="severity of imagenet_c/* corruptions (1-5)")
    parser.add_argument("--prompts", default="point,box")
    parser.add_argument("--random-points", type=int, default=0, help="extra seeded random points per object")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", default="", help="comma-separated encoder input sizes to compare "
                        "(default: each adapter's own, native for the base SAM)")
    parser.add_argument("--scaling", default="", help="comma-separated: none, basam (BA-SAM at sizes other than "
                        "native); default: each adapter's own (none for the base SAM)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="onnxruntime: each model's ONNX export, made once into the cache (docs/deployment.md)")
    parser.add_argument("--out", default="outputs/eval")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    models = [] if args.no_base else [("SAM", None)]
    for item in args.adapter:
        name, sep, path = item.partition("=")
        if not sep:
            parser.error(f"--adapter {item!r}: use NAME=FILE")
        models.append((name, path))
    sizes = [int(s) for s in args.image_size.split(",") if s] or [None]
    scalings = [s for s in args.scaling.split(",") if s] or [None]
    if set(scalings) - {None, *SCALINGS}:
        parser.error(f"--scaling {args.scaling!r}: each must be one of {', '.join(SCALINGS)}")
    with one_line_errors(parser):
        predictors = {}
        for name, adapter in models:
            for size in sizes:
                for scaling in scalings:
                    model = build_model(args.sam, args.checkpoint, adapter=adapter, image_size=size, scaling=scaling)
                    label = (name if len(sizes) == 1 and len(scalings) == 1
                             else f"{name} @{model.image_encoder.img_size} {model_scaling(model)}")
                    predictors[label] = GaraPredictor(model, device=args.device, backend=args.backend)
        if not predictors:
            parser.error("nothing to evaluate: give --adapter or drop --no-base")
        datasets = dict(parse_dataset(text) for text in (args.data or ["synthetic"]))
        datasets = {label: dataset_from_spec(spec) for label, spec in datasets.items()}
    corruptions = [c for c in args.corruptions.split(",") if c]
    evaluation = evaluate(predictors, datasets, corruptions, args.severity, args.prompts.split(","), args.random_points, args.seed)
    report = write_report(evaluation, Path(args.out))
    print(report.read_text())
    print(f"written: {report.parent}/results.{{md,csv,json}}, iou.png" + (" and gates_*.png" if evaluation.gates else ""))


if __name__ == "__main__":
    main()
