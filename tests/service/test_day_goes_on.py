"""SPEC section 4 through the real API process and the real emulator: the day's plan changes,
another attempt on a later day, history and the event feed; every answer compared with the table
read straight from the emulator and, for off duty, with an independent optimum (networkx)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import httpx
import networkx as nx
import pytest

from support.api import driver, import_day, package, table_items
from support.apiproc import start_api

_days = itertools.count()


def new_day() -> str:
    return (date(2081, 1, 1) + timedelta(days=3 * next(_days))).isoformat()


def assign(client, day, driver_ids, cap, **params):
    r = client.post(
        "/assign",
        params=params or None,
        json={"day": day, "driver_ids": list(driver_ids), "max_per_driver": cap},
    )
    assert r.status_code == 200, r.text
    return r.json()


def holders(dynamodb, day):
    return {i["package_id"]: i["driver_id"] for i in table_items(dynamodb, day)}


def test_dry_run_answers_exactly_what_assign_then_does_and_writes_nothing(client, dynamodb):
    day = new_day()
    import_day(
        client,
        day,
        [driver("a"), driver("b", ("MAX_WEIGHT", {"limit_kg": 3}))],
        [package(f"dry-{day}-{i}", weight_kg=1.0 + i) for i in range(6)],
    )
    preview = assign(client, day, ["a", "b"], 2, dry_run="true")
    assert table_items(dynamodb, day) == []
    assert assign(client, day, ["a", "b"], 2) == preview
    assert len(table_items(dynamodb, day)) == 4


def test_unassign_is_all_or_nothing_and_removes_the_items(client, dynamodb):
    day = new_day()
    pids = [f"un-{day}-{i}" for i in range(4)]
    import_day(client, day, [driver("a")], [package(p) for p in pids])
    held = assign(client, day, ["a"], 4)["assignments"]["a"]
    client.post("/update", json={"driver_id": "a", "package_id": held[0], "status": "in_progress"})
    r = client.post("/unassign", json={"day": day, "package_ids": held[:2]})
    assert r.status_code == 409 and held[0] in r.text and "in_progress" in r.text
    assert len(table_items(dynamodb, day)) == 4  # nothing changed
    r = client.post(
        "/unassign", json={"day": day, "package_ids": held[1:3], "reason": "truck full"}
    )
    assert r.status_code == 200, r.text
    assert set(holders(dynamodb, day)) == {held[0], held[3]}
    assert client.post("/unassign", json={"day": day, "package_ids": ["nope"]}).status_code == 404
    again = assign(client, day, ["a"], 4)  # the freed packages go back out
    assert set(again["assignments"]["a"]) == set(pids)


def test_reassign_checks_rules_cap_and_availability(client, dynamodb):
    day = new_day()
    heavy = f"re-{day}-heavy"
    light = [f"re-{day}-{i}" for i in range(3)]
    import_day(
        client,
        day,
        [driver("a"), driver("b", ("MAX_WEIGHT", {"limit_kg": 5})), driver("c")],
        [package(heavy, weight_kg=12.0)] + [package(p, weight_kg=1.0) for p in light],
    )
    out = assign(client, day, ["a"], 2)
    moved = out["assignments"]["a"][0]
    r = client.post("/reassign", json={"day": day, "package_id": heavy, "driver_id": "b"})
    assert r.status_code == 422 and "MAX_WEIGHT" in r.text
    r = client.post("/reassign", json={"day": day, "package_id": moved, "driver_id": "c"})
    assert r.status_code == 200, r.text
    assert holders(dynamodb, day)[moved] == "c"
    r = client.post(
        "/reassign",
        json={"day": day, "package_id": out["unassigned_packages"][0], "driver_id": "c"},
    )
    assert r.status_code == 200
    r = client.post(
        "/reassign",
        json={"day": day, "package_id": out["unassigned_packages"][-1], "driver_id": "c"},
    )
    assert r.status_code == 409 and "cap" in r.text  # c holds 2 = the day's cap
    eligible = client.get(f"/packages/{heavy}/eligible-drivers", params={"day": day}).json()
    assert "b" not in {d["driver_id"] for d in eligible["drivers"]}


def optimum(packages, drivers, loads, cap):
    """Max packages of ``packages`` to ``drivers`` (dict id -> accepts(pkg)), within the cap."""
    g = nx.DiGraph()
    for p in packages:
        g.add_edge("s", ("p", p["package_id"]), capacity=1)
        for d, accepts in drivers.items():
            if accepts(p):
                g.add_edge(("p", p["package_id"]), ("d", d), capacity=1)
    for d in drivers:
        g.add_edge(("d", d), "t", capacity=max(0, cap - loads[d]))
    return nx.maximum_flow_value(g, "s", "t") if g.has_node("t") and g.has_node("s") else 0


def test_off_duty_reassigns_exactly_and_keeps_in_progress(client, dynamodb):
    day = new_day()
    pkgs = [
        package(f"off-{day}-{i}", weight_kg=float(1 + i % 8), region=["north", "east"][i % 2])
        for i in range(24)
    ]
    rules = {
        "a": [],
        "b": [("MAX_WEIGHT", {"limit_kg": 4})],
        "c": [("REGION_ONLY", {"allowed_regions": ["east"]})],
    }
    import_day(client, day, [driver(d, *r) for d, r in rules.items()], pkgs)
    first = assign(client, day, ["a", "b", "c"], 6)
    started = first["assignments"]["a"][0]
    client.post("/update", json={"driver_id": "a", "package_id": started, "status": "in_progress"})
    before = holders(dynamodb, day)
    r = client.post("/drivers/a/availability", json={"day": day, "status": "off_duty"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kept_in_progress"] == [started]
    assert set(body["released"]) == set(first["assignments"]["a"]) - {started}
    after = holders(dynamodb, day)
    for p, d in before.items():  # no other driver's package moved
        if d != "a":
            assert after[p] == d
    moved = [p for p in body["released"] if p in after]
    by_id = {p["package_id"]: p for p in pkgs}
    accepts = {"b": lambda p: p["weight_kg"] <= 4, "c": lambda p: p["region"] == "east"}
    loads = {d: sum(1 for x in before.values() if x == d) for d in accepts}
    assert len(moved) == optimum([by_id[p] for p in body["released"]], accepts, loads, 6)
    for p in moved:
        assert accepts[after[p]](by_id[p])
    later = assign(client, day, ["a", "b", "c"], 6)
    assert "a" in later["unassigned_drivers"] and later["assignments"]["a"] == [started]


def test_cancel_takes_packages_out_for_good(client, dynamodb):
    day = new_day()
    pids = [f"ca-{day}-{i}" for i in range(3)]
    import_day(client, day, [driver("a")], [package(p) for p in pids])
    out = assign(client, day, ["a"], 1)
    held = out["assignments"]["a"][0]
    r = client.post(
        "/cancel",
        json={
            "day": day,
            "package_ids": [held, out["unassigned_packages"][0]],
            "reason": "customer cancelled",
        },
    )
    assert r.status_code == 200, r.text
    again = assign(client, day, ["a"], 1)
    cancelled = {held, out["unassigned_packages"][0]}
    assert again["unassigned_packages"] == [] and not cancelled & set(again["assignments"]["a"])
    assert set(holders(dynamodb, day)) == set(pids) - cancelled
    summary = client.get(f"/days/{day}/summary").json()["counts"]
    assert summary["cancelled"] == 2


def test_a_failed_package_comes_back_tomorrow_without_touching_yesterday(client, dynamodb):
    d1 = new_day()
    d2 = (date.fromisoformat(d1) + timedelta(days=1)).isoformat()
    pid = f"again-{d1}"
    import_day(client, d1, [driver("reuse_d1")], [package(pid)])
    assign(client, d1, ["reuse_d1"], 1)
    r = client.post(
        "/update",
        json={
            "driver_id": "reuse_d1",
            "package_id": pid,
            "status": "failed_to_deliver",
            "reason": "recipient_absent",
            "note": "<script>alert(1)</script>",
        },
    )
    assert r.status_code == 200, r.text
    yesterday = table_items(dynamodb, d1)
    read_before = client.get("/drivers/reuse_d1/assignments", params={"day": d1}).json()
    r = client.post(f"/days/{d2}/carry-over", json={"from": d1})
    assert r.status_code == 200, r.text and pid in r.json()["carried_over"]
    import_day(client, d2, [driver("reuse_d1")], [])
    assign(client, d2, ["reuse_d1"], 1)
    assert client.get("/drivers/reuse_d1/assignments", params={"day": d1}).json() == read_before
    assert [i for i in table_items(dynamodb, d1) if i["package_id"].startswith(pid)] != []
    kept = {i["package_id"]: i for i in table_items(dynamodb, d1)}
    old = {i["package_id"]: i for i in yesterday}[pid]
    assert {
        k: v for k, v in kept[f"{pid}#{d1}"].items() if k not in ("package_id", "attempt_of")
    } == {k: v for k, v in old.items() if k != "package_id"}
    today = client.get(f"/packages/{pid}", params={"day": d2}).json()
    assert today["status"] == "assigned" and today["package"]["attempt"] == 2
    events = [e["event"] for e in today["history"]]
    assert events.count("assigned") == 2 and "status_changed" in events and "carried_over" in events
    r = client.post(
        "/manifests", json={"day": d1, "drivers": [], "packages": [package(f"del-{d1}")]}
    )
    assert r.status_code == 201


def test_stricter_rules_on_reimport_are_refused_or_release(client, dynamodb):
    day = new_day()
    pids = [f"strict-{day}-{i}" for i in range(2)]
    import_day(client, day, [driver("a")], [package(p, weight_kg=8.0) for p in pids])
    assign(client, day, ["a"], 2)
    stricter = {
        "day": day,
        "drivers": [driver("a", ("MAX_WEIGHT", {"limit_kg": 5}))],
        "packages": [],
    }
    r = client.post("/manifests", json=stricter)
    assert r.status_code == 409 and pids[0] in r.text
    assert len(table_items(dynamodb, day)) == 2
    r = client.post("/manifests", json={**stricter, "release": True})
    assert r.status_code == 201, r.text
    assert r.json()["released"] == sorted(pids)
    assert table_items(dynamodb, day) == []


def test_update_racing_unassign_exactly_one_wins(client, dynamodb):
    day = new_day()
    pids = [f"race-{day}-{i}" for i in range(12)]
    import_day(client, day, [driver("a")], [package(p) for p in pids])
    held = assign(client, day, ["a"], 12)["assignments"]["a"]
    barrier = threading.Barrier(2)

    def update(p):
        barrier.wait()
        return client.post(
            "/update", json={"driver_id": "a", "package_id": p, "status": "in_progress"}
        ).status_code

    def unassign(p):
        barrier.wait()
        return client.post("/unassign", json={"day": day, "package_ids": [p]}).status_code

    for p in held:
        barrier.reset()
        with ThreadPoolExecutor(2) as pool:
            u, n = pool.submit(update, p), pool.submit(unassign, p)
            codes = (u.result(), n.result())
        item = holders(dynamodb, day).get(p)
        if codes == (200, 409):
            assert item == "a"
        else:
            assert codes == (409, 200) or codes == (404, 200), codes
            assert item is None


def test_events_stream_and_resume(api, client):
    day = new_day()
    import_day(client, day, [driver("a")], [package(f"ev-{day}-{i}") for i in range(3)])
    got: list[dict] = []
    with (
        httpx.Client(base_url=api.url, timeout=30) as c,
        c.stream("GET", "/events", params={"day": day}) as s,
    ):
        lines = s.iter_lines()
        assert next(lines) == ": connected"
        assign(client, day, ["a"], 2)
        for line in lines:  # the import's event may still arrive first: the feed is batched
            if line.startswith("data: "):
                got.append(json.loads(line[6:]))
                if got[-1]["type"] == "assignment_run":
                    break
    assert got[-1]["type"] == "assignment_run" and got[-1]["actor"] == "open"
    assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)
    pid = client.get("/drivers/a/assignments", params={"day": day}).json()["assignments"][0][
        "package_id"
    ]
    client.post("/update", json={"driver_id": "a", "package_id": pid, "status": "accepted"})
    with (
        httpx.Client(base_url=api.url, timeout=30) as c,
        c.stream(
            "GET", "/events", params={"day": day}, headers={"Last-Event-ID": str(got[-1]["seq"])}
        ) as s,
    ):
        for line in s.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                break
    assert event["type"] == "status_changed" and event["package_id"] == pid
    assert client.get(f"/days/{day}/summary").json()["counts"]["accepted"] == 1


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_five_thousand_runs_keep_the_day_item_small(client, dynamodb):
    day = new_day()
    import_day(
        client,
        day,
        [driver(f"d{i}") for i in range(5000)],
        [package(f"many-{day}-{i}") for i in range(5000)],
    )
    for i in range(5000):
        assign(client, day, [f"d{i}"], 1)
    item = dynamodb.get_item(TableName="DepotDays", Key={"day": {"S": day}}, ConsistentRead=True)[
        "Item"
    ]
    assert len(json.dumps(item)) < 20_000
    assert len(holders(dynamodb, day)) == 5000


def test_importing_again_what_an_earlier_day_left_unassigned_carries_it_over(client, dynamodb):
    d1 = new_day()
    d2 = (date.fromisoformat(d1) + timedelta(days=2)).isoformat()
    pids = [f"left-{d1}-{i}" for i in range(3)]
    import_day(client, d1, [driver("a")], [package(p) for p in pids])
    out = assign(client, d1, ["a"], 1)
    left = out["unassigned_packages"]
    r = client.post(
        "/manifests",
        json={"day": d2, "drivers": [driver("a")], "packages": [package(p) for p in pids]},
    )
    assert r.status_code == 409 and out["assignments"]["a"][0] in r.text  # still assigned on d1
    r = client.post(
        "/manifests",
        json={"day": d2, "drivers": [driver("a")], "packages": [package(p) for p in left]},
    )
    assert r.status_code == 201, r.text
    assert assign(client, d1, ["a"], 3)["unassigned_packages"] == []  # d1 can no longer assign them
    assert holders(dynamodb, d1) == {out["assignments"]["a"][0]: "a"}
    later = client.get(f"/packages/{left[0]}", params={"day": d2}).json()
    assert later["package"]["attempt"] == 2 and later["package"]["previous_days"] == [d1]
    assert client.get(f"/packages/{left[0]}", params={"day": d1}).json()["status"] == "carried_over"
    r = client.post(
        "/manifests", json={"day": d1, "drivers": [], "packages": [package(left[0], weight_kg=3.0)]}
    )
    assert r.status_code == 409  # open on d2 now


def depot(*args: str, url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "depot.ops.cli", *args, "--url", url],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_dispatcher_verbs_on_the_command_line(api, client, dynamodb):
    day = new_day()
    pids = [f"cli-{day}-{i}" for i in range(3)]
    import_day(
        client,
        day,
        [driver("a"), driver("b", ("MAX_WEIGHT", {"limit_kg": 1}))],
        [package(p) for p in pids],
    )
    out = depot("assign", "a,b", "--cap", "3", "--day", day, url=api.url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["loads"] == {"a": 3, "b": 0}
    out = depot("reassign", pids[0], "b", "--day", day, url=api.url)
    assert out.returncode == 1 and "MAX_WEIGHT" in out.stderr  # the API's message, no traceback
    out = depot("unassign", pids[0], "--day", day, "--reason", "recount", url=api.url)
    assert out.returncode == 0, out.stderr
    assert pids[0] not in holders(dynamodb, day)
    out = depot("off-duty", "a", "--day", day, url=api.url)
    assert out.returncode == 0 and set(json.loads(out.stdout)["released"]) == set(pids[1:])
    out = depot("history", pids[0], "--day", day, url=api.url)
    events = [e["event"] for e in json.loads(out.stdout)["history"]]
    assert events == ["imported", "assigned", "unassigned"]
    out = depot("carry-over", day, "--from", day, url="http://127.0.0.1:9")
    assert out.returncode == 2 and "cannot reach" in out.stderr


def test_plan_changes_honour_the_idempotency_key(client, dynamodb):
    day = new_day()
    pids = [f"idem-{day}-{i}" for i in range(2)]
    import_day(client, day, [driver("a")], [package(p) for p in pids])
    assign(client, day, ["a"], 2)
    headers = {"Idempotency-Key": f"unassign-{day}"}
    first = client.post("/unassign", json={"day": day, "package_ids": [pids[0]]}, headers=headers)
    assign(client, day, ["a"], 2)  # takes it back
    again = client.post("/unassign", json={"day": day, "package_ids": [pids[0]]}, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
    assert holders(dynamodb, day)[pids[0]] == "a"  # the replay changed nothing


def test_a_carried_over_day_reads_back_once_the_process_let_it_go(client):
    """The day a package came back to is stored with its attempts; once the process dropped it
    from memory (it keeps ``day_cache_days``, 4), it is read back from storage and still works."""
    d1 = new_day()
    d2 = (date.fromisoformat(d1) + timedelta(days=1)).isoformat()
    pid = f"back-{d1}"
    import_day(client, d1, [driver("back_d1")], [package(pid), package(f"stay-{d1}")])
    (held,) = assign(client, d1, ["back_d1"], 1)["assignments"]["back_d1"]
    failed = {"driver_id": "back_d1", "package_id": held, "status": "failed_to_deliver"}
    assert client.post("/update", json=failed).status_code == 200
    r = client.post(f"/days/{d2}/carry-over", json={"from": d1})
    assert r.status_code == 200, r.text
    import_day(client, d2, [driver("back_d2")], [])
    before = assign(client, d2, ["back_d2"], 5)
    for _ in range(5):  # other days through the same process push d2 out of its memory
        import_day(client, new_day(), [driver("other")], [package(f"p-{next(_days)}")])
    assert assign(client, d2, ["back_d2"], 5) == before
    r = client.get("/drivers/back_d2/assignments", params={"day": d2})
    assert r.status_code == 200, r.text
    record = client.get(f"/manifests/{d2}").json()["packages"]
    assert [p["attempt"] for p in record] == [2, 2]


def test_proof_numbers_must_be_storable_and_numbers(client):
    day = new_day()
    pid = f"proof-{day}"
    import_day(client, day, [driver("proof_d")], [package(pid)])
    assign(client, day, ["proof_d"], 1)
    move = {"driver_id": "proof_d", "package_id": pid}
    assert client.post("/update", json={**move, "status": "in_progress"}).status_code == 200
    for bad in ({"lat": 1e-200}, {"lon": -1e-140}, {"lat": "1"}, {"lat": 91}):
        r = client.post("/update", json={**move, "status": "delivered", "proof": bad})
        assert r.status_code == 422, (bad, r.text)
        assert next(iter(bad)) in r.text
    r = client.post(
        "/update", json={**move, "status": "delivered", "proof": {"lat": 0.0, "lon": 1e-100}}
    )
    assert r.status_code == 200, r.text
    r = client.get("/drivers/proof_d/assignments", params={"day": day})
    assert r.status_code == 200 and r.json()["assignments"][0]["proof"]["lon"] == 1e-100, r.text


def test_reassigning_a_package_to_its_own_driver_is_a_true_no_op_or_refused(client):
    day = new_day()
    ids = [f"own-{day}-{n}" for n in range(2)]
    import_day(client, day, [driver("own_d")], [package(p) for p in ids])
    assign(client, day, ["own_d"], 2)
    first, second = ({"driver_id": "own_d", "package_id": p} for p in ids)
    assert client.post("/update", json={**first, "status": "accepted"}).status_code == 200
    for status in ("in_progress", "delivered"):
        assert client.post("/update", json={**second, "status": status}).status_code == 200
    r = client.post("/reassign", json={"day": day, **first})
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    r = client.post("/reassign", json={"day": day, **second})
    assert r.status_code == 409 and "delivered" in r.text, r.text


def test_odd_inputs_get_a_422_naming_them_and_write_nothing(client):
    day = new_day()
    import_day(client, day, [driver("odd_d")], [package(f"odd-{day}-{n}") for n in range(2)])
    assign(client, day, ["odd_d"], 1)
    deep = b'{"drivers":' + b"[" * 1000 + b"]" * 1000 + b"}"
    r = client.post("/manifests", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    twice = [f"odd-{day}-0", f"odd-{day}-0"]
    for path, extra in (("/unassign", {}), ("/cancel", {"reason": "gone"})):
        r = client.post(path, json={"day": day, "package_ids": twice, **extra})
        assert r.status_code == 422 and "repeated" in r.text, r.text
    for bad in ("2026-W01-1", "2026W0117x", "2030-04-01T00:00:00", 20300401):
        r = client.post("/manifests", json={"day": bad, "drivers": [], "packages": []})
        assert r.status_code == 422 and "YYYY-MM-DD" in r.text, (bad, r.text)
        r = client.post("/assign", json={"day": bad, "driver_ids": [], "max_per_driver": 1})
        assert r.status_code == 422 and "YYYY-MM-DD" in r.text, (bad, r.text)
    assert client.get("/manifests/2026-W01-1").status_code == 422
    assert client.get(f"/days/{day}/summary").json()["counts"]["assigned"] == 1
    for edge in ("9999-12-31", "0001-01-01"):  # the days around them do not exist
        r = client.post("/manifests", json={"day": edge, "drivers": [], "packages": []})
        assert r.status_code == 201, r.text


def test_a_large_plan_change_keeps_its_event_in_the_feed(api, client):
    """An event is one item (400 KB at most): a cancel of 3,500 long ids is stored with its
    list cut, its full length beside it, instead of being lost from the feed."""
    day = new_day()
    ids = [f"{n:06d}-" + "x" * 113 for n in range(3500)]  # 120 characters each: 420 KB of ids
    import_day(client, day, [driver("big_d")], [package(p) for p in ids])
    r = client.post("/cancel", json={"day": day, "package_ids": ids, "reason": "recalled"})
    assert r.status_code == 200, r.text
    with (
        httpx.Client(base_url=api.url, timeout=30) as c,
        c.stream("GET", "/events", params={"day": day}, headers={"Last-Event-ID": "0"}) as s,
    ):
        event, give_up = None, time.monotonic() + 30  # the stream's keep-alives end the wait
        for line in s.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:])["type"] == "cancelled":
                event = json.loads(line[6:])
                break
            if time.monotonic() > give_up:
                break
    assert event is not None, "the cancel's event never reached the feed"
    assert event["truncated"] and event["packages_total"] == 3500
    assert event["packages"] == ids[:500] and event["reason"] == "recalled"


def test_an_earlier_day_imported_again_keeps_its_record_and_attempts_stay_the_days(client):
    d1 = new_day()
    d2 = (date.fromisoformat(d1) + timedelta(days=1)).isoformat()
    pid = f"twice-{d1}"
    import_day(client, d1, [driver("twice_d")], [package(pid)])
    assert client.post(f"/days/{d2}/carry-over", json={"from": d1}).status_code == 200
    changed = package(pid, weight_kg=3.0)  # updated on d2 while in its pool: its attempt stays
    r = client.post("/manifests", json={"day": d2, "drivers": [], "packages": [changed]})
    assert r.status_code == 201 and r.json()["packages_updated"] == 1, r.text
    (record,) = client.get(f"/manifests/{d2}").json()["packages"]
    assert record["weight_kg"] == 3.0 and record["attempt"] == 2 and record["previous_days"] == [d1]
    import_day(client, d2, [driver("twice_d")], [])
    assign(client, d2, ["twice_d"], 1)
    move = {"driver_id": "twice_d", "package_id": pid, "status": "failed_to_deliver"}
    assert client.post("/update", json=move).status_code == 200
    for day, sent, attempt in ((d1, package(pid), None), (d2, changed, 2)):  # the same again
        r = client.post("/manifests", json={"day": day, "drivers": [], "packages": [sent]})
        assert r.status_code == 201 and r.json()["packages_unchanged"] == 1, r.text
        (record,) = client.get(f"/manifests/{day}").json()["packages"]
        assert record.get("attempt") == attempt, record


def test_carry_over_refuses_a_package_delivered_on_another_day(client):
    d1 = new_day()
    d2, d3 = ((date.fromisoformat(d1) + timedelta(days=k)).isoformat() for k in (1, 2))
    pid = f"done-{d1}"
    import_day(client, d1, [driver("done_d")], [package(pid)])
    assign(client, d1, ["done_d"], 1)
    move = {"driver_id": "done_d", "package_id": pid}
    assert client.post("/update", json={**move, "status": "failed_to_deliver"}).status_code == 200
    import_day(client, d3, [driver("done_d")], [package(pid)])  # its second attempt, on d3
    assign(client, d3, ["done_d"], 1)
    for status in ("in_progress", "delivered"):
        assert client.post("/update", json={**move, "status": status}).status_code == 200
    r = client.post(f"/days/{d2}/carry-over", json={"from": d1})
    assert r.status_code == 409 and d3 in r.text and "delivered" in r.text, r.text
    assert client.get(f"/manifests/{d2}").status_code == 404


def test_a_package_without_a_day_is_read_on_its_current_day(client):
    """Days near today (the window a read without ``day`` looks in): the earlier day that sent
    the package on is nearer to today, and is not the answer."""
    d1, d2 = ((date.today() + timedelta(days=k)).isoformat() for k in (3, 4))
    pid = f"current-{uuid.uuid4().hex[:8]}"
    import_day(client, d1, [driver("current_d")], [package(pid)])
    assign(client, d1, ["current_d"], 1)
    move = {"driver_id": "current_d", "package_id": pid, "status": "failed_to_deliver"}
    assert client.post("/update", json=move).status_code == 200
    assert client.post(f"/days/{d2}/carry-over", json={"from": d1}).status_code == 200
    r = client.get(f"/packages/{pid}")
    assert r.status_code == 200 and r.json()["day"] == d2, r.text
    assert r.json()["package"]["attempt"] == 2 and r.json()["driver_id"] is None, r.text
    assert client.get(f"/packages/{pid}", params={"day": d1}).json()["day"] == d1


def test_the_timeline_of_a_third_attempt_has_every_earlier_day(client):
    d1 = new_day()
    d2, d3 = ((date.fromisoformat(d1) + timedelta(days=k)).isoformat() for k in (1, 2))
    pid = f"third-{d1}"
    import_day(client, d1, [driver("third_d")], [package(pid)])
    for day, following in ((d1, d2), (d2, d3)):
        import_day(client, day, [driver("third_d")], [])
        assign(client, day, ["third_d"], 1)
        move = {"driver_id": "third_d", "package_id": pid, "status": "failed_to_deliver"}
        assert client.post("/update", json=move).status_code == 200
        assert client.post(f"/days/{following}/carry-over", json={"from": day}).status_code == 200
    answer = client.get(f"/packages/{pid}", params={"day": d3}).json()
    assert answer["package"]["attempt"] == 3
    days = [e["day"] for e in answer["history"]]
    assert days == sorted(days) and {d1, d2} <= set(days), answer["history"]
    assert [e["status"] for e in answer["history"] if e["event"] == "status_changed"] == [
        "failed_to_deliver",
        "failed_to_deliver",
    ]


def test_the_timeline_keeps_status_changes_when_a_package_leaves_its_driver(client):
    day = new_day()
    ids = [f"story-{day}-{n}" for n in range(3)]
    import_day(client, day, [driver("story_a"), driver("story_b")], [package(p) for p in ids])
    out = assign(client, day, ["story_a"], 3)
    assert sorted(out["assignments"]["story_a"]) == ids
    for p in ids:
        r = client.post(
            "/update", json={"driver_id": "story_a", "package_id": p, "status": "accepted"}
        )
        assert r.status_code == 200, r.text
    moved = {"day": day, "package_id": ids[0], "driver_id": "story_b", "max_per_driver": 3}
    assert client.post("/reassign", json=moved).status_code == 200
    assert client.post("/unassign", json={"day": day, "package_ids": [ids[1]]}).status_code == 200
    r = client.post("/cancel", json={"day": day, "package_ids": [ids[2]], "reason": "recalled"})
    assert r.status_code == 200, r.text
    for p, last in zip(ids, ("reassigned", "unassigned", "cancelled"), strict=True):
        history = client.get(f"/packages/{p}", params={"day": day}).json()["history"]
        accepted = [e for e in history if e.get("status") == "accepted"]
        assert [e["driver_id"] for e in accepted] == ["story_a"], (p, history)
        assert history[-1]["event"] == last and history.index(accepted[0]) < len(history) - 1
    assert history[-1]["driver_id"] == "story_a"  # the cancel names whom it took it from


def test_the_timeline_starts_with_the_import_that_listed_the_package(client, emulator):
    """SPEC section 4's history begins with "imported": the day's first import (its body is
    stored as received, so the day item records it) and a later one that adds a package (its
    record does), each with actor, time and version; a carried-over package is imported again
    on its next day as attempt 2. Read by another API process too, which keeps no day."""
    d1 = new_day()
    d2 = (date.fromisoformat(d1) + timedelta(days=1)).isoformat()
    first, later = f"imp-{d1}-first", f"imp-{d1}-later"
    before = time.time()
    import_day(client, d1, [driver("imp_d")], [package(first)])
    import_day(client, d1, [], [package(later)])
    assign(client, d1, ["imp_d"], 2)
    move = {"driver_id": "imp_d", "package_id": first, "status": "failed_to_deliver"}
    assert client.post("/update", json=move).status_code == 200
    assert client.post(f"/days/{d2}/carry-over", json={"from": d1}).status_code == 200
    with start_api(emulator.endpoint) as other, httpx.Client(base_url=other.url) as fresh:
        for reader in (client, fresh):
            answers = {
                p: reader.get(f"/packages/{p}", params={"day": d1}).json() for p in (first, later)
            }
            imported = {p: a["history"][0] for p, a in answers.items()}
            assert all(e["event"] == "imported" for e in imported.values()), answers
            assert [imported[p]["version"] for p in (first, later)] == [1, 2]
            assert before <= imported[first]["at"] <= imported[later]["at"]
            assert {e["actor"] for e in imported.values()} == {"open"}
            assert all("imported" not in a["package"] for a in answers.values())
            assigned = next(e for e in answers[later]["history"] if e["event"] == "assigned")
            assert assigned["at"] >= imported[later]["at"]
            again = reader.get(f"/packages/{first}", params={"day": d2}).json()["history"]
            events = [(e["day"], e["event"]) for e in again]
            assert events[0] == (d1, "imported") and (d2, "imported") in events, again
            second = next(e for e in again if e["day"] == d2 and e["event"] == "imported")
            assert second["attempt"] == 2 and second["previous_days"] == [d1], again
