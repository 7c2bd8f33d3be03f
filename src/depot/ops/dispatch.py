"""The dispatcher's verbs on the command line: thin clients of the HTTP API (SPEC section 4).

Each call sends one ``Idempotency-Key`` and retries a 503 (an outage, a busy day) with the same
key, so a retried command never applies twice. Errors print the API's message and exit 1; an
API that cannot be reached exits 2.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)

Url = Annotated[str, typer.Option(envvar="DEPOT_URL", help="the API's base URL")]
Token = Annotated[str | None, typer.Option(envvar="DEPOT_TOKEN", help="bearer token (depot token)")]
Day = Annotated[
    str | None, typer.Option(help="YYYY-MM-DD; default: today in the centre's time zone")
]
DEFAULT_URL = "http://127.0.0.1:8000"
ATTEMPTS = 3


def call(
    method: str,
    url: str,
    path: str,
    token: str | None,
    body: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One API call; the answer's JSON, or a clear message and a non-zero exit."""
    import httpx

    headers = {"Idempotency-Key": uuid.uuid4().hex}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for attempt in range(ATTEMPTS):
        try:
            response = httpx.request(
                method,
                f"{url.rstrip('/')}{path}",
                json=body,
                params=params,
                headers=headers,
                timeout=120,
            )
        except httpx.TransportError as exc:
            err.print(f"[red]cannot reach the API at {url}: {exc}[/red]")
            raise typer.Exit(2) from None
        if response.status_code == 503 and attempt + 1 < ATTEMPTS:
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        break
    try:
        answer = response.json()
    except ValueError:
        answer = {"error": {"code": "not_json", "message": response.text[:500], "details": None}}
    if response.status_code >= 400:
        error = answer.get("error", {})
        err.print(
            f"[red]{response.status_code} {error.get('code', '')}: {error.get('message', '')}[/red]"
        )
        if error.get("details"):
            err.print_json(json.dumps(error["details"]))
        raise typer.Exit(1)
    return answer


def _day(body: dict[str, Any], day: str | None) -> dict[str, Any]:
    return {**body, "day": day} if day else body


def register(app: typer.Typer) -> None:
    @app.command()
    def assign(
        drivers: Annotated[str, typer.Argument(help="driver ids, comma-separated")],
        cap: Annotated[int, typer.Option(help="max_per_driver: packages per driver for the day")],
        day: Day = None,
        dry_run: Annotated[bool, typer.Option(help="preview; write nothing")] = False,
        url: Url = DEFAULT_URL,
        token: Token = None,
    ) -> None:
        """POST /assign (with --dry-run: what it would do)."""
        body = _day(
            {"driver_ids": [d for d in drivers.split(",") if d], "max_per_driver": cap}, day
        )
        answer = call("POST", url, "/assign", token, body, {"dry_run": "true"} if dry_run else None)
        loads = {d: len(p) for d, p in answer["assignments"].items()}
        console.print_json(
            json.dumps(
                {
                    "loads": loads,
                    "unassigned": len(answer["unassigned_packages"]),
                    "unassigned_drivers": answer["unassigned_drivers"],
                }
            )
        )

    @app.command()
    def unassign(
        packages: Annotated[str, typer.Argument(help="package ids, comma-separated")],
        day: Day = None,
        reason: Annotated[str | None, typer.Option()] = None,
        url: Url = DEFAULT_URL,
        token: Token = None,
    ) -> None:
        """POST /unassign: back to the day's pool (assigned or accepted only; all or nothing)."""
        body = _day({"package_ids": [p for p in packages.split(",") if p]}, day)
        if reason:
            body["reason"] = reason
        console.print_json(json.dumps(call("POST", url, "/unassign", token, body)))

    @app.command()
    def reassign(
        package: str,
        driver: str,
        day: Day = None,
        cap: Annotated[int | None, typer.Option(help="max_per_driver for this move")] = None,
        url: Url = DEFAULT_URL,
        token: Token = None,
    ) -> None:
        """POST /reassign: move PACKAGE to DRIVER."""
        body = _day({"package_id": package, "driver_id": driver}, day)
        if cap is not None:
            body["max_per_driver"] = cap
        console.print_json(json.dumps(call("POST", url, "/reassign", token, body)))

    @app.command("off-duty")
    def off_duty(
        driver: str,
        day: Day = None,
        reassign: Annotated[bool, typer.Option(help="re-assign what it had not started")] = True,
        url: Url = DEFAULT_URL,
        token: Token = None,
    ) -> None:
        """POST /drivers/DRIVER/availability off_duty."""
        answer = call(
            "POST",
            url,
            f"/drivers/{driver}/availability",
            token,
            _day({"status": "off_duty", "reassign": reassign}, day),
        )
        console.print_json(
            json.dumps(
                {
                    k: answer[k]
                    for k in ("driver_id", "availability", "released", "kept_in_progress")
                }
            )
        )

    @app.command("on-duty")
    def on_duty(driver: str, day: Day = None, url: Url = DEFAULT_URL, token: Token = None) -> None:
        """POST /drivers/DRIVER/availability on_duty."""
        answer = call(
            "POST", url, f"/drivers/{driver}/availability", token, _day({"status": "on_duty"}, day)
        )
        console.print_json(json.dumps({k: answer[k] for k in ("driver_id", "availability")}))

    @app.command()
    def cancel(
        packages: Annotated[str, typer.Argument(help="package ids, comma-separated")],
        reason: Annotated[str, typer.Option()],
        day: Day = None,
        url: Url = DEFAULT_URL,
        token: Token = None,
    ) -> None:
        """POST /cancel: out of the day for good."""
        body = _day({"package_ids": [p for p in packages.split(",") if p], "reason": reason}, day)
        console.print_json(json.dumps(call("POST", url, "/cancel", token, body)))

    @app.command("carry-over")
    def carry_over(
        day: Annotated[str, typer.Argument(help="the day that takes them, YYYY-MM-DD")],
        from_day: Annotated[str, typer.Option("--from", help="the earlier day")],
        url: Url = DEFAULT_URL,
        token: Token = None,
    ) -> None:
        """POST /days/DAY/carry-over: failed and unassigned packages of --from become DAY's \
next attempt."""
        answer = call("POST", url, f"/days/{day}/carry-over", token, {"from": from_day})
        console.print_json(json.dumps({**answer, "carried_over": len(answer["carried_over"])}))

    @app.command()
    def history(package: str, day: Day = None, url: Url = DEFAULT_URL, token: Token = None) -> None:
        """GET /packages/PACKAGE: its driver, status and timeline across days."""
        answer = call(
            "GET", url, f"/packages/{package}", token, params={"day": day} if day else None
        )
        console.print_json(
            json.dumps({k: answer[k] for k in ("day", "driver_id", "status", "history")})
        )
