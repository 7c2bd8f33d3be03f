"""``depot``: the command line (typer). ``depot --help`` lists the commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from datetime import date as Date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

app = typer.Typer(
    help="Depot: rule-aware delivery assignment.", no_args_is_help=True, add_completion=False
)
console = Console(stderr=True)


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


def _fake_credentials() -> None:
    from depot.config import use_local_credentials

    use_local_credentials()


@app.command()
def generate(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="where to write the day's JSON")
    ] = Path("day.json"),
    seed: Annotated[int | None, typer.Option(help="seed for a reproducible day")] = None,
    drivers: Annotated[int, typer.Option(min=0)] = 99,
    packages_per_driver: Annotated[int, typer.Option(min=0)] = 10,
    min_rules: Annotated[int, typer.Option(min=0, max=10)] = 0,
    max_rules: Annotated[int, typer.Option(min=0, max=10)] = 2,
    day: Annotated[str | None, typer.Option(help="YYYY-MM-DD to put in the file")] = None,
    no_destination: Annotated[bool, typer.Option(help="leave out destination metadata")] = False,
) -> None:
    """Generate a day's lists (the brief's rules.py) as JSON."""
    from depot.ops.generator import generate_day

    if min_rules > max_rules:
        raise typer.BadParameter("--min-rules must not exceed --max-rules")
    total = drivers * packages_per_driver
    with Progress(
        TextColumn("generating"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeRemainingColumn(),
        console=console,
        disable=total < 50_000,
    ) as progress:
        task = progress.add_task("packages", total=total)
        payload = generate_day(
            seed,
            drivers,
            packages_per_driver,
            min_rules,
            max_rules,
            not no_destination,
            progress=lambda n: progress.advance(task, n),
        )
    if day:
        payload = {"day": Date.fromisoformat(day).isoformat(), **payload}
    output.write_text(json.dumps(payload))
    console.print(
        f"wrote {len(payload['drivers'])} drivers and "
        f"{len(payload['packages'])} packages to {output}"
    )


@app.command("import")
def import_day(
    path: Annotated[Path, typer.Argument(help="a day's JSON, as `depot generate` writes it")],
    url: Annotated[str, typer.Option(help="the API's base URL")] = "http://127.0.0.1:8000",
    day: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD; default: the file's, else today")
    ] = None,
    token: Annotated[str | None, typer.Option(envvar="DEPOT_TOKEN", help="bearer token")] = None,
) -> None:
    """Import a day's lists through the API (POST /manifests)."""
    import httpx

    payload = json.loads(path.read_text())
    if day:
        payload["day"] = day
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(f"{url}/manifests", json=payload, headers=headers, timeout=300)
    console.print_json(response.text)
    if response.status_code >= 400:
        raise typer.Exit(1)


@app.command()
def emulator(
    host: str = "127.0.0.1",
    port: int = 4566,
    provision_: Annotated[
        bool, typer.Option("--provision/--no-provision", help="create tables and buckets")
    ] = True,
) -> None:
    """Run the embedded AWS emulator (DynamoDB and S3) in the foreground."""
    from depot.ops import emulator as emu

    _fake_credentials()
    proc = _start_emulator(host, port)
    try:
        if provision_:
            _provision(f"http://{host}:{port}")
        console.print(f"emulator on http://{host}:{port}; Ctrl-C stops it")
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _stop(proc)
    _ = emu


@app.command()
def provision(
    workspace: Annotated[
        str, typer.Option(help="Terraform workspace when Terraform is used")
    ] = "dev",
    load_today: Annotated[
        bool, typer.Option(help="also store today's generated day if none is")
    ] = False,
) -> None:
    """Create the tables and buckets at AWS_ENDPOINT_URL (Terraform if installed, else the app's \
bootstrap)."""
    from depot.config import get_settings

    _provision(get_settings().aws_endpoint_url, workspace)
    if load_today:
        _load_today_if_missing()


