"""/assign latency with the operational-log bucket hanging vs up (docs/reliability.md, section 4).

One app instance on the embedded emulator answers 200 small ``/assign`` calls three times: with
the log bucket up, with the event log's client pointed at a socket that accepts and never
answers, and up again. The API never waits on the shipper, so the medians should match.

Run: .venv/bin/python -m bench.log_outage
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from bench.procs import emulator
from depot.config import Settings
from depot.http.app import create_app
from depot.ops.generator import generate_day
from depot.storage.oplog import EventLog
from depot.storage.store import make_log_client

DAY = "2026-06-01"
DRIVERS = 200


@contextmanager
def blackhole() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept_forever() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for conn in held:
            conn.close()


def assign_latencies(client: TestClient, calls: int = 200) -> tuple[float, float]:
    """Median and p95 of ``calls`` one-driver ``/assign`` calls, in seconds."""
    times = []
    for i in range(calls):
        request = {
            "day": DAY,
            "driver_ids": [f"driver_{1 + i % DRIVERS}"],
            "max_per_driver": 1 + i // DRIVERS,
        }
        start = time.perf_counter()
        response = client.post("/assign", json=request)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
    return statistics.median(times), sorted(times)[int(0.95 * calls)]


def main() -> None:
    with emulator() as (endpoint, _), blackhole() as hanging_endpoint:
        settings = Settings(aws_endpoint_url=endpoint)
        with TestClient(create_app(settings)) as client:
            day = generate_day(seed=1, drivers=DRIVERS, packages_per_driver=10)
            assert client.post("/manifests", json={"day": DAY, **day}).status_code == 201
            service = client.app.state.service
            up = assign_latencies(client)

            hanging = EventLog(
                make_log_client(settings.model_copy(update={"aws_endpoint_url": hanging_endpoint})),
                settings.log_bucket,
                "bench",
                flush_interval_s=0.05,
            )
            hanging.start()
            service.events = hanging
            down = assign_latencies(client)

            service.events = client.app.state.events
            again = assign_latencies(client)

    def ms(figures: tuple[float, float]) -> str:
        return f"{figures[0] * 1e3:.2f}/{figures[1] * 1e3:.2f}"

    print(
        f"FIGURE /assign median/p95 ms: S3 up {ms(up)}, S3 log bucket hanging {ms(down)}, "
        f"up again {ms(again)}; ratio of medians {down[0] / up[0]:.3f}"
    )


if __name__ == "__main__":
    main()
