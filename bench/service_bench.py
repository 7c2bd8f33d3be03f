"""End-to-end figures on the embedded emulator: import, /assign against the raw-write floor,
a repeated /assign, reads, and /update latency under an open-loop load from another process."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.procs import stack

DAY = "2030-01-15"


def _client(endpoint: str, service: str):
    from depot.config import Settings
    from depot.storage.store import make_clients

    dynamodb, s3 = make_clients(Settings(aws_endpoint_url=endpoint))
    return dynamodb if service == "dynamodb" else s3


def raw_item(i: int, package: dict[str, Any], prefix: str) -> dict[str, Any]:
    """An item shaped like Depot's assignment item (same attributes and sizes)."""
    from depot.storage.aws import to_item

    now = time.time()
    record = {
        "driver_id": f"{prefix}_{i % 1000}",
        "package_id": package["package_id"],
        "status": "assigned",
        "day": DAY,
        "assigned_at": now,
        "updated_at": now,
        "version": 1,
        "run": "00000002-0123456789abcdef0123456789abcdef",
        "weight_kg": package["weight_kg"],
        "volume_m3": package["volume_m3"],
        "region": package["region"],
        "is_express": package["is_express"],
        "is_perishable": package["is_perishable"],
    }
    if package.get("destination"):
        record["destination"] = package["destination"]
    return to_item(record)


def raw_batch_write(endpoint: str, items: list[dict[str, Any]], workers: int = 4) -> float:
    """The floor: pre-built BatchWriteItem requests of 25, sent by ``workers`` threads."""
    from depot.config import Settings

    dynamodb = _client(endpoint, "dynamodb")
    table = Settings().assignments_table
    batches = [items[i : i + 25] for i in range(0, len(items), 25)]

    def send(batch):
        requests = [{"PutRequest": {"Item": it}} for it in batch]
        while requests:
            out = dynamodb.batch_write_item(RequestItems={table: requests})
            requests = out.get("UnprocessedItems", {}).get(table, [])

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(send, batches))
    return time.perf_counter() - start


def raw_s3_put(endpoint: str, body: bytes) -> float:
    from depot.config import Settings

    s3 = _client(endpoint, "s3")
    start = time.perf_counter()
    s3.put_object(
        Bucket=Settings().state_bucket,
        Key=f"bench/raw-{time.time_ns()}.json",
        Body=body,
        ContentType="application/json",
    )
    return time.perf_counter() - start


def import_rounds(
    http: httpx.Client, endpoint: str, body: bytes, day: dict[str, Any], rounds: int
) -> dict[str, Any]:
    """``POST /manifests`` of the day, each round right after a raw S3 PUT of the same bytes.

    The first round imports the bench's day (later assigned); the others import the same lists
    under other dates, so that each is a day's first import. Figures are medians.
    """
    from depot.storage.objects import pack

    pairs = []
    for i in range(rounds):
        # days a month apart: outside the window where a package id is another attempt (design.md)
        payload = body if i == 0 else json.dumps({"day": f"2032-{i:02d}-15", **day}).encode()
        put_s = raw_s3_put(endpoint, payload)
        start = time.perf_counter()
        r = http.post("/manifests", content=payload, headers={"content-type": "application/json"})
        pairs.append((time.perf_counter() - start, put_s))
        assert r.status_code == 201, r.text[:500]
    packed = pack(body)
    import_s, put_s = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
    return {
        "import_s": import_s,
        "raw_s3_put_s": put_s,
        "import_vs_s3_put": import_s / put_s,
        "import_rounds": [
            {"import_s": round(a, 4), "raw_s3_put_s": round(b, 4), "ratio": round(a / b, 3)}
            for a, b in pairs
        ],
        "stored_manifest_bytes": len(packed),
        "raw_s3_put_stored_bytes_s": raw_s3_put(endpoint, packed),
    }


