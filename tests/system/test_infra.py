"""Terraform (infra/) against a real emulator: it applies, it is idempotent, its workspaces share
one emulator without clashing, and it builds exactly what the app's own bootstrap builds.

The applies are slow (the AWS provider waits ~50 s for an S3 lifecycle rule to settle, as on
AWS), so one module fixture runs them all at once, in threads, and the tests read the result:
- emulator A: `dev` through ``depot.ops.provision.provision`` (what `depot run` does), `test` and
  `prod` through `make terraform-init terraform-apply` (what a person and CI do);
- emulator B: ``depot.storage.tables.bootstrap`` with the default (dev) settings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from depot.config import Settings
from depot.ops import provision as prov
from depot.storage.tables import bootstrap
from support.processes import Emulator, start_emulator

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
TERRAFORM = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")

WORKSPACES = ("dev", "test", "prod")
SUFFIX = {"dev": "", "test": "-test", "prod": "-prod"}
LOG_RETENTION = {"dev": 90, "test": 30, "prod": 365}
NONCURRENT = {"dev": 30, "test": 7, "prod": 90}


def names(ws: str) -> dict[str, str]:
    s = SUFFIX[ws]
    return {
        "assignments_table": f"DeliveryAssignments{s}",
        "days_table": f"DepotDays{s}",
        "idempotency_table": f"DepotIdempotency{s}",
        "events_table": f"DepotEvents{s}",
        "log_bucket": f"depot-logs-{ws}",
        "state_bucket": f"depot-state-{ws}",
    }


def settings_for(endpoint: str) -> Settings:
    return Settings(aws_endpoint_url=endpoint, aws_region="us-east-1")


def make(*targets: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *targets],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def tf_env(endpoint: str, ws: str, base: Path) -> dict[str, str]:
    return prov.terraform_env(endpoint, ws, base)


@dataclass
class Applied:
    a: Emulator
    b: Emulator
    base: Path
    provision_result: str = ""
    outputs: dict[str, dict] = field(default_factory=dict)
    plans: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> Applied:
    if TERRAFORM is None:
        pytest.skip("terraform is not installed")
    base = tmp_path_factory.mktemp("tf")
    with start_emulator() as a, start_emulator() as b:
        result = Applied(a=a, b=b, base=base)
        dev_dir = prov.run_dir(a.endpoint)
        shutil.rmtree(dev_dir, ignore_errors=True)

        def dev() -> None:
            result.provision_result = prov.provision(settings_for(a.endpoint), workspace="dev")

        def via_make(ws: str) -> None:
            proc = make("terraform-init", "terraform-apply", env=tf_env(a.endpoint, ws, base / ws))
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

        def boot() -> None:
            bootstrap(b.client("dynamodb"), b.client("s3"), settings_for(b.endpoint))

        with ThreadPoolExecutor(max_workers=4) as pool:
            for f in [
                pool.submit(dev),
                pool.submit(via_make, "test"),
                pool.submit(via_make, "prod"),
                pool.submit(boot),
            ]:
                f.result()

        envs = {"dev": tf_env(a.endpoint, "dev", dev_dir)}
        envs.update({ws: tf_env(a.endpoint, ws, base / ws) for ws in ("test", "prod")})

        def plan(ws: str) -> subprocess.CompletedProcess:
            return make("terraform-plan", env=envs[ws])

        def output(ws: str) -> dict:
            proc = make("terraform-output", env=envs[ws])
            assert proc.returncode == 0, proc.stderr
            return {k: v["value"] for k, v in json.loads(proc.stdout).items()}

        with ThreadPoolExecutor(max_workers=3) as pool:
            plans = dict(zip(WORKSPACES, pool.map(plan, WORKSPACES)))
            outputs = dict(zip(WORKSPACES, pool.map(output, WORKSPACES)))
        result.plans, result.outputs = plans, outputs
        yield result
        shutil.rmtree(dev_dir, ignore_errors=True)


# -- reading an account back, normalised ------------------------------------------------------


def table_shape(dynamodb, name: str) -> dict:
    t = dynamodb.describe_table(TableName=name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    return {
        "KeySchema": t["KeySchema"],
        "AttributeDefinitions": sorted(t["AttributeDefinitions"], key=lambda a: a["AttributeName"]),
        "BillingMode": t.get("BillingModeSummary", {}).get("BillingMode"),
        "GlobalSecondaryIndexes": [
            {
                "IndexName": i["IndexName"],
                "KeySchema": i["KeySchema"],
                "Projection": i["Projection"],
            }
            for i in t.get("GlobalSecondaryIndexes", [])
        ],
        "LocalSecondaryIndexes": [
            {
                "IndexName": i["IndexName"],
                "KeySchema": i["KeySchema"],
                "Projection": i["Projection"],
            }
            for i in t.get("LocalSecondaryIndexes", [])
        ],
        "TTL": (ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")),
    }


def bucket_shape(s3, bucket: str) -> dict:
    lifecycle = None
    try:
        lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except s3.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
    return {
        "Versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status"),
        "Encryption": [
            r["ApplyServerSideEncryptionByDefault"]
            for r in s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
                "Rules"
            ]
        ],
        "PublicAccessBlock": s3.get_public_access_block(Bucket=bucket)[
            "PublicAccessBlockConfiguration"
        ],
        "Lifecycle": lifecycle,
    }


# -- the tests ----------------------------------------------------------------------------------


@needs_terraform
def test_provision_takes_the_terraform_path_and_reports_the_apps_names(applied: Applied) -> None:
    assert applied.provision_result == "terraform"
    for ws in WORKSPACES:
        out = applied.outputs[ws]
        assert {k: out[k] for k in names(ws)} == names(ws)
        assert out["env"] == ws
        assert out["app_environment"]["DEPOT_ASSIGNMENTS_TABLE"] == names(ws)["assignments_table"]


@needs_terraform
def test_terraform_and_bootstrap_build_identical_tables(applied: Applied) -> None:
    s = settings_for(applied.b.endpoint)
    tf, boot = applied.a.client("dynamodb"), applied.b.client("dynamodb")
    for name in (s.assignments_table, s.days_table, s.idempotency_table, s.events_table):
        assert table_shape(tf, name) == table_shape(boot, name), name
    assert table_shape(tf, "DeliveryAssignments")["KeySchema"] == [
        {"AttributeName": "driver_id", "KeyType": "HASH"},
        {"AttributeName": "package_id", "KeyType": "RANGE"},
    ]
    assert table_shape(tf, "DepotIdempotency")["TTL"] == ("ENABLED", "expires_at")
    assert table_shape(tf, "DeliveryAssignments")["BillingMode"] == "PAY_PER_REQUEST"


@needs_terraform
def test_terraform_and_bootstrap_build_identical_buckets(applied: Applied) -> None:
    s = settings_for(applied.b.endpoint)
    tf, boot = applied.a.client("s3"), applied.b.client("s3")
    for bucket in (s.log_bucket, s.state_bucket):
        assert bucket_shape(tf, bucket) == bucket_shape(boot, bucket), bucket
    logs = bucket_shape(tf, s.log_bucket)
    assert logs["Versioning"] == "Enabled"
    assert logs["Encryption"] == [{"SSEAlgorithm": "AES256"}]
    assert all(logs["PublicAccessBlock"].values())
    assert bucket_shape(tf, s.state_bucket)["Lifecycle"] is None


@needs_terraform
def test_every_workspace_applies_into_one_emulator_with_its_own_settings(applied: Applied) -> None:
    dynamodb, s3 = applied.a.client("dynamodb"), applied.a.client("s3")
    tables = set(dynamodb.list_tables()["TableNames"])
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    for ws in WORKSPACES:
        n = names(ws)
        assert {n["assignments_table"], n["days_table"], n["idempotency_table"]} <= tables
        assert {n["log_bucket"], n["state_bucket"]} <= buckets
        t = dynamodb.describe_table(TableName=n["assignments_table"])["Table"]
        assert t["KeySchema"][0] == {"AttributeName": "driver_id", "KeyType": "HASH"}
        assert t.get("DeletionProtectionEnabled", False) is (ws == "prod")
        sse = t.get("SSEDescription", {})
        assert (sse.get("SSEType") == "KMS") is (ws != "dev"), sse
        pitr = dynamodb.describe_continuous_backups(TableName=n["assignments_table"])
        status = pitr["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        assert status["PointInTimeRecoveryStatus"] == "ENABLED"
        (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=n["log_bucket"])["Rules"]
        assert rule["Filter"] == {"Prefix": "logs/"}
        assert rule["Expiration"] == {"Days": LOG_RETENTION[ws]}
        assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == NONCURRENT[ws]
    assert len(tables) == 12 and len(buckets) == 6  # four tables per workspace


@needs_terraform
@pytest.mark.parametrize("ws", WORKSPACES)
def test_plan_after_apply_shows_no_changes(applied: Applied, ws: str) -> None:
    proc = applied.plans[ws]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "No changes" in proc.stdout


@needs_terraform
def test_old_state_is_dropped_for_a_fresh_emulator(applied: Applied) -> None:
    state_dir = prov.run_dir(applied.a.endpoint) / "state"
    assert prov._emulator_has_any(applied.a.endpoint, "dev", state_dir)
    with start_emulator() as fresh:
        assert not prov._emulator_has_any(fresh.endpoint, "dev", state_dir)


@needs_terraform
def test_format_validate_and_checkov(applied: Applied) -> None:
    fmt = subprocess.run(
        [TERRAFORM, "-chdir=infra", "fmt", "-check", "-recursive"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert fmt.returncode == 0, fmt.stdout
    env = tf_env(applied.a.endpoint, "test", applied.base / "test")
    validate = subprocess.run(
        [TERRAFORM, "-chdir=infra", "validate", "-no-color"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    checkov = REPO / ".venv-lint" / "bin" / "checkov"
    if not checkov.exists():
        pytest.skip("checkov not installed: `make lint-tools`")
    scan = subprocess.run(
        [
            str(checkov),
            "--compact",
            "--skip-download",
            "-d",
            "infra",
            "--framework",
            "terraform",
            "-o",
            "json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    report = json.loads(scan.stdout)
    summary = report["summary"]
    assert summary["failed"] == 0, json.dumps(report["results"]["failed_checks"], indent=1)[:3000]
    assert summary["passed"] > 0
    for skipped in report["results"]["skipped_checks"]:
        # Every skip carries its justification in the code (#checkov:skip=ID:why).
        assert len(skipped["check_result"].get("suppress_comment", "")) > 20, skipped["check_id"]


def test_provision_falls_back_to_bootstrap_without_terraform(monkeypatch, fresh_emulator) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert not prov.terraform_available()
    s = settings_for(fresh_emulator.endpoint)
    assert prov.provision(s) == "bootstrap"
    tables = set(fresh_emulator.client("dynamodb").list_tables()["TableNames"])
    assert tables == {"DeliveryAssignments", "DepotDays", "DepotEvents", "DepotIdempotency"}


def test_provision_leaves_aws_to_terraform(monkeypatch) -> None:
    monkeypatch.delenv("DEPOT_PROVISION", raising=False)
    assert prov.provision(Settings(aws_endpoint_url=None)) == "skipped"


def test_cli_config_prefers_the_mirror_named_by_tf_plugin_mirror(tmp_path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "registry.terraform.io" / "hashicorp" / "aws").mkdir(parents=True)
    out = tmp_path / "cli.tfrc"
    env = dict(os.environ, TF_PLUGIN_MIRROR=str(mirror))
    proc = subprocess.run(
        [str(REPO / "scripts" / "terraform-cli-config.sh"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == f"export TF_CLI_CONFIG_FILE='{out}'"
    text = out.read_text()
    assert f'path    = "{mirror}"' in text and "filesystem_mirror" in text


def test_cli_config_ignores_a_mirror_without_the_aws_provider(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "cli.tfrc"
    env = dict(os.environ, TF_PLUGIN_MIRROR=str(empty))
    subprocess.run(
        [str(REPO / "scripts" / "terraform-cli-config.sh"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    if out.exists():
        assert str(empty) not in out.read_text()
