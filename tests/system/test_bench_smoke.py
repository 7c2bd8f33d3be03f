"""The benchmark harness runs end to end on a tiny day and writes valid JSON (seconds).

Speed itself is never asserted here: ``make bench`` measures it (docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_tiny_writes_json_and_a_chart(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--out", str(tmp_path)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "latest-tiny.json").read_text())
    assert results["mode"] == "tiny"
    for row in results["matcher"]:
        assert row["matcher"]["seconds"] > 0 and row["matcher"]["peak_rss_mib"] > 0
        assert row["equal_to_full_graph_optimum"] is True
        assert row["greedy"]["assigned"] <= row["matcher"]["assigned"]
    service = results["service"]
    for key in (
        "import_s",
        "raw_s3_put_s",
        "assign_s",
        "raw_batch_write_s",
        "assign_repeat_s",
        "read_p95_ms",
    ):
        assert service[key] > 0, key
    assert service["assigned"] > 0
    assert service["update"]["requests"] > 0 and service["update"]["errors"] == 0
    assert (tmp_path / "tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
