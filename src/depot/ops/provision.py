"""Provision the tables and buckets: with Terraform (``infra/``) where it can, else the app's
bootstrap.

``provision(settings, workspace)`` returns which path it took:

- ``"terraform"``: ``terraform`` is on PATH and ``infra/`` is beside the package (a checkout), and
  ``settings.aws_endpoint_url`` points at an emulator. Terraform applies ``workspace`` with the
  same script as ``make terraform-apply`` (scripts/terraform.sh), keeping its data and state under
  ``.run/terraform/<endpoint>/``, so the repository stays clean. When the emulator holds none of
  the workspace's resources (a fresh embedded emulator), the old state is discarded first, so it
  never claims resources the emulator lacks.
- ``"bootstrap"``: anywhere else with an endpoint (no Terraform, an installed package without
  ``infra/``, or ``DEPOT_PROVISION=bootstrap``): ``depot.storage.tables.bootstrap``, which creates
  the same tables and buckets (tests/system/test_infra.py proves it).
- ``"skipped"``: no endpoint, i.e. real AWS, whose infrastructure is Terraform's job
  (``make terraform-apply``, infra/README.md), not the app's.

``DEPOT_PROVISION=terraform|bootstrap|auto`` (default ``auto``) forces a path. A Terraform apply
against a fresh emulator takes about a minute: the AWS provider waits for the S3 lifecycle rule
to read back the same three times, ten seconds apart, as it does on AWS.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from depot.config import LOCAL_CREDENTIALS, Settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
TERRAFORM_TIMEOUT_S = 600


class ProvisionError(RuntimeError):
    """Terraform was asked for and failed."""


def infra_dir(settings: Settings | None = None) -> Path | None:
    """``infra/`` and its runner script, when the package runs from a checkout."""
    root = Path((settings or Settings()).repo_root or REPO_ROOT)
    if (root / "infra" / "main.tf").is_file() and (root / "scripts" / "terraform.sh").is_file():
        return root / "infra"
    return None


def terraform_available() -> bool:
    return shutil.which("terraform") is not None and infra_dir() is not None


def provision(settings: Settings, workspace: str = "dev") -> str:
    """Create the tables and buckets ``settings`` names; return ``"terraform"``, ``"bootstrap"`` or
    ``"skipped"``."""
    mode = settings.provision
    if not settings.aws_endpoint_url and mode != "bootstrap":
        log.info("no AWS_ENDPOINT_URL: AWS is provisioned by `make terraform-apply`, not the app")
        return "skipped"
    if mode == "terraform" or (mode == "auto" and terraform_available()):
        if not terraform_available():
            raise ProvisionError("DEPOT_PROVISION=terraform, but terraform or infra/ is missing")
        outputs = apply_terraform(settings.aws_endpoint_url, workspace)
        wanted = expected_names(settings)
        got = {key: outputs.get(key) for key in wanted}
        if got == wanted:
            return "terraform"
        # The app was configured with other names than the workspace's: give it what it asked for.
        log.warning(
            "workspace %s names %s, the app wants %s: bootstrapping those", workspace, got, wanted
        )
    _bootstrap(settings)
    return "bootstrap"


def expected_names(settings: Settings) -> dict[str, str]:
    """The names as Terraform's outputs call them."""
    return {
        "assignments_table": settings.assignments_table,
        "days_table": settings.days_table,
        "idempotency_table": settings.idempotency_table,
        "events_table": settings.events_table,
        "log_bucket": settings.log_bucket,
        "state_bucket": settings.state_bucket,
    }


def run_dir(endpoint: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", endpoint).strip("-") or "aws"
    return REPO_ROOT / ".run" / "terraform" / slug


def apply_terraform(
    endpoint: str, workspace: str = "dev", base: Path | None = None
) -> dict[str, str]:
    """``scripts/terraform.sh apply`` for ``workspace`` at ``endpoint``; return the outputs."""
    infra = infra_dir()
    if infra is None:
        raise ProvisionError("infra/ not found")
    base = base or run_dir(endpoint)
    state_dir = base / "state"
    env = terraform_env(endpoint, workspace, base)
    if state_dir.exists() and not _emulator_has_any(endpoint, workspace, state_dir):
        shutil.rmtree(state_dir / workspace, ignore_errors=True)
    script = str(infra.parent / "scripts" / "terraform.sh")
    _run([script, "init"], env)
    _run([script, "apply", "-no-color"], env)
    out = _run([script, "output", "-no-color"], env)
    return {key: value["value"] for key, value in json.loads(out).items()}


def terraform_env(endpoint: str, workspace: str, base: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        TF_WORKSPACE=workspace,
        TF_DATA_DIR=str(base / "data"),
        TF_STATE_DIR=str(base / "state"),
        TF_IN_AUTOMATION="1",
    )
    return env


def _emulator_has_any(endpoint: str, workspace: str, state_dir: Path) -> bool:
    """Whether the emulator still holds any table or bucket that the old state recorded."""
    state_file = state_dir / workspace / "terraform.tfstate"
    if not state_file.is_file():
        return False
    try:
        resources = json.loads(state_file.read_text()).get("resources", [])
    except (OSError, ValueError):
        return False
    tables, buckets = set(), set()
    for resource in resources:
        for instance in resource.get("instances", []):
            attrs = instance.get("attributes", {})
            if resource.get("type") == "aws_dynamodb_table":
                tables.add(attrs.get("name"))
            elif resource.get("type") == "aws_s3_bucket":
                buckets.add(attrs.get("bucket"))
    import boto3

    local = {name: os.environ.get(name, value) for name, value in LOCAL_CREDENTIALS.items()}
    session = boto3.session.Session(
        aws_access_key_id=local["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=local["AWS_SECRET_ACCESS_KEY"],
        region_name=os.environ.get("AWS_REGION", local["AWS_DEFAULT_REGION"]),
    )
    try:
        existing_tables = set(
            session.client("dynamodb", endpoint_url=endpoint).list_tables()["TableNames"]
        )
        existing_buckets = {
            b["Name"]
            for b in session.client("s3", endpoint_url=endpoint).list_buckets().get("Buckets", [])
        }
    except Exception:  # noqa: BLE001 - unreachable: let Terraform report it
        return True
    return bool(tables & existing_tables or buckets & existing_buckets)


def _run(cmd: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=TERRAFORM_TIMEOUT_S, check=False
    )
    if proc.returncode != 0:
        raise ProvisionError(
            f"{' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))} failed "
            f"({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def _bootstrap(settings: Settings) -> None:
    from depot.storage.store import make_clients
    from depot.storage.tables import bootstrap

    bootstrap(*make_clients(settings), settings)
