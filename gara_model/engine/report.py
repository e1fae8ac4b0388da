"""Evaluation reports: a Markdown table with the models side by side, CSV, JSON and a bar plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

from gara_model.engine.evaluation import EvalRow, rows_as_dicts


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
        lines += ["", "| model | dataset | condition | images choosing the higher-rank set | mean active components |", "|---|---|---|---:|---:|"]
        lines += [f"| {r.model} | {r.dataset} | {r.condition} | {r.high_rank_share:.2f} | {r.mean_active_components:.1f} |" for r in gated]
    return "\n".join(lines) + "\n"


def bar_plot(rows: Sequence[EvalRow], path: Path) -> None:
    """Grouped bars of IoU: one panel per prompt type, conditions on the x axis, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

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


def write_report(rows: Sequence[EvalRow], out_dir: str | Path) -> Path:
    """Writes results.md, results.csv, results.json and iou.png into out_dir; returns results.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = rows_as_dicts(rows)
    (out_dir / "results.json").write_text(json.dumps(records, indent=2))
    with open(out_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    bar_plot(rows, out_dir / "iou.png")
    markdown = out_dir / "results.md"
    markdown.write_text(markdown_table(rows))
    return markdown
