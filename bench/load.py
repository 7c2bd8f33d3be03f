"""An open-loop load generator for ``POST /update`` (run as a separate process).

Requests are sent on a fixed schedule (``rate`` per second) whatever the latency of earlier
ones, so a slow server shows up as latency rather than as a lower rate (no coordinated
omission). Each request moves one fresh assignment ``assigned -> accepted``.
Reads a JSON job on stdin, prints a JSON result on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx


async def main(job: dict) -> dict:
    url, rate, seconds, pairs = job["url"], job["rate"], job["seconds"], job["pairs"]
    n = min(int(rate * seconds), len(pairs))
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        # warm the connection pool
        await client.get("/health")

        async def one(i: int, scheduled: float) -> None:
            d, p = pairs[i]
            try:
                r = await client.post("/update", json={"driver_id": d, "package_id": p, "status": "accepted"})
                if r.status_code != 200:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            latencies.append(time.perf_counter() - scheduled)

        start = time.perf_counter()
        tasks = []
        for i in range(n):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0

    return {"requests": n, "rate": rate, "seconds": seconds, "achieved_rate": n / elapsed,
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99), "max_ms": pct(100),
            "errors": sum(errors.values()), "error_kinds": errors}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.load(sys.stdin)))))
