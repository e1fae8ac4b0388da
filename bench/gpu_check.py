"""GPU check: the device-parametrised tests on CUDA, then the model's speed, as one Markdown report.

    .venv/bin/python -m bench.gpu_check [--out outputs/gpu_check] [--budget 450] [--device auto] [--tiny]

Made for a machine with one CUDA GPU and no network: random weights (ViT-B at 1024 x 1024; speed does not depend on
the values), nothing downloaded, done within --budget seconds (default 450, under 8 minutes). Sections run in order;
one that would not fit in the time left is listed as skipped in the report, with the reason.

1. the tests marked `device` (tests/conftest.py) on the device, in a pytest subprocess;
2. GaraPredictor: image encoder (plain SAM, GaRA merged, GaRA unmerged) and decoder (1 and 16 objects), fp32 and
   fp16, eager;
3. a training step (adapters only) in fp32 and with AMP (fp16 autocast and a GradScaler), eager;
4. onnxruntime (CUDA or TensorRT providers where installed) against PyTorch eager;
5. the node's processing path (gara_ros.core.SegmentCore.process: decode, model, masks) at 720p and 1080p with the
   embedded tiny model and ViT-B;
6. 2 and 3 compiled (torch.compile; in 2 GaRA merged only), last, as compiling ViT-B takes minutes.

--tiny: the tiny SAM and a quick subset of the tests, compiled with the "eager" backend (the code path without
inductor's minutes of compiling), on the CPU where there is no GPU: a minute or two. CI runs it that way
(tests/bench/test_gpu_check.py) so that the script cannot rot. The report's format: docs/benchmarks.md, "GPU check".
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from bench.common import (
    REPO, force_rank_space, gara_sam, interleaved, machine_info, random_image, random_sam, synchronize, timed,
)
from bench.prompts import point_prompts
from gara_model.device import resolve_device
from gara_model.modeling import set_merged_inference
from gara_model.predictor import GaraPredictor

ISAAC_ROS_SOURCE = "NVIDIA Isaac ROS documentation, as quoted in issue 14"
# Figures to read ours against: frames per second of whole-image segmentation pipelines.
REFERENCES = [
    ("Isaac ROS Segment Anything (full SAM), Jetson AGX Orin", "2.2 fps", ISAAC_ROS_SOURCE),
    ("Isaac ROS Segment Anything, 720p, RTX 5090", "20.8 fps", ISAAC_ROS_SOURCE),
    ("GaRA-SAM paper (Lee et al., 2025)", "not stated", "the paper's speed is not recorded in this project's notes"),
]
# Quick subset of the device tests for --tiny (CI runs the whole suite anyway).
TINY_TESTS = ["tests/model/test_attention.py", "tests/model/test_gara_sam.py::test_merged_equals_unmerged"]
NODE_SIZES = ((1280, 720), (1920, 1080))
NODE_OBJECTS = 4


class Deadline:
    """Seconds left of the check's budget."""

    def __init__(self, budget: float):
        self.end = time.monotonic() + budget

    def left(self) -> float:
        return self.end - time.monotonic()


class Report:
    """Markdown: sections of lines; a section that did not run says why."""

    def __init__(self):
        self.sections: list[tuple[str, list[str]]] = []

    def section(self, title: str) -> list[str]:
        lines: list[str] = []
        self.sections.append((title, lines))
        return lines

    def text(self) -> str:
        return "\n\n".join(f"## {title}\n\n" + "\n".join(lines) for title, lines in self.sections) + "\n"


def precisions(device: torch.device) -> tuple[str, ...]:
    """fp32, and fp16 autocast on CUDA (on the CPU it is no deployment mode, and slow: "auto" is fp32 there)."""
    return ("fp32", "fp16") if device.type == "cuda" else ("fp32",)


