"""bench/gpu_check.py runs end to end with --tiny on the CPU and writes its report: so it cannot rot before a GPU
machine runs it. Checks the report's structure and contents, never its timings."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_tiny_writes_the_report(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--tiny", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "report.md").read_text()
    sections = re.findall(r"^## (.+)$", report, re.MULTILINE)
    assert sections == ["Machine", "Reference figures", "Device tests on cpu",
                        "Image encoder and decoder (GaraPredictor), eager", "Training step (adapters only), eager",
                        "onnxruntime vs PyTorch eager", "Node processing path (SegmentCore.process)",
                        "Image encoder and decoder (GaraPredictor), compiled",
                        "Training step (adapters only), compiled"]
    assert "| Isaac ROS Segment Anything (full SAM), Jetson AGX Orin | 2.2 fps |" in report
    assert "| Isaac ROS Segment Anything, 720p, RTX 5090 | 20.8 fps |" in report
    assert re.search(r"result: \d+ passed", report) and "failed" not in report
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[:3])
            for line in report.splitlines() if re.match(r"\| \w", line)}
    for step in ("encoder, SAM", "encoder, GaRA merged", "encoder, GaRA unmerged", "decoder, 1 object",
                 "decoder, 16 objects"):
        assert (step, "fp32", "eager") in rows, step
    assert ("encoder, GaRA merged", "fp32", "compiled") in rows
    assert {("train step, batch 4", "fp32", mode) for mode in ("eager", "compiled")} <= rows
    assert {"encoder, onnxruntime", "decoder 16, onnxruntime"} <= {row[0] for row in rows}
    assert {("embedded tiny GaRA-SAM", "720p"), ("embedded tiny GaRA-SAM", "1080p")} <= {row[:2] for row in rows}
    assert "skipped" not in report  # everything fits the default budget with --tiny
