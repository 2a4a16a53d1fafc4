"""`kedro workspaces status`: what to export, or what to do first."""

import shlex

from click.testing import CliRunner

from mnist_mlops.cli import cli


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
