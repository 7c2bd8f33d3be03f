"""The board on a 100,000-package day (issue 13), in the system Chromium.

``python bench/board_bench.py [--drivers 1000 --per-driver 100 --updates 20]`` starts an
emulator and the API as processes, imports a generated day, assigns it, then measures:

- **first render**: from navigation to the board's first complete render (tiles, both lists, the
  plot; the page sets ``body[data-ready]``), and the bytes the page fetched doing it;
- **update to board**: from sending ``POST /update`` to the board, open all along, showing the
  change (its "accepted" tile counting it; the change reaches the page through ``GET /events``).

Writes ``bench/results/board-<time>.json`` and ``bench/results/latest-board.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

from depot.ops.generator import generate_day
from support.apiproc import provision, start_api
from support.browser import chromium, open_page
from support.processes import start_emulator

RESULTS = ROOT / "bench" / "results"
DAY = "2079-06-01"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_s": statistics.median(values),
        "p95_s": pct(values, 0.95),
        "max_s": max(values),
    }


def response_bytes(response) -> int:
    """The body's size (the event stream, never finished, counts as 0)."""
    if "text/event-stream" in response.headers.get("content-type", ""):
        return 0
    length = response.headers.get("content-length")
    return int(length) if length else len(response.body())


def run(drivers: int, per_driver: int, updates: int, renders: int) -> dict:
    with start_emulator() as emu:
        provision(emu.endpoint)
        with (
            start_api(emu.endpoint, timeout=120) as api,
            httpx.Client(base_url=api.url, timeout=600) as http,
        ):
            body = generate_day(seed=13, drivers=drivers, packages_per_driver=per_driver)
            ids = [d["driver_id"] for d in body["drivers"]]
            http.post("/manifests", json={"day": DAY, **body}).raise_for_status()
            del body
            http.post(
                "/assign", json={"day": DAY, "driver_ids": ids, "max_per_driver": per_driver}
            ).raise_for_status()
            counts = http.get(f"/days/{DAY}/summary").json()["counts"]
            first, fetched = [], []
            with chromium() as new_context:
                for _ in range(renders):
                    context = new_context(api.url)
                    sizes: list[int] = []
                    context.on("response", lambda r, sizes=sizes: sizes.append(response_bytes(r)))
                    start = time.perf_counter()
                    page = open_page(context, f"/board?day={DAY}")
                    page.wait_for_selector("body[data-ready='1']", timeout=120_000)
                    first.append(time.perf_counter() - start)
                    fetched.append(sum(sizes))
                    context.close()
                context = new_context(api.url)
                page = open_page(context, f"/board?day={DAY}")
                page.wait_for_selector("body[data-ready='1']", timeout=120_000)
                page.wait_for_selector("#live.ok", timeout=60_000)
                accepted = int(page.locator("[data-count='accepted']").inner_text())
                latency = []
                for driver_id in ids[:updates]:
                    package_id = http.get(
                        f"/drivers/{driver_id}/assignments", params={"day": DAY}
                    ).json()["assignments"][0]["package_id"]
                    accepted += 1
                    start = time.perf_counter()
                    http.post(
                        "/update",
                        json={
                            "driver_id": driver_id,
                            "package_id": package_id,
                            "status": "accepted",
                        },
                    ).raise_for_status()
                    page.wait_for_function(
                        "n => document.querySelector(\"[data-count='accepted']\")"
                        ".textContent === String(n)",
                        arg=accepted,
                        timeout=60_000,
                        polling="raf",
                    )
                    latency.append(time.perf_counter() - start)
    return {
        "day": {"drivers": drivers, "packages": drivers * per_driver, **counts},
        "first_render": {**summary(first), "bytes_fetched_median": statistics.median(fetched)},
        "update_to_board": summary(latency),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--drivers", type=int, default=1000)
    parser.add_argument("--per-driver", type=int, default=100)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--renders", type=int, default=5)
    args = parser.parse_args(argv)
    result = {
        "bench": "board",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        **run(args.drivers, args.per_driver, args.updates, args.renders),
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for path in (RESULTS / f"board-{stamp}.json", RESULTS / "latest-board.json"):
        path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
