"""Each workspace's credentials reach its own server only, whatever the process holds."""

import base64
import json
import traceback
import urllib.error
import urllib.request
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


def _status(server, username: str, password: str, method: str = "GET", path: str = "", body=None):
    """The HTTP status of one request to a real basic-auth server as ``username``."""
    header = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"{server.uri}/api/2.0/mlflow/{path or 'experiments/search?max_results=1'}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": header, "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_servers_remember_a_right_password_only_until_it_changes(servers):
    """The credential cache of basic_auth_ini: a checked password is trusted for a while, but a
    wrong one is refused even right after the right one, and a changed one at once."""
    server, user = servers["production"], "cache-check-user"
    first, second = "first-Pa55word-cache", "second-Pa55word-cache"
    admin = (server.username, server.password)
    create = {"username": user, "password": first}
    assert _status(server, *admin, "POST", "users/create", create) == 200

    assert [_status(server, user, first) for _ in range(3)] == [200, 200, 200]
    assert _status(server, user, "not-the-Pa55word") == 401
    assert _status(server, user, first + "x") == 401
    assert _status(server, "someone-else", first) == 401
    assert _status(server, user, first) == 200

    change = {"username": user, "password": second}
    assert _status(server, *admin, "PATCH", "users/update-password", change) == 200
    assert _status(server, user, first) == 401  # the remembered check is gone with it
    assert _status(server, user, second) == 200
    log = server.process.log_path.read_text()
    assert first not in log and second not in log
