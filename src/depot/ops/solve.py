"""``depot solve DAY.json``: the exact plan of a day file, offline (no emulator, no API).

SPEC section 3: with ``--json`` one object ``{"assigned", "unassigned", "loads", "seconds"}`` (plus
``"reasons"`` with ``--explain``); ``seconds.match`` is the matcher's whole time, eligibility
included. Errors (a missing file, a body the import would refuse, an unknown driver) exit with
code 2 and a message, never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

DEFAULT_CAP = 10


class SolveError(Exception):
    """A problem with the input, reported as a message and exit code 2."""


def plan(
    path: Path, driver_ids: list[str] | None, cap: int, explain: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse the day file, match (and explain): the SPEC's JSON object (with per-stage seconds),
    and the size of the matcher's network."""
    from depot.core.manifest import parse_manifest
    from depot.core.models import InvalidManifest

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SolveError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        body = parse_manifest(raw)
    except InvalidManifest as exc:
        details = "; ".join(p["message"] for p in exc.problems[:10])
        raise SolveError(f"{path} is not a valid day: {details}") from None
    seconds["parse"] = time.perf_counter() - start

    import numpy as np

    from depot.core.matcher import match
    from depot.core.rules import PackageColumns

    start = time.perf_counter()
    columns = PackageColumns.from_records(body.records())
    seconds["columns"] = time.perf_counter() - start
    by_id = {d.driver_id: d for d in body.drivers}
    if driver_ids is None:
        drivers = body.drivers
    else:
        unknown = [d for d in driver_ids if d not in by_id]
        if unknown:
            raise SolveError(
                f"unknown driver(s) {', '.join(map(repr, unknown[:10]))}: not in {path}"
            )
        drivers = [by_id[d] for d in dict.fromkeys(driver_ids)]

    start = time.perf_counter()
    result = match(columns, drivers, cap)
    seconds["match"] = time.perf_counter() - start
    out: dict[str, Any] = {
        "assigned": result.assigned,
        "unassigned": len(columns) - result.assigned,
        "loads": {d: len(v) for d, v in result.assignments.items()},
        "seconds": seconds,
    }
    seconds.update({f"match.{stage}": s for stage, s in result.seconds.items()})
    network = {
        "types": result.eligible_types,
        "classes": result.classes,
        "arcs": result.arcs,
        "network": result.representation,
    }
    if explain:
        from depot.core.explain import explain_unassigned

        start = time.perf_counter()
        held = np.zeros(len(columns), dtype=bool)
        for picked in result.assignments.values():
            held[picked] = True
        out["reasons"] = explain_unassigned(columns, drivers, held, cap)
        seconds["explain"] = time.perf_counter() - start
    return out, network


def solve(
    path: Annotated[Path, typer.Argument(help="a day's JSON, as `depot generate` writes it")],
    drivers: Annotated[
        str | None,
        typer.Option(help="comma-separated driver ids; default: all drivers in the file"),
    ] = None,
    cap: Annotated[
        int, typer.Option(min=0, help="max packages per driver (default: 10)")
    ] = DEFAULT_CAP,
    explain: Annotated[
        bool, typer.Option("--explain", help="say why each package is left unassigned")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the SPEC's JSON object")] = False,
) -> None:
    """Plan a day file offline with the exact matcher: counts, loads, reasons, time per stage."""
    ids = [d.strip() for d in drivers.split(",") if d.strip()] if drivers is not None else None
    err = Console(stderr=True)
    try:
        out, network = plan(path, ids, cap, explain)
    except SolveError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
        return
    _print(out, network, cap)


def _print(out: dict[str, Any], m: dict[str, Any], cap: int) -> None:
    console = Console()
    summary = Table(title=f"depot solve (cap {cap})", show_header=False)
    summary.add_row("assigned", f"{out['assigned']:,}")
    summary.add_row("unassigned", f"{out['unassigned']:,}")
    summary.add_row("drivers", f"{len(out['loads']):,}")
    summary.add_row(
        "network",
        f"{m['types']:,} types, {m['classes']:,} classes, {m['arcs']:,} arcs ({m['network']})",
    )
    for stage, s in out["seconds"].items():
        summary.add_row(f"{'  ' if '.' in stage else ''}{stage} s", f"{s:.3f}")
    console.print(summary)
    loads = Table(title="loads")
    loads.add_column("driver")
    loads.add_column("packages", justify="right")
    for driver, n in out["loads"].items():
        loads.add_row(driver, str(n))
    console.print(loads)
    if "reasons" in out:
        reasons = Table(title="why packages are unassigned")
        reasons.add_column("reason")
        reasons.add_column("packages", justify="right")
        reasons.add_column("most refusing rules (first package)")
        seen: dict[str, list] = {}
        for pid, r in out["reasons"].items():
            seen.setdefault(r["reason"], [0, pid, r])[0] += 1
        for reason, (n, pid, r) in seen.items():
            rules = ", ".join(
                f"{x['rule']} ({x['drivers_refusing']})" for x in r.get("rejected_by", [])
            )
            reasons.add_row(reason, f"{n:,}", f"{pid}: {rules}" if rules else "")
        console.print(reasons)
