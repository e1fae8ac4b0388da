"""Shared helpers of the benchmark scripts: command line, machine description, interleaved timing, models."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from gara_model.adapters import GatedRankAdapter
from gara_model.adapters.variants import GatedRank
from gara_model.build import build_model
from gara_model.config import GaraConfig
from gara_model.device import resolve_device

REPO = Path(__file__).resolve().parents[1]
QKV_SHAPE = (4096, 768, 2304)  # ViT-B global-attention block: tokens x C @ C x 3C


def parser(description: str, repeats: int) -> argparse.ArgumentParser:
    """The options every benchmark takes: --tiny, --device, --threads, --repeats."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--tiny", action="store_true", help="the tiny SAM (quick run) instead of ViT-B at 1024 x 1024")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--repeats", type=int, default=repeats, help="timed rounds after one warm-up round")
    return p


def setup(p: argparse.ArgumentParser) -> tuple[argparse.Namespace, torch.device]:
    """Parses the command line, applies --threads, prints the machine; returns the arguments and the device."""
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(machine_info(device))
    return args, device


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> str:
    """One line: CPU, cores, threads, torch, device, commit, load average (the machine may be shared)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} "
            f"threads, device {device}{gpu}, commit {commit or '?'}, load average {load}")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds for one call of fn, with the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved(variants: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Times every variant once per round, round after round, so that load on the machine hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(timed(fn, device))
    return times


def summary(times: list[float]) -> str:
    """'median (min, max)' in s, or in ms below one second."""
    unit, name = (1.0, "s") if statistics.median(times) >= 1.0 else (1e-3, "ms")
    return f"{statistics.median(times) / unit:.2f} {name} (min {min(times) / unit:.2f}, max {max(times) / unit:.2f})"


def ratio(a: list[float], b: list[float]) -> str:
    """a / b of the medians, and of the minima (the least disturbed runs on a shared machine)."""
    return f"{statistics.median(a) / statistics.median(b):.3f} (of minima {min(a) / min(b):.3f})"


def _cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of fn (torch.utils.flop_counter: matmuls, convolutions, SDPA, also SDPA's CPU kernel)."""
    cpu_sdpa = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}
    with FlopCounterMode(display=False, custom_mapping=cpu_sdpa) as counter:
        fn()
    return counter.get_total_flops()


def random_image(size: int, seed: int = 0) -> np.ndarray:
    """A size x size x 3 uint8 RGB image of noise."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def sam_variant(args: argparse.Namespace) -> str:
    return "tiny" if args.tiny else "vit_b"


def random_sam(variant: str, seed: int = 0, config: GaraConfig | None = None):
    """SAM with random weights (speed does not depend on the values), with fresh `config` adapters if given."""
    torch.manual_seed(seed)
    return build_model(variant, config=config, pretrained=False)


def gara_sam(variant: str, config: GaraConfig = GaraConfig(), seed: int = 0):
    """GaRA-SAM with random weights and non-zero adapters (lora_B random), in eval mode."""
    model = random_sam(variant, seed, config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, GatedRankAdapter):
                module.lora_B.normal_(0, 0.02)
    return model.eval()


def force_rank_space(model: torch.nn.Module, space: str) -> None:
    """Every gate picks the "low" or "high" rank set, with all of its components on (eval mode)."""
    logit = {"low": -10.0, "high": 10.0}[space]
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, GatedRank):
                for mlp, bias in ((module.rank_space_gate, logit), *((g, 10.0) for g in module.component_gates)):
                    mlp[-1].weight.zero_()
                    mlp[-1].bias.fill_(bias)
