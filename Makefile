# The two commands of the README: `make run` and `make test`. They bootstrap everything:
# a pinned uv in .tools/, the locked virtual environment in .venv/ with compiled bytecode.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
ARGS ?=
PARAMS ?=

# Compiled bytecode: these machines set PYTHONDONTWRITEBYTECODE=1, and without .pyc files every
# process recompiles TensorFlow and MLflow (import tensorflow: 24 s instead of 8 s).
export UV_COMPILE_BYTECODE := 1
# kedro-telemetry would try the network on every command.
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.PHONY: setup run test test-fast lint format retrain deploy rollout monitor rollback
setup: .venv/.synced

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: uv.lock pyproject.toml | $(UV)
	@scripts/check_java.sh
	$(UV) sync --frozen
	@touch $@

run: setup  ## kedro run on the embedded defaults (pass more with ARGS="--env azure ...")
	$(UV) run --frozen kedro run $(ARGS)

lint: setup
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen ruff check .
	$(UV) run --frozen actionlint
	$(UV) run --frozen mypy

# A model's life after the first run (scripts/lifecycle.sh, which the workflows and the lifecycle
# test call): PARAMS="key=value,..." goes to kedro's --params. make exits 2 on any failure; the
# script itself exits with kedro's code (3 rejected, 4 nothing to roll back to).
retrain deploy rollout monitor rollback: setup  ## CT retrain; CD deploy, canary rollout; monitor; roll back
	scripts/lifecycle.sh $@ "$(PARAMS)"

test: lint  ## ruff, then the whole test suite
	@scripts/ensure_chromium.sh
	@scripts/ensure_workspace_services.sh
	$(UV) run --frozen pytest $(ARGS)

# The fast tier measures line coverage of the package; the scoring app and its request parsing
# are tested in process and must stay at 85% or more (checked on whole runs, not with ARGS).
SERVING_CORE := src/mnist_mlops/serving/app.py,src/mnist_mlops/serving/parsing.py

test-fast: lint  ## ruff, then the pure and in-memory tests (no server, Spark or training): < 2 min
	$(UV) run --frozen pytest -m "not slow" --timeout 120 --cov=mnist_mlops --cov-report= $(ARGS)
	$(UV) run --frozen coverage report --include=$(SERVING_CORE) $(if $(ARGS),,--fail-under=85)

format: setup
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .
