"""Evaluation reports: a Markdown table with the models side by side, gate adaptivity, CSV, JSON, a bar plot of IoU
and a picture of the gate decisions (the paper's figure 6)."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from gara_model.engine.evaluation import Evaluation, EvalRow, GateRecords, rows_as_dicts


def _models(rows: Sequence[EvalRow]) -> list[str]:
    return list(dict.fromkeys(row.model for row in rows))


def _cases(rows: Sequence[EvalRow]) -> list[tuple[str, str, str]]:
    return list(dict.fromkeys((row.dataset, row.condition, row.prompt) for row in rows))


def markdown_table(rows: Sequence[EvalRow]) -> str:
    """IoU / Dice with one column per model, then the gate statistics per model and condition (figure 6 style)."""
    models = _models(rows)
    by_key = {(r.model, r.dataset, r.condition, r.prompt): r for r in rows}
    lines = [
        "| dataset | condition | prompt | masks | " + " | ".join(f"{m} IoU | {m} Dice" for m in models) + " |",
        "|---|---|---|---:|" + "---:|---:|" * len(models),
    ]
    for dataset, condition, prompt in _cases(rows):
        cells = [by_key.get((m, dataset, condition, prompt)) for m in models]
        masks = next(c.masks for c in cells if c)
        values = " | ".join(f"{c.iou:.3f} | {c.dice:.3f}" if c else "- | -" for c in cells)
        lines.append(f"| {dataset} | {condition} | {prompt} | {masks} | {values} |")
    lines += ["", "| model | encoder ms per image (mean) |", "|---|---:|"]
    for model in models:
        times = [r.encoder_ms for r in rows if r.model == model]
        lines.append(f"| {model} | {sum(times) / len(times):.1f} |")
    gated = [r for r in rows if r.high_rank_share is not None and r.prompt == rows[0].prompt]
    if gated:
        lines += ["", "| model | dataset | condition | adapters using the higher-rank set | mean active components |", "|---|---|---|---:|---:|"]
        lines += [f"| {r.model} | {r.dataset} | {r.condition} | {r.high_rank_share:.2f} | {r.mean_active_components:.1f} |" for r in gated]
    return "\n".join(lines) + "\n"


def seed_table(rows: Sequence[EvalRow], degraded: Sequence[str], seed_separator: str = "|") -> str:
    """IoU mean ± std over seeds, one column per model, for models labelled "name|seed" (a label without the separator
    is one run). Rows: every condition x prompt, then per prompt the mean over the `degraded` conditions."""
    runs: dict[tuple[str, str, str], dict[str, float]] = {}  # (model, condition, prompt) -> seed -> IoU
    for r in rows:
        name, _, seed = r.model.partition(seed_separator)
        runs.setdefault((name, r.condition, r.prompt), {})[seed] = r.iou
    models = list(dict.fromkeys(key[0] for key in runs))
    cases = list(dict.fromkeys((r.condition, r.prompt) for r in rows))
    prompts = list(dict.fromkeys(prompt for _, prompt in cases))

    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.3f}" + (f" ± {np.std(values):.3f}" if len(values) > 1 else "")

    lines = ["| condition | prompt | " + " | ".join(models) + " |", "|---|---|" + "---:|" * len(models)]
    for condition, prompt in cases:
        lines.append(f"| {condition} | {prompt} | " + " | ".join(
            cell(list(runs[(m, condition, prompt)].values())) if (m, condition, prompt) in runs else "-" for m in models) + " |")
    for prompt in prompts:
        averages = []
        for m in models:
            seeds = runs.get((m, degraded[0], prompt), {}).keys()
            per_seed = [np.mean([runs[(m, c, prompt)][s] for c in degraded]) for s in seeds]
            averages.append(cell(per_seed) if per_seed else "-")
        lines.append(f"| **degraded average** | {prompt} | " + " | ".join(averages) + " |")
    return "\n".join(lines) + "\n"


def adaptivity_table(gates: dict[str, GateRecords]) -> str:
    """Per gated model and dataset: do the gates decide per input (gara_model.engine.gate_adaptivity)."""
    lines = [
        "| model | dataset | images | decisions per image | decisions that vary | condition read from the gates "
        "(held-out scenes) | chance | condition change / content change |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    fmt = lambda value: "-" if value is None else f"{value:.2f}"  # noqa: E731
    for model, records in gates.items():
        for dataset in dict.fromkeys(records.datasets):
            a = records.adaptivity(dataset)
            lines.append(f"| {model} | {dataset} | {a.images} | {a.decisions} | {a.varying_share:.2f} | "
                         f"{fmt(a.condition_accuracy)} | {fmt(a.chance)} | {fmt(a.condition_to_content)} |")
    return "\n".join(lines) + "\n"


def bar_plot(rows: Sequence[EvalRow], path: Path) -> None:
    """Grouped bars of IoU: one panel per prompt type, conditions on the x axis, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = _models(rows)
    prompts = list(dict.fromkeys(r.prompt for r in rows))
    conditions = list(dict.fromkeys(f"{r.dataset}/{r.condition}" for r in rows))
    fig, axes = plt.subplots(len(prompts), 1, figsize=(max(6, 1.2 * len(conditions) * max(1, len(models) / 2)), 3.2 * len(prompts)), squeeze=False)
    width = 0.8 / len(models)
    for ax, prompt in zip(axes[:, 0], prompts):
        for k, model in enumerate(models):
            values = {f"{r.dataset}/{r.condition}": r.iou for r in rows if r.model == model and r.prompt == prompt}
            ax.bar(np.arange(len(conditions)) + k * width, [values.get(c, 0) for c in conditions], width, label=model)
        ax.set_xticks(np.arange(len(conditions)) + width * (len(models) - 1) / 2, conditions, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"IoU ({prompt} prompt)")
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gate_figure(records: GateRecords, path: Path, title: str = "", scenes: int = 3, adapters: int | None = None) -> None:
    """The paper's figure 6 for one model: for the first `scenes` scenes of its first dataset under every condition,
    each adapter's binary decisions (rank set, then components: dark = on) and, last, the number of active
    components of every adapter. One row per image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dataset = records.datasets[0]
    chosen_scenes = list(dict.fromkeys(s for s, d in zip(records.scenes, records.datasets) if d == dataset))[:scenes]
    rows = [i for i, (d, s) in enumerate(zip(records.datasets, records.scenes)) if d == dataset and s in chosen_scenes]
    rows.sort(key=lambda i: (chosen_scenes.index(records.scenes[i]), i))
    labels = [f"scene {records.scenes[i]} {records.conditions[i]}" for i in rows]
    decisions = np.stack([records.decisions[i] for i in rows]).astype(float)
    layout = records.layout[:adapters] if adapters else records.layout
    widths = [sets + comps for _, sets, comps in layout]
    fig, axes = plt.subplots(1, len(layout) + 1, figsize=(1.0 + 0.09 * sum(widths) + 1.6, 0.8 + 0.22 * len(rows)),
                             gridspec_kw={"width_ratios": [max(w, 3) for w in widths] + [max(6, len(layout) // 2)]})
    start, counts = 0, []
    for ax, (name, sets, comps) in zip(axes, layout):
        block = decisions[:, start : start + sets + comps]
        ax.imshow(1 - block, cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        if sets:
            ax.axvline(sets - 0.5, color="tab:red", linewidth=1.5)
        ax.set_title(name.removeprefix("image_encoder.").replace(".attn.qkv.adapters", ""), fontsize=6, rotation=60)
        ax.set_xticks([])
        ax.set_yticks(range(len(rows)), labels if ax is axes[0] else [], fontsize=6)
        counts.append(block[:, sets:].sum(axis=1))
        start += sets + comps
    counts_ax = axes[-1]
    image = counts_ax.imshow(np.stack(counts, axis=1), cmap="viridis", aspect="auto", interpolation="nearest")
    counts_ax.set_title("active components\nper adapter", fontsize=7)
    counts_ax.set_xticks([])
    counts_ax.set_yticks([])
    fig.colorbar(image, ax=counts_ax, fraction=0.08)
    for k in range(1, len(chosen_scenes)):
        boundary = sum(records.scenes[i] == chosen_scenes[k - 1] for i in rows) * k - 0.5
        for ax in axes:
            ax.axhline(boundary, color="tab:blue", linewidth=1)
    fig.suptitle(title or "gate decisions per image (dark = on; left of the red line: rank set)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_report(evaluation: Evaluation, out_dir: str | Path) -> Path:
    """Writes results.md, results.csv, results.json, iou.png and, per gated model, gates_<model>.png into out_dir;
    returns results.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = evaluation.rows
    records = rows_as_dicts(rows)
    adaptivity = {model: {dataset: _as_dict(r.adaptivity(dataset)) for dataset in dict.fromkeys(r.datasets)}
                  for model, r in evaluation.gates.items()}
    (out_dir / "results.json").write_text(json.dumps({"rows": records, "gate_adaptivity": adaptivity}, indent=2))
    with open(out_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    bar_plot(rows, out_dir / "iou.png")
    markdown = markdown_table(rows)
    if evaluation.gates:
        markdown += "\nGate adaptivity (gara_model.engine.gate_adaptivity):\n\n" + adaptivity_table(evaluation.gates)
        for model, model_records in evaluation.gates.items():
            gate_figure(model_records, out_dir / f"gates_{_slug(model)}.png", title=f"{model}: gate decisions per image")
    path = out_dir / "results.md"
    path.write_text(markdown)
    return path


def _as_dict(adaptivity) -> dict:
    return {**asdict(adaptivity), "condition_to_content": adaptivity.condition_to_content}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
