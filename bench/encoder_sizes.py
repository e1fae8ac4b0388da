"""Image-encoder latency at several input sizes, SAM's attention vs the SDPA backend, as ratios to the largest size.

    .venv/bin/python -m bench.encoder_sizes [--tiny] [--sizes 512 640 768 1024] [--repeats 3] [--threads N]

"sam" runs segment_anything's own blocks; "sdpa" the same encoder with every attention routed through
`EncoderAttention` (one scaled_dot_product_attention call, relative positions as a float mask), as GaRA-SAM does
by default. Random weights (speed does not depend on them); both columns come from one run, taking turns.
"""

from __future__ import annotations

import copy
import statistics

import torch

from bench.common import interleaved, parser, random_sam, ratio, sam_variant, setup, summary
from gara_model.modeling import set_image_size
from gara_model.modeling.attention import EncoderAttention


def with_sdpa_attention(sam):
    """A copy of `sam` whose every encoder block computes its attention through `EncoderAttention`."""
    sam = copy.deepcopy(sam)
    for block in sam.image_encoder.blocks:
        block.attn = EncoderAttention(block.attn)
    return sam


def attention_calls(sam, device: torch.device) -> dict:
    """name -> one call of a window and of a global attention at the native size, SAM's and EncoderAttention."""
    encoder = sam.image_encoder
    grid, dim = encoder.pos_embed.shape[1], encoder.pos_embed.shape[-1]
    calls = {}
    for block in (next(b for b in encoder.blocks if b.window_size > 0), next(b for b in encoder.blocks if b.window_size == 0)):
        ws = block.window_size or grid
        windows = ((grid + ws - 1) // ws) ** 2
        x = torch.randn(windows, ws, ws, dim, device=device)  # (B * windows) x H x W x C, as the block calls it
        kind = "window" if block.window_size else "global"
        calls[f"{kind} {ws}x{ws} x {windows}, sam"] = lambda attn=block.attn, x=x: attn(x)
        calls[f"{kind} {ws}x{ws} x {windows}, sdpa"] = lambda attn=EncoderAttention(block.attn), x=x: attn(x)
    return calls


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=3)
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="input sizes (default 512 640 768 1024; tiny 64 96 128)")
    args, device = setup(p)
    variant = sam_variant(args)
    sizes = args.sizes or ([64, 96, 128] if args.tiny else [512, 640, 768, 1024])
    models = {"sam": random_sam(variant).to(device).eval()}
    models["sdpa"] = with_sdpa_attention(models["sam"])
    print(f"{variant} image encoder, batch 1, fp32, median (min, max) of {args.repeats} rounds after one warm-up round")
    with torch.no_grad():
        calls = attention_calls(models["sam"], device)
        interleaved(calls, 1, device)
        attention = interleaved(calls, args.repeats, device)
        names = list(attention)
        for sam_name, sdpa_name in zip(names[::2], names[1::2]):
            print(f"attention {sam_name}: {summary(attention[sam_name])}; sdpa {summary(attention[sdpa_name])}; "
                  f"sam/sdpa {ratio(attention[sam_name], attention[sdpa_name])}")
        results = {}
        for size in sizes:
            image = torch.randn(1, 3, size, size, device=device)
            runs = {}
            for name, model in models.items():
                set_image_size(model, size)
                runs[name] = lambda model=model: model.image_encoder(image)
            interleaved(runs, 1, device)
            results[size] = interleaved(runs, args.repeats, device)
    reference = results[max(sizes)]
    patch = models["sam"].image_encoder.patch_embed.proj.kernel_size[0]
    for size in sizes:
        times = results[size]
        print(f"{size:>5} px, {(size // patch) ** 2:>5} tokens | "
              + " | ".join(f"{name} {summary(times[name])}, /{max(sizes)} {ratio(times[name], reference[name])}" for name in models)
              + f" | sam/sdpa {statistics.median(times['sam']) / statistics.median(times['sdpa']):.2f}")


if __name__ == "__main__":
    main()
