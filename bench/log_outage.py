"""/assign latency with the operational-log bucket hanging vs up (docs/reliability.md, section 4).

Run: .venv/bin/python -m bench.log_outage
"""
import os
import socket
import statistics
import threading
import time

os.environ.setdefault("AWS_ACCESS_KEY_ID","t"); os.environ.setdefault("AWS_SECRET_ACCESS_KEY","t")
import sys; sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tests"))
from fastapi.testclient import TestClient

from conftest import start_emulator
from depot.api import create_app
from depot.oplog import EventLog
from depot.rules import generate_day
from depot.schema import bootstrap
from depot.settings import Settings
from depot.store import make_clients, make_log_client

srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(64); held=[]
threading.Thread(target=lambda: [held.append(srv.accept()[0]) for _ in iter(int, 1)], daemon=True).start()
blackhole = f"http://127.0.0.1:{srv.getsockname()[1]}"
with start_emulator() as emu:
    s = Settings(aws_endpoint_url=emu.endpoint); bootstrap(*make_clients(s), s)
    app = create_app(s)
    with TestClient(app) as c:
        c.post("/manifests", json={"day": "2026-06-01", **generate_day(seed=1, drivers=200, packages_per_driver=10)})
        def run(label, n=200):
            times = []
            for i in range(n):
                d = f"driver_{1 + i % 200}"
                t = time.perf_counter()
                r = c.post("/assign", json={"day": "2026-06-01", "driver_ids": [d], "max_per_driver": 1 + i // 200})
                times.append(time.perf_counter() - t); assert r.status_code == 200
            return statistics.median(times), sorted(times)[int(0.95 * n)]
        normal = run("normal")
        hanging = EventLog(make_log_client(s.model_copy(update={"aws_endpoint_url": blackhole})), s.log_bucket, "x", flush_interval_s=0.05)
        hanging.start(); app.state.service.events = hanging
        down = run("down")
        normal2 = (app.state.service.__setattr__("events", app.state.events), run("normal again"))[1]
        print(f"FIGURE /assign median/p95 ms: S3 up {normal[0]*1e3:.2f}/{normal[1]*1e3:.2f}, S3 log bucket hanging {down[0]*1e3:.2f}/{down[1]*1e3:.2f}, up again {normal2[0]*1e3:.2f}/{normal2[1]*1e3:.2f}; ratio of medians {down[0]/normal[0]:.3f}")
