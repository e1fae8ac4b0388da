"""Decoder time for 1, 4, 16 and 64 objects on one cached image embedding, and the frame-time target.

    .venv/bin/python -m bench.prompts [--tiny] [--repeats 3] [--threads N] [--compile]

Side by side: GaraPredictor.predict (image embedding broadcast, objects split into calls of at most
`chunk_bytes`), the same with all objects in one call, and segment_anything's SamPredictor.predict_torch
(one batch, embedding repeated per object).
Target: a frame with 16 objects (encoder + decoder) costs less than 1.5 x a frame with one object.
"""

from __future__ import annotations

import statistics
import sys

import numpy as np
import torch
from segment_anything import SamPredictor

from bench.common import interleaved, parser, random_image, random_sam, ratio, sam_variant, setup, summary, timed
from gara_model.predictor import GaraPredictor
from gara_model.prompts import ObjectPrompt

COUNTS = (1, 4, 16, 64)


def point_prompts(count: int, size: int, seed: int = 0) -> list[ObjectPrompt]:
    """`count` objects with one foreground point each, inside a size x size image."""
    points = np.random.default_rng(seed).uniform(0, size, (count, 1, 2)).astype(np.float32)
    return [ObjectPrompt(str(i), points=p, labels=np.ones(1, np.int64)) for i, p in enumerate(points)]


def with_chunk_bytes(predictor: GaraPredictor, chunk_bytes: int, objects: list[ObjectPrompt]):
    def run():
        predictor.chunk_bytes = chunk_bytes
        return predictor.predict(objects)
    return run


def decoder_variants(
    ours: GaraPredictor, chunk_bytes: int, theirs: SamPredictor, objects: list[ObjectPrompt], compiled: GaraPredictor | None
):
    """name -> call decoding all `objects` once."""
    coords = torch.as_tensor(np.stack([theirs.transform.apply_coords(o.points, theirs.original_size) for o in objects]))
    labels = torch.ones(coords.shape[:2], dtype=torch.int64)
    variants = {
        "GaraPredictor": with_chunk_bytes(ours, chunk_bytes, objects),
        "GaraPredictor, one call": with_chunk_bytes(ours, sys.maxsize, objects),
        "SamPredictor": lambda: theirs.predict_torch(coords.to(theirs.device), labels.to(theirs.device), multimask_output=False),
    }
    if compiled is not None:
        variants["GaraPredictor, compile=True"] = lambda: compiled.predict(objects)
    return variants


def main() -> None:
    p = parser(__doc__, repeats=3)
    p.add_argument("--compile", action="store_true", help="also GaraPredictor(compile=True) (compiles the encoder too)")
    args, device = setup(p)
    sam = random_sam(sam_variant(args))
    size = sam.image_encoder.img_size
    image = random_image(size)
    ours = GaraPredictor(sam, device=device)
    chunk_bytes = ours.chunk_bytes  # the device's default
    theirs = SamPredictor(ours.model)
    theirs.set_image(image)
    encoder = [timed(lambda: ours.set_image(image), device) for _ in range(args.repeats)]
    print(f"encoder (set_image): {summary(encoder)}")
    compiled = None
    if args.compile:
        compiled = GaraPredictor(sam, device=device, compile=True)
        print(f"compile=True, first set_image (compiles the encoder): {timed(lambda: compiled.set_image(image), device):.1f} s")
    times = {}
    for count in COUNTS:
        variants = decoder_variants(ours, chunk_bytes, theirs, point_prompts(count, size), compiled)
        interleaved(variants, 1, device)  # warm-up; compiles the decoder for compile=True
        times[count] = interleaved(variants, args.repeats, device)
    for name in times[COUNTS[0]]:
        print(f"\n{name}")
        for count in COUNTS:
            t = times[count][name]
            slope = (statistics.median(t) - statistics.median(times[1][name])) / (count - 1) if count > 1 else 0.0
            print(f"  {count:3d} objects: {summary(t):>36s}   vs SamPredictor {ratio(t, times[count]['SamPredictor'])}"
                  f"   {1e3 * slope:6.1f} ms per extra object")
        enc = statistics.median(encoder)
        frame = (enc + statistics.median(times[16][name])) / (enc + statistics.median(times[1][name]))
        print(f"  frame with 16 objects / frame with 1 object (encoder + decoder): {frame:.2f}   target < 1.5")


if __name__ == "__main__":
    main()
