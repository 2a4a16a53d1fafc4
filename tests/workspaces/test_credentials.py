"""Each workspace's credentials reach its own server only, whatever the process holds."""

import traceback
from concurrent.futures import ThreadPoolExecutor

import mlflow
import pytest

from mnist_mlops.workspaces import Workspace, WorkspaceError
from tests.conftest import workspace


def _refusals(server) -> list[str]:
    return [line for line in server.process.log_path.read_text().splitlines() if " 401 " in line]


def test_each_server_gets_its_own_credentials_from_any_thread(servers, monkeypatch):
    # What kedro-mlflow used to export and a user's shell may hold: the sandbox's credentials.
    for key, value in servers["sandbox"].credentials.items():
        monkeypatch.setenv(key, value)
    sandbox = workspace(servers["sandbox"], "sandbox")
    production = workspace(servers["production"], "production")
    refused = {name: len(_refusals(server)) for name, server in servers.items()}

    def create(job: tuple[int, object]) -> str:
        number, target = job
        with target.session() as client:
            return client.create_experiment(f"credentials-{target.name}-{number}")

    jobs = [(n, sandbox if n % 2 else production) for n in range(12)]
    with ThreadPoolExecutor(4) as pool:  # interleaved calls to both servers
        assert all(pool.map(create, jobs))
    # Fluent calls and the proxied artifact upload of the home workspace go the same way.
    mlflow.set_tracking_uri(production.tracking_uri)
    with mlflow.start_run(experiment_id=create((99, production))):
        mlflow.log_text("artifact", "proxied.txt")
    mlflow.set_tracking_uri(None)
    # A crossed credential is refused by basic-auth: the servers would have logged a 401.
    assert {name: len(_refusals(server)) for name, server in servers.items()} == refused


def test_subprocess_env_holds_the_target_workspace_alone(servers, monkeypatch):
    for key, value in servers["sandbox"].credentials.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AZURE_MLFLOW_PASSWORD", servers["sandbox"].password)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountKey=sandbox-storage-key")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "sandbox-token")
    production = workspace(servers["production"], "production")

    env = production.subprocess_env()

    assert env["MLFLOW_TRACKING_URI"] == servers["production"].uri
    assert env["MLFLOW_TRACKING_USERNAME"] == servers["production"].username
    assert env["MLFLOW_TRACKING_PASSWORD"] == servers["production"].password
    leaked = {servers["sandbox"].password, "sandbox-storage-key", "sandbox-token"}
    assert not [value for value in env.values() if any(secret in value for secret in leaked)]
    assert "PATH" in env and "AZURE_STORAGE_CONNECTION_STRING" not in env


def test_errors_keep_type_and_message_but_no_secret(servers):
    secret = "guess-me-4242"
    wrong = workspace(
        servers["production"], "production", credentials={"MLFLOW_TRACKING_PASSWORD": secret}
    )
    with pytest.raises(WorkspaceError) as error, wrong.session() as client:
        client.create_experiment("refused")
    message = str(error.value)
    assert "'production' at http://127.0.0.1" in message
    assert "MlflowException" in message and "401" in message  # the cause's type and message
    cause = error.value.__cause__
    assert cause is not None and "mlflow.exceptions.MlflowException" in str(cause)
    printed = "".join(traceback.format_exception(error.value))
    assert "create_experiment" in printed  # the traceback of the cause survives
    assert secret not in printed


def test_a_password_in_the_uri_never_reaches_a_message(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    target = Workspace("production", "http://alice:pw-in-uri-9@127.0.0.1:9")
    with pytest.raises(WorkspaceError) as error, target.session() as client:
        client.search_experiments()
    printed = "".join(traceback.format_exception(error.value))
    assert "'production' at http://127.0.0.1:9" in printed
    assert "pw-in-uri-9" not in printed and "alice" not in printed
    assert "pw-in-uri-9" not in repr(target)
