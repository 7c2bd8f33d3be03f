#!/usr/bin/env bash
# Run Terraform on infra/ the same way everywhere: `make terraform-*`, `depot provision`, tests.
#
#   scripts/terraform.sh init  [extra init args]   # e.g. -backend-config=backends/prod.s3.tfbackend
#   scripts/terraform.sh apply [extra apply args]
#   scripts/terraform.sh plan  [extra plan args]   # -detailed-exitcode: 0 = no changes, 2 = changes
#   scripts/terraform.sh output                    # terraform output -json
#
# Environment:
#   TF_WORKSPACE      dev | test | prod (default dev), created if missing. Terraform itself reads
#                     TF_WORKSPACE and refuses one that does not exist yet, so this script unsets
#                     it, creates/selects the workspace, and only then hands it back.
#   AWS_ENDPOINT_URL  the AWS provider honours it. When it names this machine or LocalStack, the
#                     emulator-only provider switches are turned on (TF_VAR_emulator=true) and
#                     fake credentials are used unless some are set. Unset = real AWS.
#   TF_DATA_DIR       Terraform's own (.terraform by default); TF_STATE_DIR: where the local
#                     backend keeps workspace states (default infra/.state, git-ignored). With an
#                     infra/backend_override.tf (the S3 backend, see infra/README.md) neither
#                     applies: pass -backend-config=... to init.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
infra="$root/infra"
cmd="${1:?usage: $0 init|apply|plan|output [args]}"
shift

workspace="${TF_WORKSPACE:-dev}"
unset TF_WORKSPACE
data_dir="${TF_DATA_DIR:-$infra/.terraform}"

tf() { terraform -chdir="$infra" "$@"; }

is_emulator() {
  case "${AWS_ENDPOINT_URL:-}" in
    http://localhost[:/]* | http://localhost | http://127.* | http://\[::1\]* | \
      http://localstack[:/]* | http://localstack | http://host.docker.internal*) return 0 ;;
    *) return 1 ;;
  esac
}

# emulator.auto.tfvars (git-ignored) repeats the choice for a plain `terraform plan` run in infra/
# afterwards; it is removed whenever this script targets AWS.
if is_emulator; then
  printf '# Written by scripts/terraform.sh: AWS_ENDPOINT_URL=%s is an emulator.\nemulator = true\n' \
    "$AWS_ENDPOINT_URL" >"$infra/emulator.auto.tfvars"
  export TF_VAR_emulator=true
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
  export AWS_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
else
  rm -f "$infra/emulator.auto.tfvars"
fi

# Providers from a local mirror where one exists (see scripts/terraform-cli-config.sh).
mkdir -p "$data_dir"
eval "$("$root/scripts/terraform-cli-config.sh" "$data_dir/mirror.tfrc" 2>/dev/null)"

init() {
  local args=(-input=false)
  if [[ ! -f "$infra/backend_override.tf" ]]; then
    # Local backend: states under TF_STATE_DIR, never Terraform's implicit infra/terraform.tfstate.d
    # (a fresh TF_DATA_DIR next to states there makes init ask to migrate them).
    local state_dir="${TF_STATE_DIR:-$infra/.state}"
    mkdir -p "$state_dir"
    args+=(-reconfigure "-backend-config=workspace_dir=$state_dir")
  fi
  tf init "${args[@]}" "$@"
}

ensure_workspace() {
  [[ -f "$data_dir/terraform.tfstate" ]] || init >&2
  tf workspace select -or-create "$workspace" >&2
  export TF_WORKSPACE="$workspace"
}

case "$cmd" in
  init) init "$@" ;;
  apply)
    ensure_workspace
    tf apply -auto-approve -input=false "$@"
    ;;
  plan)
    ensure_workspace
    tf plan -detailed-exitcode -input=false "$@"
    ;;
  output)
    ensure_workspace
    tf output -json "$@"
    ;;
  *)
    echo "unknown command: $cmd" >&2
    exit 64
    ;;
esac
