"""``depot solve`` as a real process on a day file written by ``depot generate``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.oracle import max_assignable

ROOT = Path(__file__).resolve().parents[2]


def depot(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "depot.ops.cli", *args],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def day_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("solve") / "day.json"
    proc = depot(
        "generate",
        "--output",
        str(path),
        "--seed",
        "11",
        "--drivers",
        "12",
        "--packages-per-driver",
        "9",
        "--min-rules",
        "1",
        "--max-rules",
        "3",
        "--no-destination",
    )
    assert proc.returncode == 0, proc.stderr
    return path


def test_json_plan_is_the_optimum_with_loads_and_stage_times(day_file):
    day = json.loads(day_file.read_text())
    proc = depot("solve", str(day_file), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"assigned", "unassigned", "loads", "seconds"} <= set(out) and "reasons" not in out
    assert out["assigned"] == max_assignable(day["drivers"], day["packages"], 10)  # default cap 10
    assert out["assigned"] + out["unassigned"] == len(day["packages"])
    assert list(out["loads"]) == [d["driver_id"] for d in day["drivers"]]
    assert sum(out["loads"].values()) == out["assigned"] and max(out["loads"].values()) <= 10
    assert out["seconds"]["parse"] > 0 and out["seconds"]["match"] > 0


def test_drivers_cap_and_explain(day_file):
    day = json.loads(day_file.read_text())
    chosen = [d["driver_id"] for d in day["drivers"][:3]]
    proc = depot(
        "solve", str(day_file), "--json", "--explain", "--cap", "4", "--drivers", ",".join(chosen)
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert list(out["loads"]) == chosen and max(out["loads"].values()) <= 4
    assert out["assigned"] == max_assignable(day["drivers"][:3], day["packages"], 4)
    assert len(out["reasons"]) == out["unassigned"]
    assert {r["reason"] for r in out["reasons"].values()} <= {
        "no_eligible_driver",
        "eligible_drivers_full",
    }
    assert out["seconds"]["explain"] > 0


def test_readable_table(day_file):
    proc = depot("solve", str(day_file), "--explain")
    assert proc.returncode == 0, proc.stderr
    assert (
        "assigned" in proc.stdout and "driver_12" in proc.stdout and "why packages" in proc.stdout
    )
    assert "default: 10" in depot("solve", "--help").stdout


@pytest.mark.parametrize(
    ("body", "args", "message"),
    [
        (None, [], "cannot read"),
        ("{not json", [], "not a valid day"),
        (
            (
                '{"drivers": [{"driver_id": "a", "rules": '
                '[{"rule_id": "r", "code": "MAX_WEIGHT", "params": {}}]}]}'
            ),
            [],
            "limit_kg",
        ),
        (
            '{"drivers": [{"driver_id": "a", "rules": []}], "packages": []}',
            ["--drivers", "a,ghost"],
            "ghost",
        ),
    ],
    ids=["missing-file", "not-json", "bad-rule", "unknown-driver"],
)
def test_bad_input_exits_2_with_a_message(tmp_path, body, args, message):
    path = tmp_path / "day.json"
    if body is not None:
        path.write_text(body)
    proc = depot("solve", str(path), *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr and "Traceback" not in proc.stderr
