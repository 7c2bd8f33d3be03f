"""The day's plan as a fold of changes (``depot.core.day``): pure, no emulator."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from depot.core.day import OFF_DUTY, ON_DUTY, Change, DayState, Manifest, Plan
from depot.core.models import parse_drivers
from support.factories import package


def change(version: int, kind: str = "run", **fields) -> Change:
    return Change(version=version, kind=kind, actor="tester", at=float(version), **fields)


def test_a_run_then_a_reassign_then_an_unassign():
    plan = Plan().apply(
        [
            change(1, assign={"a": ["p1", "p2"], "b": ["p3"]}, cap=2, named=("a", "b")),
            change(2, "reassign", release={"p2": "a"}, assign={"b": ["p2"]}),
            change(3, "unassign", release={"p1": "a"}),
        ]
    )
    assert plan.version == 3 and plan.cap == 2 and plan.named == {"a", "b"}
    assert plan.holder == {"p3": "b", "p2": "b"}
    assert plan.held("a") == [] and plan.held("b") == ["p3", "p2"]
    assert [e["event"] for e in plan.history["p2"]] == ["assigned", "reassigned"]
    assert plan.history["p2"][1]["from_driver_id"] == "a"
    assert [e["event"] for e in plan.history["p1"]] == ["assigned", "unassigned"]
    assert plan.in_pool("p1") and not plan.in_pool("p2")


def test_cancel_carry_out_availability_and_a_dropped_write():
    plan = Plan().apply(
        [
            change(1, assign={"a": ["p1", "p2"]}),
            change(2, "cancel", release={"p1": "a"}, cancel={"p1": "gone", "p9": "gone"}),
            change(3, "carry_out", carry_out={"p5": "2031-01-02"}),
            change(4, "availability", availability={"a": OFF_DUTY}),
            change(5, "not_stored", drop={"p2": "a"}),
        ]
    )
    assert plan.holder == {} and plan.cancelled == {"p1": "gone", "p9": "gone"}
    assert plan.carried == {"p5": "2031-01-02"} and plan.off_duty == {"a"}
    assert not plan.in_pool("p1") and not plan.in_pool("p5") and plan.in_pool("p2")
    assert (
        plan.apply([change(6, "availability", availability={"a": ON_DUTY})]).off_duty == frozenset()
    )


def test_changes_at_or_below_the_plans_version_are_skipped():
    plan = Plan().apply([change(1, assign={"a": ["p1"]})])
    assert plan.apply([change(1, assign={"b": ["p1"]})]) is plan
    assert plan.apply([]) is plan


def test_apply_leaves_the_earlier_plan_as_it_was():
    first = Plan().apply([change(1, assign={"a": ["p1"]})])
    later = first.apply([change(2, "reassign", release={"p1": "a"}, assign={"b": ["p1"]})])
    assert first.holder == {"p1": "a"} and first.held("a") == ["p1"]
    assert later.holder == {"p1": "b"}


def test_a_change_survives_its_json_and_a_legacy_run_is_read():
    c = change(7, "reassign", release={"p1": "a"}, assign={"b": ["p1"]}, reason="why", cap=3)
    assert Change.from_json(c.to_json()) == Change.from_json(c.to_json())
    again = Change.from_json(c.to_json())
    assert (again.kind, dict(again.release), {k: list(v) for k, v in again.assign.items()}) == (
        "reassign",
        {"p1": "a"},
        {"b": ["p1"]},
    )
    legacy = Change.from_json({"version": 2, "assignments": {"a": ["p1"]}, "max_per_driver": 4})
    assert legacy.kind == "run" and legacy.cap == 4 and legacy.pairs() == [("a", "p1")]


changes = st.lists(
    st.tuples(
        st.sampled_from(["run", "unassign", "cancel"]),
        st.sampled_from("abc"),
        st.sampled_from([f"p{i}" for i in range(6)]),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(steps=changes, cut=st.integers(0, 25))
def test_a_snapshot_folds_exactly_what_it_replaces(steps, cut):
    """Replaying every change, or a snapshot of the first ``cut`` and then the rest, gives the same
    plan (what a process rebuilds after the day item's log was compacted)."""
    plan, built = Plan(), []
    for kind, driver, pid in steps:
        v = len(built) + 1
        if kind == "run" and plan.in_pool(pid):
            built.append(change(v, assign={driver: [pid]}))
        elif kind == "unassign" and pid in plan.holder:
            built.append(change(v, "unassign", release={pid: plan.holder[pid]}))
        elif kind == "cancel" and pid not in plan.cancelled:
            held = {pid: plan.holder[pid]} if pid in plan.holder else {}
            built.append(change(v, "cancel", release=held, cancel={pid: "x"}))
        else:
            continue
        plan = plan.apply(built[-1:])
    whole = Plan().apply(built)
    snapshot = Plan.from_snapshot(Plan().apply(built[:cut]).to_snapshot())
    resumed = snapshot.apply(built[cut:])
    assert resumed.holder == whole.holder == plan.holder
    assert {d: list(p) for d, p in resumed.held_by.items() if p} == {
        d: list(p) for d, p in whole.held_by.items() if p
    }
    assert resumed.cancelled == whole.cancelled
    assert {p: list(h) for p, h in resumed.history.items()} == {
        p: list(h) for p, h in whole.history.items()
    }
    assert len({p for p in whole.holder}) == len(whole.holder)  # never held twice


def test_the_state_answers_as_assign_does():
    packages = [package(package_id=f"p{i}") for i in range(4)]
    manifest = Manifest.build(
        "k", parse_drivers([{"driver_id": "a"}, {"driver_id": "b"}]), packages
    )
    plan = Plan().apply(
        [
            change(1, assign={"a": ["p0"]}),
            change(2, "cancel", cancel={"p3": "x"}),
            change(3, "availability", availability={"b": OFF_DUTY}),
        ]
    )
    state = DayState(day="2031-01-01", version=3, manifest=manifest, plan=plan)
    body = state.response(["a", "b"])
    assert body == {
        "assignments": {"a": ["p0"], "b": []},
        "unassigned_packages": ["p1", "p2"],
        "unassigned_drivers": ["b"],
    }
    assert list(state.held_mask()) == [True, False, False, True]


def test_a_snapshot_with_packages_from_another_day_reads_back_as_stored():
    """A merged snapshot keeps what was recorded of a package's attempts; a body may not send
    those fields, and the snapshot was once read back with the body's reader and refused
    (a carried-over day then failed with 422 in every process that had not kept it)."""
    import orjson

    drivers = parse_drivers([{"driver_id": "d1", "rules": []}])
    back = {**package(package_id="again"), "attempt": 2, "previous_days": ["2031-01-01"]}
    packages = [package(package_id="new"), back]
    stored = Manifest.build("k", drivers, packages).to_stored()
    read = Manifest.from_stored("k", orjson.dumps(stored))
    assert read.package("again") == back and read.package("new") == packages[0]
    assert read.to_stored() == stored
    assert list(read.drivers) == ["d1"]
