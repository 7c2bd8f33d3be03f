"""An open-loop load generator for ``POST /update`` (run as a separate process).

Requests are released on a fixed schedule (``rate`` per second) whatever the latency of earlier
ones, and each latency is measured from its scheduled time, so a slow server shows up as latency
rather than as a lower rate (no coordinated omission). Workers are threads with one persistent
``http.client`` connection each: far lighter on the CPU than an async HTTP client, which matters
on a 2-core machine shared with the API and the emulator. Each request moves one fresh
assignment ``assigned -> accepted``. Reads a JSON job on stdin, prints a JSON result on stdout.
"""

from __future__ import annotations

import http.client
import json
import queue
import sys
import threading
import time
from urllib.parse import urlsplit

WORKERS = 32


def main(job: dict) -> dict:
    url, rate, seconds, pairs = job["url"], job["rate"], job["seconds"], job["pairs"]
    n = min(int(rate * seconds), len(pairs))
    host, port = urlsplit(url).hostname, urlsplit(url).port
    work: queue.Queue = queue.Queue()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        while True:
            item = work.get()
            if item is None:
                return
            i, scheduled = item
            d, p = pairs[i]
            body = json.dumps({"driver_id": d, "package_id": p, "status": "accepted"})
            kind = None
            try:
                conn.request("POST", "/update", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    kind = str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                kind = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
            elapsed = time.perf_counter() - scheduled
            with lock:
                latencies.append(elapsed)
                if kind:
                    errors[kind] = errors.get(kind, 0) + 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        work.put((i, scheduled))
    for _ in threads:
        work.put(None)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return (
            1000 * ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
            if ordered
            else 0.0
        )

    return {
        "requests": n,
        "rate": rate,
        "seconds": seconds,
        "achieved_rate": n / elapsed,
        "client": "threads",
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": pct(100),
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.load(sys.stdin))))