def table(rows: list[list[str]], header: list[str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def ms(times: list[float]) -> str:
    return f"{1e3 * statistics.median(times):.2f} ({1e3 * min(times):.2f}-{1e3 * max(times):.2f})"


def per_second(times: list[float]) -> str:
    return f"{1 / statistics.median(times):.1f}"


def timed_rounds(variants: dict[str, Callable[[], object]], repeats: int, device: torch.device
                 ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """One warm-up call per variant (its time: compiling, first-call set-up), then interleaved rounds."""
    first = {name: timed(fn, device) for name, fn in variants.items()}
    return first, interleaved(variants, repeats, device)


def machine_lines(device: torch.device, budget: float, args: argparse.Namespace) -> list[str]:
    import onnxruntime

    lines = [f"- {machine_info(device)}"]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        lines.append(f"- GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability "
                     f"{props.major}.{props.minor}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    providers = ", ".join(onnxruntime.get_available_providers())
    lines.append(f"- onnxruntime {onnxruntime.__version__}, providers: {providers}")
    model = "tiny SAM" if args.tiny else "ViT-B at 1024 x 1024"
    lines.append(f"- model: {model}, random weights; GaRA r_L 16 / r_H 256 "
                 "with the higher-rank set forced (all 256 components: the heaviest merge); budget "
                 f"{budget:.0f} s; {args.repeats} timed rounds after one warm-up call")
    return lines


def run_tests(device: torch.device, paths: list[str], deadline: Deadline, reserve: float) -> list[str]:
    """pytest -m device --device DEVICE on `paths` in a subprocess, within the time left less `reserve`."""
    command = [sys.executable, "-m", "pytest", "-q", "-m", "device", "--device", str(device), "-p", "no:cacheprovider",
               "-rfE", *paths]
    shown = "python -m pytest -q -m device --device " + str(device) + " " + " ".join(paths)
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                              timeout=max(deadline.left() - reserve, 30))
    except subprocess.TimeoutExpired:
        return [f"`{shown}`", "", "**not finished**: stopped at the time budget"]
    summary = [line for line in done.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    failures = [f"- {line}" for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    result = summary[-1].strip("= ") if summary else f"no summary (exit code {done.returncode})"
    return [f"`{shown}`", "", f"result: {result}", *([""] + failures if failures else [])]


def predictor_section(variant: str, device: torch.device, repeats: int, mode: str, compile_backend_name: str,
                      deadline: Deadline, estimate: dict[str, float], sam_encoder: dict[str, list[float]]) -> list[str]:
    """Encoder and decoder through GaraPredictor per precision, `mode` "eager" or "compiled"; a configuration that
    would not fit is skipped. sam_encoder: precision -> eager SAM encoder times (eager fills it, compiled reads it)."""
    sam = random_sam(variant)
    merged = gara_sam(variant)
    force_rank_space(merged, "high")
    unmerged = copy.deepcopy(merged)
    set_merged_inference(unmerged, False)
    size = merged.image_encoder.img_size
    image = random_image(size)
    objects = {n: point_prompts(n, size) for n in (1, 16)}
    rows, skipped = [], []
    for precision in precisions(device):
        if deadline.left() < estimate[mode]:
            skipped.append(f"{precision} {mode}")
            continue
        # compiled: GaRA merged only (each compile of ViT-B takes minutes); rows compare with eager SAM
        models = {"GaRA merged": merged}
        if mode == "eager":
            models = {"SAM": sam, **models, "GaRA unmerged": unmerged}
        with compile_backend(compile_backend_name):
            predictors = {name: GaraPredictor(model, device=device, precision=precision, compile=mode == "compiled")
                          for name, model in models.items()}
            variants = {f"encoder, {name}": (lambda p=p: p.set_image(image)) for name, p in predictors.items()}
            gara = predictors["GaRA merged"]
            gara.set_image(image)
            variants |= {f"decoder, {n} object{'s' * (n > 1)}": (lambda o=o: gara.predict(o))
                         for n, o in objects.items()}
            first, times = timed_rounds(variants, repeats, device)
        if mode == "eager":
            sam_encoder[precision] = times["encoder, SAM"]
        for name, t in times.items():
            base = sam_encoder.get(precision)
            is_encoder = name.startswith("encoder") and base
            versus = f"{statistics.median(t) / statistics.median(base):.3f}" if is_encoder else ""
            rows.append([name, precision, mode, ms(t), per_second(t), versus, f"{first[name]:.1f}"])
        del predictors
        _free(device)
    lines = table(rows, ["step", "precision", "mode", "ms median (min-max)", "per s", "vs SAM encoder", "first call s"])
    if mode == "compiled":
        lines.append("\nGaRA merged only; 'vs SAM encoder' compares with eager SAM at the same precision; 'first call' "
                     "includes compiling")
    if mode == "compiled" and compile_backend_name != "inductor":
        lines.append(f"\ncompiled with torch.compile backend {compile_backend_name!r}: the code path, not "
                     "inductor's speed")
    return lines + ([f"\nskipped (time budget): {', '.join(skipped)}"] if skipped else [])


@contextlib.contextmanager
def compile_backend(backend: str):
    """torch.compile with `backend` inside the block (GaraPredictor(compile=True) calls torch.compile itself)."""
    original = torch.compile
    torch.compile = functools.partial(original, backend=backend)
    try:
        yield
    finally:
        torch.compile = original


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def training_section(variant: str, device: torch.device, repeats: int, mode: str, compile_backend_name: str,
                     deadline: Deadline, estimate: dict[str, float]) -> list[str]:
    """The trainer's `train_step` (adapters only) on a synthetic batch: fp32, and AMP (fp16 autocast + GradScaler)."""
    from bench.train_step import synthetic_batch
    from gara_model.engine.config import TrainConfig
    from gara_model.engine.distributed import Distributed
    from gara_model.engine.optim import build_optimizer
    from gara_model.engine.trainer import train_step

    batch_size = 2 if variant == "vit_b" else 4
    rows, skipped = [], []
    for precision in precisions(device):
        if deadline.left() < estimate[mode]:
            skipped.append(f"{precision} {mode}")
            continue
        cfg = TrainConfig(precision=precision, batch_size=batch_size)
        model = gara_sam(variant).to(device).train()
        encoder = model.image_encoder
        if mode == "compiled":
            encoder = torch.compile(encoder, backend=compile_backend_name)
        optimizer = build_optimizer(model, cfg)
        scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and precision == "fp16")
        batch = synthetic_batch(model.image_encoder.img_size, batch_size)
        steps = iter(range(10**6))

        def step():
            train_step(model, encoder, batch, optimizer, scaler, cfg, next(steps), Distributed(0, 1, device))

        first, times = timed_rounds({"step": step}, repeats, device)
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}" if device.type == "cuda" else "-"
        rows.append([f"train step, batch {batch_size}", "AMP fp16" if precision == "fp16" else "fp32", mode,
                     ms(times["step"]), per_second(times["step"]), f"{first['step']:.1f}", peak])
        model = optimizer = encoder = None  # freed before the next configuration builds its own
        _free(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
    lines = table(rows, ["step", "precision", "mode", "ms median (min-max)", "per s", "first call s", "peak GiB"])
    return lines + ([f"\nskipped (time budget): {', '.join(skipped)}"] if skipped else [])


def onnxruntime_section(variant: str, device: torch.device, repeats: int, deadline: Deadline,
                        estimate: float) -> list[str]:
    """The exported GaRA-SAM in onnxruntime against PyTorch eager (fp32), encoder and decoder."""
    import onnxruntime

    from gara_model.export import export_onnx

    if device.type == "cuda" and not {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(
            onnxruntime.get_available_providers()):
        return ["not run: the installed onnxruntime has no CUDA or TensorRT provider (install onnxruntime-gpu)"]
    if deadline.left() < estimate:
        return ["skipped (time budget)"]
    model = gara_sam(variant)
    force_rank_space(model, "high")
    size = model.image_encoder.img_size
    image, objects = random_image(size), {n: point_prompts(n, size) for n in (1, 16)}
    with tempfile.TemporaryDirectory(prefix="gara_gpu_check_") as export_dir:
        started = time.perf_counter()
        export_onnx(model, export_dir)
        export_s = time.perf_counter() - started
        predictors = {"PyTorch eager": GaraPredictor(model, device=device, precision="fp32"),
                      "onnxruntime": GaraPredictor(model, device=device, backend="onnxruntime", onnx_dir=export_dir)}
        variants = {}
        for name, predictor in predictors.items():
            predictor.set_image(image)
            variants[f"encoder, {name}"] = lambda p=predictor: p.set_image(image)
            variants |= {f"decoder {n}, {name}": (lambda p=predictor, o=o: p.predict(o)) for n, o in objects.items()}
        first, times = timed_rounds(variants, repeats, device)
        providers = predictors["onnxruntime"].backend.providers
    rows = []
    for name, t in times.items():
        versus = statistics.median(t) / statistics.median(times[name.replace("onnxruntime", "PyTorch eager")])
        rows.append([name, ms(t), per_second(t), f"{versus:.3f}", f"{first[name]:.1f}"])
    return [f"fp32 files, exported in {export_s:.0f} s; providers {', '.join(providers)}", "",
            *table(rows, ["step", "ms median (min-max)", "per s", "vs PyTorch eager", "first call s"])]


def node_section(variant: str, device: torch.device, repeats: int, deadline: Deadline, estimate: float) -> list[str]:
    """SegmentCore.process (decode the bgr8 message, set_image, decode NODE_OBJECTS objects, build ~/mask) per frame."""
    try:
        from bench.ros_common import camera_frame
        from gara_ros import conversions
        from gara_ros.core import Job, SegmentCore, Settings
        from gara_ros.frames import Frame
        from gara_ros.segment_node import PARAMETERS
    except ImportError as error:
        return [f"not run: the ROS 2 messages are not installed here ({error}); scripts/setup_ros.sh installs them"]
    settings = Settings(**{name: PARAMETERS[name][0] for name in Settings.__dataclass_fields__})
    models = {"embedded tiny GaRA-SAM": lambda: GaraPredictor.from_files(device=device)}
    if variant == "vit_b":
        models["ViT-B GaRA-SAM (random)"] = lambda: GaraPredictor(gara_sam("vit_b"), device=device)
    rows, skipped = [], []
    for model_name, make in models.items():
        if deadline.left() < estimate:
            skipped.append(model_name)
            continue
        predictor = make()
        core = SegmentCore(predictor, conversions.image_to_rgb, settings, lambda level, line: None, lambda job: None)
        stages: dict[str, list[dict]] = {}
        variants = {}
        for width, height in NODE_SIZES:
            frame = Frame(conversions.array_to_image(camera_frame(width, height), "bgr8"), 1)
            prompts = point_prompts(NODE_OBJECTS, min(width, height), seed=1)
            key = f"{height}p"
            stages[key] = []

            def run(frame=frame, prompts=prompts, key=key):
                stages[key].append(core.process(Job(frame, prompts), {"mask"}).timer.ms)

            variants[key] = run
        _, times = timed_rounds(variants, repeats, device)
        for key, t in times.items():
            stage = {name: statistics.median(s[name] for s in stages[key][-repeats:]) for name in stages[key][-1]}
            rows.append([model_name, key, ms(t), per_second(t),
                         ", ".join(f"{name} {value:.1f}" for name, value in stage.items())])
        synchronize(device)
    lines = [f"{NODE_OBJECTS} one-point objects per frame, bgr8 input, ~/mask output; precision auto "
             "(fp16 on CUDA); no DDS transfer (bench.node_latency measures that)", "",
             *table(rows, ["model", "frame", "ms median (min-max)", "frames per s", "stages, ms"])]
    return lines + ([f"\nskipped (time budget): {', '.join(skipped)}"] if skipped else [])


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="outputs/gpu_check", help="directory of report.md")
    p.add_argument("--budget", type=float, default=450.0, help="seconds for the whole check (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (cuda if available) | cuda | cuda:N | cpu")
    p.add_argument("--tiny", action="store_true", help="tiny SAM, quick test subset, eager compile backend")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default: 10, tiny 3)")
    args = p.parse_args(argv)
    started = time.monotonic()
    deadline = Deadline(args.budget)
    device = resolve_device(args.device)
    args.repeats = args.repeats or (3 if args.tiny else 10)
    variant = "tiny" if args.tiny else "vit_b"
    compile_backend_name = "eager" if args.tiny else "inductor"
    # seconds a section needs at least: ViT-B compiles take minutes, tiny ones with the eager backend seconds
    estimate = {"eager": 5.0, "compiled": 10.0} if args.tiny else {"eager": 20.0, "compiled": 120.0}
    report = Report()
    report.section("Machine").extend(machine_lines(device, args.budget, args))
    report.section("Reference figures").extend(table([list(r) for r in REFERENCES], ["what", "figure", "source"]))
    tests = TINY_TESTS if args.tiny else ["tests"]
    print(f"gpu_check: tests on {device} ...", flush=True)
    report.section(f"Device tests on {device}").extend(run_tests(device, tests, deadline, reserve=0.6 * args.budget))
    # eager first, compiled last: compiling ViT-B takes minutes, and what does not fit the budget is skipped
    sam_encoder: dict[str, list[float]] = {}
    train_repeats = max(2, args.repeats // 2)
    for mode in ("eager", "compiled"):
        print(f"gpu_check: encoder and decoder, {mode} ...", flush=True)
        with torch.no_grad():
            report.section(f"Image encoder and decoder (GaraPredictor), {mode}").extend(predictor_section(
                variant, device, args.repeats, mode, compile_backend_name, deadline, estimate, sam_encoder))
        print(f"gpu_check: training step, {mode} ...", flush=True)
        report.section(f"Training step (adapters only), {mode}").extend(training_section(
            variant, device, train_repeats, mode, compile_backend_name, deadline, estimate))
        if mode == "eager":
            with torch.no_grad():
                print("gpu_check: onnxruntime ...", flush=True)
                report.section("onnxruntime vs PyTorch eager").extend(
                    onnxruntime_section(variant, device, args.repeats, deadline, estimate["compiled"]))
                print("gpu_check: node ...", flush=True)
                report.section("Node processing path (SegmentCore.process)").extend(
                    node_section(variant, device, args.repeats, deadline, estimate["eager"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.md"
    path.write_text(f"# gara GPU check\n\nfinished in {time.monotonic() - started:.0f} s of a {args.budget:.0f} s "
                    "budget\n\n" + report.text())
    print(f"gpu_check: report written to {path}")
    return path


if __name__ == "__main__":
    main()