def parse_times(body: bytes, repeat: int = 3) -> dict[str, float]:
    """In this process, best of ``repeat``: reading a body as an import does (the fast decoder),
    and the pydantic models' path that names errors (which a body the fast decoder refuses
    takes)."""
    from depot.core.manifest import _decode_checked, parse_manifest
    from depot.core.models import gc_paused

    def best(read) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            with gc_paused():
                read(body)
            times.append(time.perf_counter() - start)
        return min(times)

    return {"parse_s": best(parse_manifest), "parse_checked_s": best(_decode_checked)}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def run(
    drivers: int = 1000,
    packages_per_driver: int = 100,
    cap: int = 100,
    seed: int = 6,
    update_rate: float = 100.0,
    update_seconds: float = 60.0,
    reads: int = 200,
    import_rounds_n: int = 3,
    log=print,
) -> dict[str, Any]:
    from depot.ops.generator import generate_day

    day = generate_day(
        seed=seed,
        drivers=drivers,
        packages_per_driver=packages_per_driver,
        min_rules=2,
        max_rules=4,
    )
    body = json.dumps({"day": DAY, **day}).encode()
    out: dict[str, Any] = {
        "drivers": drivers,
        "packages": drivers * packages_per_driver,
        "cap": cap,
        "manifest_bytes": len(body),
    }
    driver_ids = [d["driver_id"] for d in day["drivers"]]
    out.update(parse_times(body))
    log(
        f"parse + validate {out['packages']:,} packages: {out['parse_s']:.3f}s "
        f"(the models' path alone {out['parse_checked_s']:.3f}s)"
    )
    api_env = {}
    from depot.config import Settings

    if (
        len(body) > Settings().max_manifest_bytes
    ):  # the generator's 100k day with destinations is ~38 MB
        api_env["DEPOT_MAX_MANIFEST_BYTES"] = str(2 * len(body))
    out["api_env"] = api_env
    with stack(api_env) as st, httpx.Client(base_url=st.api, timeout=600) as http:
        log(f"stack up: emulator {st.endpoint}, API {st.api}")
        # warm both processes (imports, first requests)
        raw_s3_put(st.endpoint, b"{}")
        out.update(import_rounds(http, st.endpoint, body, day, import_rounds_n))
        log(
            f"import {out['import_s']:.2f}s, "
            f"raw S3 PUT of the same bytes {out['raw_s3_put_s']:.2f}s "
            f"(x{out['import_vs_s3_put']:.2f}; rounds {out['import_rounds']})"
        )

        request = {"day": DAY, "driver_ids": driver_ids, "max_per_driver": cap}
        start = time.perf_counter()
        r = http.post("/assign", json=request)
        out["assign_s"] = time.perf_counter() - start
        assert r.status_code == 200, r.text[:500]
        answer = r.json()
        assigned = sum(len(v) for v in answer["assignments"].values())
        out["assigned"] = assigned
        log(f"/assign {out['assign_s']:.2f}s, {assigned} items")

        items = [raw_item(i, p, "raw") for i, p in enumerate(day["packages"][:assigned])]
        out["raw_batch_write_s"] = raw_batch_write(st.endpoint, items)
        out["assign_vs_raw_write"] = out["assign_s"] / out["raw_batch_write_s"]
        log(
            f"raw BatchWriteItem of {assigned} items {out['raw_batch_write_s']:.2f}s -> "
            f"ratio {out['assign_vs_raw_write']:.2f}"
        )

        start = time.perf_counter()
        r = http.post("/assign", json=request)
        out["assign_repeat_s"] = time.perf_counter() - start
        assert r.status_code == 200 and r.json() == answer, "a repeated /assign changed the answer"
        log(f"repeated /assign {out['assign_repeat_s']:.2f}s")

        # raw floor of the import: the same number of package items by BatchWriteItem
        if out["packages"] <= 200_000:
            items = [raw_item(i, p, "rawpkg") for i, p in enumerate(day["packages"])]
            out["raw_batch_write_packages_s"] = raw_batch_write(st.endpoint, items)
            out["import_vs_raw_write"] = out["import_s"] / out["raw_batch_write_packages_s"]

        # reads
        holders = [d for d in driver_ids if answer["assignments"][d]][: max(1, reads)]
        latencies = []
        for i in range(reads):
            d = holders[i % len(holders)]
            start = time.perf_counter()
            r = http.get(f"/drivers/{d}/assignments", params={"day": DAY})
            latencies.append(time.perf_counter() - start)
            assert r.status_code == 200
        out["read_p50_ms"] = 1000 * percentile(latencies, 50)
        out["read_p95_ms"] = 1000 * percentile(latencies, 95)
        log(f"GET /drivers/{{id}}/assignments p95 {out['read_p95_ms']:.1f} ms")

        out.update(manifest_reads(http))
        log(
            f"GET /manifests/{{day}}: first {out['manifest_get_first_s']:.3f}s, "
            f"then {out['manifest_get_s']:.3f}s ({out['manifest_get_bytes']:,} bytes)"
        )

        if update_seconds > 0:
            pairs = [(d, p) for d in driver_ids for p in answer["assignments"][d]]
            half = len(pairs) // 2
            out["update"] = update_load(st.api, pairs[:half], update_rate, update_seconds)
            log(f"/update {out['update']}")
            out["update_during_manifest_reads"] = update_during_manifest_reads(
                http, st.api, pairs[half:], update_rate, min(update_seconds, 20.0)
            )
            log(f"/update while GET /manifests runs: {out['update_during_manifest_reads']}")
    return out


def manifest_reads(http: httpx.Client) -> dict[str, Any]:
    """``GET /manifests/{day}``: the first read of a version (encoded then) and later ones."""
    times = []
    for _ in range(4):
        start = time.perf_counter()
        r = http.get(f"/manifests/{DAY}")
        times.append(time.perf_counter() - start)
        assert r.status_code == 200
    return {
        "manifest_get_first_s": times[0],
        "manifest_get_s": statistics.median(times[1:]),
        "manifest_get_bytes": len(r.content),
    }


def update_during_manifest_reads(
    http: httpx.Client, url: str, pairs, rate: float, seconds: float
) -> dict[str, Any]:
    """The /update load while another client reads the whole manifest back to back."""
    import threading

    stop = threading.Event()
    reads = []

    def reader() -> None:
        with httpx.Client(base_url=url, timeout=600) as c:
            while not stop.is_set():
                start = time.perf_counter()
                c.get(f"/manifests/{DAY}")
                reads.append(time.perf_counter() - start)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        figures = update_load(url, pairs, rate, seconds)
    finally:
        stop.set()
        thread.join()
    return {
        **figures,
        "manifest_reads": len(reads),
        "manifest_read_median_s": round(statistics.median(reads), 3) if reads else None,
    }


def update_load(
    url: str, pairs: list[tuple[str, str]], rate: float, seconds: float
) -> dict[str, Any]:
    """Runs ``bench.load`` in a second process and returns its figures."""
    n = int(rate * seconds)
    payload = json.dumps({"url": url, "rate": rate, "seconds": seconds, "pairs": pairs[:n]})
    proc = subprocess.run(
        [sys.executable, "-m", "bench.load"],
        check=False,
        input=payload,
        capture_output=True,
        text=True,
        timeout=seconds * 3 + 60,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout)