def _provision(endpoint: str | None, workspace: str = "dev") -> None:
    from depot.config import Settings

    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    settings = Settings()
    from depot.ops.provision import provision as provision_with_terraform

    how = provision_with_terraform(settings, workspace=workspace)  # Terraform, else the bootstrap
    console.print(
        f"provisioned {settings.assignments_table}, {settings.days_table}, "
        f"{settings.events_table}, {settings.idempotency_table}, {settings.log_bucket}, "
        f"{settings.state_bucket} ({how})"
    )


def _start_emulator(host: str, port: int) -> subprocess.Popen:
    if _port_in_use(host, port):
        console.print(
            f"[red]port {port} is already in use: "
            "stop what runs there (a previous `make run`?)[/red]"
        )
        raise typer.Exit(1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "depot.ops.emulator", "--host", host, "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready on" not in line:
        _stop(proc)
        console.print(f"[red]the emulator did not start: {line}[/red]")
        raise typer.Exit(1)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API processes")] = 1,
) -> None:
    """Serve the API against AWS_ENDPOINT_URL (unset in dev: the embedded emulator on :4566; \
empty: AWS)."""
    import uvicorn
    from pydantic import ValidationError

    from depot.config import get_settings
    from depot.http.auth import open_mode_refusal
    from depot.observability import configure_logging

    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        console.print(
            f"invalid configuration: {problems}", style="red", markup=False, soft_wrap=True
        )
        raise typer.Exit(2) from None
    refusal = open_mode_refusal(settings, host)
    if refusal:
        console.print(refusal, style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2)
    banner = (
        f"Depot API on http://{host}:{port} "
        f"(storage: {settings.aws_endpoint_url or 'AWS'}, env {settings.env})"
    )
    configure_logging()
    if workers > 1:
        console.print(banner)
        uvicorn.run(
            "depot.http.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
        )
        return

    class AnnouncingServer(uvicorn.Server):
        """Prints the banner once the socket is bound, so whoever waits for it can connect."""

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:
                console.print(banner)

    config = uvicorn.Config(
        "depot.http.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
    )
    AnnouncingServer(config).run()


@app.command()
def run(
    host: str = "127.0.0.1",
    port: int = 8000,
    emulator_port: int = 4566,
) -> None:
    """The embedded default: emulator on :4566, tables and bucket, today's day, API on :8000."""
    _fake_credentials()
    endpoint = f"http://127.0.0.1:{emulator_port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    if _port_in_use(host, port):
        console.print(f"[red]port {port} is already in use[/red]")
        raise typer.Exit(1)
    proc = _start_emulator("127.0.0.1", emulator_port)
    try:
        _provision(endpoint)
        _load_today_if_missing()
        serve(host=host, port=port, workers=1)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(proc)
        console.print("stopped the API and the emulator")


def _load_today_if_missing() -> None:
    import orjson

    from depot.config import Settings
    from depot.ops.generator import generate_day
    from depot.service import Service
    from depot.storage.store import Store, make_clients

    settings = Settings()
    service = Service(settings, Store(settings, *make_clients(settings)))
    today = service.today()
    if service.day_state(today) is not None:
        console.print(f"day {today} already stored")
        return
    seed = int(today.replace("-", ""))
    payload = generate_day(seed=seed)
    result = service.import_body(orjson.dumps({"day": today, **payload}))
    console.print(
        f"loaded today's generated day {today}: {result['drivers_total']} drivers, "
        f"{result['packages_total']} packages (seed {seed})"
    )


@app.command()
def token(
    role: Annotated[str, typer.Option(help="dispatcher or driver")],
    driver_id: Annotated[
        str | None, typer.Option(help="the driver's id (driver tokens only)")
    ] = None,
    ttl: Annotated[str, typer.Option(help="lifetime: 900, 30m, 8h, 2d (at most 30d)")] = "8h",
) -> None:
    """Mint a bearer token signed with DEPOT_AUTH_SECRET; the token is the last line of output."""
    from depot.http.auth import mint_cli

    try:
        print(mint_cli(role, driver_id, ttl))
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


from depot.ops import dispatch
from depot.ops.solve import solve

app.command()(solve)
dispatch.register(app)

if __name__ == "__main__":
    app()
