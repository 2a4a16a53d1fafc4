"""`kedro workspaces status`: what to export, or what to do first."""

import shlex

from click.testing import CliRunner

from mnist_mlops.cli import cli
from mnist_mlops.devservices import workspaces as local


def test_status_without_workspaces_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_WORKSPACES_DIR", str(tmp_path / "nothing-here"))
    result = CliRunner().invoke(cli, ["workspaces", "status"])
    assert result.exit_code != 0
    assert "run `kedro workspaces up` first" in result.output


def test_status_prints_the_variables_to_export(local_workspaces):
    result = CliRunner().invoke(cli, ["workspaces", "status"])
    assert result.exit_code == 0, result.output
    exports = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in result.stdout.splitlines()
        if line.startswith("export ")
    )
    sandbox, production = local_workspaces["sandbox"], local_workspaces["production"]
    assert exports["AZURE_MLFLOW_TRACKING_URI"] == sandbox.uri
    assert exports["GCP_MLFLOW_TRACKING_URI"] == production.uri
    assert exports["AZURE_MLFLOW_USERNAME"] == "sandbox-admin"
    assert exports["GCP_MLFLOW_USERNAME"] == "production-admin"
    assert exports["AZURE_MLFLOW_PASSWORD"] != exports["GCP_MLFLOW_PASSWORD"]
    assert exports["MNIST_DATA_ROOT"] == "abfs://mnist-data"
    assert result.stderr.count("postgres up, object store up, mlflow up") == 2


def test_up_installs_what_is_missing_and_says_what_it_could_not(tmp_path, monkeypatch):
    """``up`` runs the project's install script for what is missing, then names what still is
    (here a project whose script installs nothing)."""
    (tmp_path / "pyproject.toml").write_text('[tool.kedro]\npackage_name = "mnist_mlops"\n')
    (tmp_path / "scripts").mkdir()
    ran = tmp_path / "ran"
    (tmp_path / "scripts" / "ensure_workspace_services.sh").write_text(f"touch {ran}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_WORKSPACES_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(local, "missing", lambda: ["no Azurite (node and `npm ci`)"])

    result = CliRunner().invoke(cli, ["workspaces", "up"])

    assert ran.exists(), "the install script did not run"
    assert result.exit_code != 0 and not (tmp_path / "state").exists()
    assert "cannot start the local workspaces: no Azurite" in result.output


def test_the_sandbox_keeps_optuna_studies_in_a_database_of_their_own(local_workspaces):
    import yaml

    from mnist_mlops.datasets import StudyStorageDataset
    from mnist_mlops.pipelines.tune.parameters import TuningParameters
    from mnist_mlops.pipelines.tune.study import open_study
    from tests.conftest import PROJECT_ROOT
    from tests.workspaces.conftest import query

    url = local.variables()["AZURE_OPTUNA_STORAGE"]
    password = local_workspaces["sandbox"].postgres.password
    storage = StudyStorageDataset(journal="unused.log", credentials={"url": url}).load()
    assert password not in storage.display and password not in repr(storage)
    tuning = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_tuning.yml").read_text())
    study = open_study(TuningParameters.model_validate(tuning["tuning"]), storage).load()
    study.tell(study.ask(), 0.99)
    assert study.best_value == 0.99
    # MLflow's database holds none of Optuna's tables.
    tables = query(local_workspaces, "sandbox", "SELECT tablename FROM pg_tables")
    assert "studies" not in {name for (name,) in tables}
