#!/usr/bin/env bash
# One step of a model's life, exactly as the CI/CD/CT workflows run it and as the lifecycle test
# (tests/workspaces/test_lifecycle.py) runs it, so that neither can drift from the other:
#
#   scripts/lifecycle.sh retrain|deploy|rollout|monitor|rollback|run [key=value,...]
#
# The second argument is passed to kedro run's --params. The exit code is kedro's (make would
# turn every failure into 2): 0 done or nothing to do, 3 rejected by the registration gate or by
# deploy's validation, 4 nothing to roll back to, 2 a deployment.version that does not exist,
# 1 a crash. KEDRO overrides the command (the test's own kedro in a scratch project); unset,
# the project's locked environment is installed if needed and used.
set -euo pipefail
usage="usage: scripts/lifecycle.sh retrain|deploy|rollout|monitor|rollback|run [key=value,...]"
step=${1:?$usage}
params=${2:-}
case $step in
  retrain) args=(--env azure) ;;
  deploy) args=(--pipeline deploy --env gcp) ;;
  rollout) args=(--pipeline rollout --env gcp) ;;
  monitor) args=(--pipeline monitor --env gcp) ;;
  rollback)
    args=(--pipeline deploy --env gcp)
    params="deployment.rollback=true${params:+,$params}"
    ;;
  run) args=() ;;
  *) echo "$usage" >&2; exit 64 ;;
esac
if [ -n "$params" ]; then
  args+=(--params "$params")
fi
if [ -n "${KEDRO:-}" ]; then
  exec "$KEDRO" run "${args[@]}"
fi
root=$(cd "$(dirname "$0")/.." && pwd)
make -s -C "$root" setup
exec "$root/.venv/bin/kedro" run "${args[@]}"
