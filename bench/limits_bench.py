"""``python -m bench.limits_bench``: ``depot.storage.limits.check_items`` on 100,000 assignment
items shaped as ``Service._item`` writes them (with destinations), median of 5 rounds."""

from __future__ import annotations

import json
import statistics
import time
import uuid


def assignment_items(n: int) -> list[dict]:
    now = time.time()
    return [
        {
            "driver_id": f"driver_{i % 1000}",
            "package_id": str(uuid.uuid4()),
            "status": "assigned",
            "day": "2030-01-01",
            "assigned_at": now,
            "updated_at": now,
            "version": 1,
            "run": "r-0001",
            "weight_kg": 4.25 + i % 7,
            "volume_m3": 0.75,
            "region": "north",
            "is_express": True,
            "is_perishable": False,
            "destination": {
                "street": "12 High St",
                "city": "Leeds",
                "postcode": "LS1 1AA",
                "lat": 53.8,
                "lon": -1.55,
            },
        }
        for i in range(n)
    ]


def main(n: int = 100_000, rounds: int = 5) -> dict:
    from depot.storage.limits import check_items

    items = assignment_items(n)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        check_items(items, partition_key="driver_id", sort_key="package_id")
        times.append(time.perf_counter() - started)
    result = {
        "items": n,
        "check_items_s": round(statistics.median(times), 4),
        "per_item_us": round(statistics.median(times) / n * 1e6, 2),
        "rounds_s": [round(t, 4) for t in times],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
