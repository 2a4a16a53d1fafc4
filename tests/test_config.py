"""Each workspace is a configuration: environment variables and conf/local, with local defaults."""

import shutil

import pytest

from mnist_mlops.settings import CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def conf(tmp_path):
    target = tmp_path / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", target, ignore=shutil.ignore_patterns("credentials.yml"))
    shutil.copy(PROJECT_ROOT / "conf" / "base" / "credentials.yml", target / "base")
    return target


def _load(conf, env, key):
    return CONFIG_LOADER_CLASS(str(conf), env=env, **CONFIG_LOADER_ARGS)[key]


@pytest.mark.parametrize("env", ["local", "azure", "gcp"])
def test_defaults_are_local(conf, env, monkeypatch):
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    monkeypatch.delenv("AZURE_MLFLOW_USERNAME", raising=False)
    assert _load(conf, env, "spark")["spark.master"] == "local[*]"
    assert _load(conf, env, "credentials")["sandbox_mlflow"]["MLFLOW_TRACKING_USERNAME"] == ""


def test_environment_variables_reach_every_file(conf, monkeypatch):
    monkeypatch.setenv("SPARK_MASTER", "spark://10.0.0.5:7077")
    monkeypatch.setenv("GCP_MLFLOW_PASSWORD", "s3cret")
    assert _load(conf, "azure", "spark")["spark.master"] == "spark://10.0.0.5:7077"
    creds = _load(conf, "gcp", "credentials")["production_mlflow"]
    assert creds["MLFLOW_TRACKING_PASSWORD"] == "s3cret"


@pytest.mark.parametrize("env", ["azure", "gcp"])
def test_conf_local_secrets_apply_to_every_environment(conf, env):
    (conf / "local" / "credentials.yml").write_text(
        "sandbox_mlflow:\n  MLFLOW_TRACKING_USERNAME: alice\n  MLFLOW_TRACKING_PASSWORD: pw\n"
    )
    assert _load(conf, env, "credentials")["sandbox_mlflow"]["MLFLOW_TRACKING_USERNAME"] == "alice"


def test_environment_spark_settings_extend_base(conf):
    spark = _load(conf, "azure", "spark")
    assert spark["spark.app.name"] == "mnist-mlops-sandbox"
    assert spark["spark.task.maxFailures"] == 1  # from base: soft merge


@pytest.mark.parametrize("env", ["local", "gcp"])
def test_the_server_writes_the_request_log_monitoring_reads(conf, env, monkeypatch):
    monkeypatch.setenv("MNIST_REQUEST_LOG", "/mnt/logs/requests.jsonl")
    serving = _load(conf, env, "parameters")["serving"]
    catalog = _load(conf, env, "catalog")
    assert serving["request_log"] == catalog["serving_request_log"]["filepath"]
    assert serving["request_log"] == "/mnt/logs/requests.jsonl"


@pytest.mark.parametrize(
    ("env", "home"), [("local", "sandbox"), ("azure", "sandbox"), ("gcp", "production")]
)
def test_each_workspace_uri_is_written_once(conf, env, home, monkeypatch):
    monkeypatch.setenv("AZURE_MLFLOW_TRACKING_URI", "http://127.0.0.1:8001")
    monkeypatch.setenv("GCP_MLFLOW_TRACKING_URI", "https://production.example:443")
    loader = CONFIG_LOADER_CLASS(str(conf), env=env, **CONFIG_LOADER_ARGS)
    loader.config_patterns["mlflow"] = ["mlflow*", "mlflow*/**"]  # as kedro-mlflow reads it
    catalog, mlflow = loader["catalog"], loader["mlflow"]
    assert catalog["sandbox_workspace"]["tracking_uri"] == "http://127.0.0.1:8001"
    assert catalog["production_workspace"]["tracking_uri"] == "https://production.example:443"
    home_uri = catalog[f"{home}_workspace"]["tracking_uri"]
    assert mlflow["server"]["mlflow_tracking_uri"] == home_uri
    assert mlflow["server"]["mlflow_registry_uri"] is None  # the tracking server's registry
    assert catalog[f"{home}_workspace"]["registry_uri"] is None
    assert mlflow["server"]["credentials"] is None  # never exported process-wide
    # A server keeps its own artifacts: no local folder for the experiment.
    assert mlflow["tracking"]["experiment"]["create_experiment_kwargs"]["artifact_location"] is None
