"""Image encoder per image: plain SAM vs GaRA-SAM unmerged vs merged, in both rank spaces; FLOPs and FLOP/s.

    .venv/bin/python -m bench.encoder [--tiny] [--repeats 3] [--threads N] [--thread-sweep 1,2,4]
"""

from __future__ import annotations

import statistics

import torch

from bench.common import (
    QKV_SHAPE, count_flops, force_rank_space, gara_sam, interleaved, parser, random_sam, ratio,
    sam_variant, setup, summary,
)
from gara_model.modeling import set_adapters_enabled, set_merged_inference


def encoder_variants(variant: str, device: torch.device) -> dict:
    """name -> no-argument call of one encoder forward on a random image (1 x 3 x S x S)."""
    sam = random_sam(variant).to(device).eval()
    gara = {space: gara_sam(variant).to(device) for space in ("low", "high")}
    for space, model in gara.items():
        force_rank_space(model, space)
    size = sam.image_encoder.img_size
    image = torch.randn(1, 3, size, size, device=device)

    def gara_run(space: str, enabled: bool = True, merged: bool = True):
        def run():
            set_adapters_enabled(gara[space], enabled)
            set_merged_inference(gara[space], merged)
            return gara[space].image_encoder(image)
        return run

    return {
        "SAM (segment_anything)": lambda: sam.image_encoder(image),
        "GaRA blocks, adapters off": gara_run("high", enabled=False),
        "GaRA unmerged, r_L=16": gara_run("low", merged=False),
        "GaRA unmerged, r_H=256": gara_run("high", merged=False),
        "GaRA merged, r_L=16": gara_run("low"),
        "GaRA merged, r_H=256": gara_run("high"),
    }


def qkv_matmul(device: torch.device, repeats: int = 10):
    """A call of `repeats` fp32 matmuls of the ViT-B qkv shape: this machine's reachable FLOP/s."""
    m, k, n = QKV_SHAPE
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    return lambda: [a @ b for _ in range(repeats)]


def compare(variants: dict, repeats: int, device: torch.device) -> None:
    """Warm-up round counting FLOPs, then interleaved timed rounds (the qkv matmul among them, so that it sees
    the same load); a table relative to the first variant and to the matmul's FLOP/s."""
    m, k, n = QKV_SHAPE
    matmul = f"fp32 matmul {m}x{k} @ {k}x{n} x10"
    variants = {**variants, matmul: qkv_matmul(device)}
    flops = {name: count_flops(fn) for name, fn in variants.items()}
    times = interleaved(variants, repeats, device)
    rate = flops[matmul] / statistics.median(times[matmul])
    print(f"{matmul}: {summary(times.pop(matmul))}, {rate / 1e9:.1f} GFLOP/s (timed within the rounds)")
    base_name = next(iter(variants))
    print(f"{'variant':34s} {'latency median (min, max)':>34s}  {'vs ' + base_name:>30s}  {'GFLOP':>7s} {'+FLOP':>6s} "
          f"{'GFLOP/s':>8s} {'of matmul':>9s}")
    for name in times:
        achieved = flops[name] / statistics.median(times[name])
        print(f"{name:34s} {summary(times[name]):>34s}  {ratio(times[name], times[base_name]):>30s}  "
              f"{flops[name] / 1e9:7.1f} {100 * (flops[name] / flops[base_name] - 1):5.1f}% {achieved / 1e9:8.1f} "
              f"{achieved / rate:9.2f}")


def thread_sweep(variant: str, counts: list[int], repeats: int, device: torch.device) -> None:
    """Plain SAM encoder latency at each torch.set_num_threads value, interleaved."""
    sam = random_sam(variant).to(device).eval()
    size = sam.image_encoder.img_size
    image = torch.randn(1, 3, size, size, device=device)

    def with_threads(n: int):
        def run():
            torch.set_num_threads(n)
            return sam.image_encoder(image)
        return run

    default = torch.get_num_threads()
    runs = {f"{n} threads": with_threads(n) for n in counts}
    interleaved(runs, 1, device)
    times = interleaved(runs, repeats, device)
    torch.set_num_threads(default)
    for name, t in times.items():
        print(f"SAM encoder, {name:12s} {summary(t)}  vs {counts[0]} threads {ratio(t, times[f'{counts[0]} threads'])}")


def main() -> None:
    p = parser(__doc__, repeats=3)
    p.add_argument("--thread-sweep", default="", help="comma-separated thread counts to compare (plain SAM only)")
    args, device = setup(p)
    with torch.no_grad():
        if args.thread_sweep:
            thread_sweep(sam_variant(args), [int(n) for n in args.thread_sweep.split(",")], args.repeats, device)
        else:
            compare(encoder_variants(sam_variant(args), device), args.repeats, device)


if __name__ == "__main__":
    main()
