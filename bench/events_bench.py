"""``GET /events`` under load: several hundred subscribers on one API process.

On a fresh stack (emulator and API as processes): a day is imported and assigned; then
``/update`` runs an open-loop load (``bench.load``, another process) twice, without subscribers
and with ``SUBSCRIBERS`` open event streams, and the p50/p99 latencies are compared; a probe
subscriber measures, for updates sent one at a time, the time from ``/update``'s answer to the
event's arrival. Run: ``python -m bench.events_bench`` (writes
``bench/results/events-<time>.json``).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.procs import stack
from bench.service_bench import update_load

DAY = "2030-02-20"
SUBSCRIBERS = 300
RESULTS = Path(__file__).resolve().parent / "results"


def _subscribers(
    url: str, n: int, stop: threading.Event, ready: threading.Event, received: list[int]
) -> None:
    """``n`` event streams on one asyncio loop (one thread), counting what arrives."""

    async def one(client: httpx.AsyncClient) -> None:
        async with client.stream("GET", f"{url}/events", params={"day": DAY}) as stream:
            connected = False
            async for chunk in stream.aiter_raw():  # counted, not parsed: the client stays light
                if not connected and b": connected" in chunk:
                    connected = True
                    received[0] += 1
                    if received[0] >= n:
                        ready.set()
                received[1] += chunk.count(b"\ndata: ")
                if stop.is_set():
                    return

    async def main() -> None:
        limits = httpx.Limits(max_connections=n + 10)
        async with httpx.AsyncClient(timeout=None, limits=limits) as client:
            tasks = [asyncio.create_task(one(client)) for _ in range(n)]
            while not stop.is_set():
                await asyncio.sleep(0.2)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def delivery_latency(url: str, pairs: list[tuple[str, str]], n: int = 20) -> list[float]:
    """Seconds from an /update's answer to its event on a probe subscriber."""
    arrived: dict[str, float] = {}
    done = threading.Event()
    connected = threading.Event()

    def probe() -> None:
        with (
            httpx.Client(timeout=None) as c,
            c.stream("GET", f"{url}/events", params={"day": DAY}) as s,
        ):
            for line in s.iter_lines():
                if line == ": connected":
                    connected.set()
                elif line.startswith("data: "):
                    event = json.loads(line[6:])
                    if event.get("type") == "status_changed":
                        arrived[event["package_id"]] = time.perf_counter()
                if done.is_set():
                    return

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    connected.wait(30)
    latencies = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for d, p in pairs[:n]:
            http.post("/update", json={"driver_id": d, "package_id": p, "status": "accepted"})
            sent = time.perf_counter()
            deadline = sent + 10
            while p not in arrived and time.perf_counter() < deadline:
                time.sleep(0.005)  # polling the probe's record: a measurement, not synchronisation
            if p in arrived:
                latencies.append(arrived[p] - sent)
    done.set()
    return latencies


def run(
    drivers: int = 200,
    per_driver: int = 50,
    rate: float = 50.0,
    seconds: float = 15.0,
    subscribers: int = SUBSCRIBERS,
    log=print,
) -> dict[str, Any]:
    from depot.ops.generator import generate_day

    payload = generate_day(
        seed=9, drivers=drivers, packages_per_driver=per_driver, min_rules=0, max_rules=1
    )
    out: dict[str, Any] = {"subscribers": subscribers, "rate": rate, "seconds": seconds}
    with stack() as st, httpx.Client(base_url=st.api, timeout=600) as http:
        assert http.post("/manifests", json={"day": DAY, **payload}).status_code == 201
        answer = http.post(
            "/assign",
            json={
                "day": DAY,
                "driver_ids": [d["driver_id"] for d in payload["drivers"]],
                "max_per_driver": per_driver,
            },
        ).json()
        pairs = [(d, p) for d, ps in answer["assignments"].items() for p in ps]
        third = len(pairs) // 3
        out["update_without_subscribers"] = update_load(st.api, pairs[:third], rate, seconds)
        log(f"/update, no subscribers: {out['update_without_subscribers']}")
        stop, ready, received = threading.Event(), threading.Event(), [0, 0]
        thread = threading.Thread(
            target=_subscribers, args=(st.api, subscribers, stop, ready, received), daemon=True
        )
        thread.start()
        out["subscribers_connected"] = ready.wait(120) and received[0]
        out["update_with_subscribers"] = update_load(
            st.api, pairs[third : 2 * third], rate, seconds
        )
        log(f"/update, {subscribers} subscribers: {out['update_with_subscribers']}")
        latencies = delivery_latency(st.api, pairs[2 * third :])
        out["delivery_median_s"] = statistics.median(latencies) if latencies else None
        out["delivery_max_s"] = max(latencies) if latencies else None
        out["events_received_by_subscribers"] = received[1]
        stop.set()
        thread.join(30)
        log(
            f"event delivery: median {out['delivery_median_s']}, max {out['delivery_max_s']}; "
            f"{received[1]} events fanned out to {subscribers} subscribers"
        )
    return out


if __name__ == "__main__":
    result = run()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"events-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print(f"wrote {path}")
