"""onnxruntime vs PyTorch eager: the same GaRA-SAM (merged inference, random weights) through GaraPredictor's two
backends, image encoder and decoder with 1 and 16 objects, interleaved round by round.

    .venv/bin/python -m bench.backends [--tiny] [--repeats 3] [--threads N] [--device cpu|cuda]

The model is exported once into a temporary directory first (its time is printed). Both backends use the same
number of threads (onnxruntime's intra-op threads follow torch.get_num_threads()).
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from bench.common import gara_sam, interleaved, parser, random_image, ratio, sam_variant, setup, summary
from bench.prompts import point_prompts
from gara_model.export import export_onnx
from gara_model.predictor import GaraPredictor


def main() -> None:
    p = parser(__doc__, repeats=3)
    args, device = setup(p)
    model = gara_sam(sam_variant(args))
    size = model.image_encoder.img_size
    with tempfile.TemporaryDirectory(prefix="gara_bench_onnx_") as export_dir:
        started = time.perf_counter()
        export_onnx(model, export_dir)
        print(f"{sam_variant(args)} GaRA-SAM exported in {time.perf_counter() - started:.1f} s")
        predictors = {"PyTorch eager": GaraPredictor(model, device=device),
                      "onnxruntime": GaraPredictor(model, device=device, backend="onnxruntime", onnx_dir=export_dir)}
        print(f"onnxruntime providers: {', '.join(predictors['onnxruntime'].backend.providers)}")
        image = random_image(size)
        objects = {count: point_prompts(count, size) for count in (1, 16)}
        for predictor in predictors.values():
            predictor.set_image(image)
        difference = np.abs(predictors["onnxruntime"].predict(objects[16]).low_res_logits
                            - predictors["PyTorch eager"].predict(objects[16]).low_res_logits).max()
        print(f"mask logits max |onnxruntime - PyTorch|: {difference:.2e}; gates equal: "
              f"{predictors['onnxruntime'].gates == predictors['PyTorch eager'].gates}")
        variants = {}
        for name, predictor in predictors.items():
            variants[f"encoder, {name}"] = lambda pr=predictor: pr.set_image(image)
            for count, prompts in objects.items():
                variants[f"decoder {count:2d} objects, {name}"] = lambda pr=predictor, o=prompts: pr.predict(o)
        interleaved(variants, 1, device)  # warm-up round
        times = interleaved(variants, args.repeats, device)
    for name, t in times.items():
        torch_name = name.replace("onnxruntime", "PyTorch eager")
        versus = f"   onnxruntime / PyTorch {ratio(t, times[torch_name])}" if name != torch_name else ""
        print(f"{name:36s} {summary(t):>36s}{versus}")


if __name__ == "__main__":
    main()
