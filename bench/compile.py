"""GaraPredictor(compile=True) vs eager: compile time, then encoder and decoder latency side by side.

    .venv/bin/python -m bench.compile [--tiny] [--repeats 5] [--threads N] [--precision auto|fp32|fp16|bf16]

GaRA-SAM (merged inference, higher-rank set). Inductor caches compiled kernels on disk
(/tmp/torchinductor_$USER): run twice to see the compile time with a warm cache.
"""

from __future__ import annotations

import numpy as np

from bench.common import (
    force_rank_space, gara_sam, interleaved, parser, random_image, ratio, sam_variant, setup, summary, timed,
)
from bench.prompts import point_prompts
from gara_model.predictor import GaraPredictor


def main() -> None:
    p = parser(__doc__, repeats=5)
    p.add_argument("--precision", default="auto", help="GaraPredictor precision (never bf16 on CPU: much slower)")
    args, device = setup(p)
    model = gara_sam(sam_variant(args))
    force_rank_space(model, "high")
    image = random_image(model.image_encoder.img_size)
    eager = GaraPredictor(model, device=device, precision=args.precision)
    compiled = GaraPredictor(model, device=device, precision=args.precision, compile=True)
    print(f"precision {args.precision}; compile time (first call minus an eager call):")
    eager_encoder = timed(lambda: eager.set_image(image), device)
    print(f"  encoder: {timed(lambda: compiled.set_image(image), device) - eager_encoder:.1f} s")
    print(f"  encoder features max |compiled - eager|: {(compiled.features - eager.features).abs().max().item():.2e}")
    objects = {count: point_prompts(count, model.image_encoder.img_size) for count in (1, 16)}
    for count, prompts in objects.items():
        eager_decoder = timed(lambda: eager.predict(prompts), device)
        print(f"  decoder, {count} objects: {timed(lambda: compiled.predict(prompts), device) - eager_decoder:.1f} s")
    difference = np.abs(compiled.predict(objects[16]).low_res_logits - eager.predict(objects[16]).low_res_logits).max()
    print(f"  mask logits max |compiled - eager|: {difference:.2e}")
    variants = {
        "encoder, eager": lambda: eager.set_image(image),
        "encoder, compiled": lambda: compiled.set_image(image),
        **{f"decoder {n:2d} objects, {kind}": (lambda pr=pr, n=n, kind=kind: pr.predict(objects[n]))
           for n in objects for kind, pr in (("eager", eager), ("compiled", compiled))},
    }
    times = interleaved(variants, args.repeats, device)
    for name, t in times.items():
        eager_name = name.replace("compiled", "eager")
        print(f"{name:28s} {summary(t):>36s}" + (f"   compiled / eager {ratio(t, times[eager_name])}" if name != eager_name else ""))


if __name__ == "__main__":
    main()
