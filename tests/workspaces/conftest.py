"""Real local workspaces: `kedro workspaces up` in a scratch state folder, down and purged after."""

import os
import tempfile

import pytest

from mnist_mlops.devservices import workspaces as local


@pytest.fixture(scope="session")
def local_workspaces():
    """Both workspaces up: MLflow basic-auth servers on PostgreSQL, Azurite and fake-gcs-server."""
    if reasons := local.missing():
        pytest.skip("local workspaces unavailable: " + "; ".join(reasons))
    previous = os.environ.get("MNIST_WORKSPACES_DIR")
    # Not under pytest's private (0700) temporary folder: PostgreSQL runs as its own user.
    os.environ["MNIST_WORKSPACES_DIR"] = tempfile.mkdtemp(prefix="mnist-workspaces-")
    try:
        seconds = local.up()
        print(f"kedro workspaces up (first time): {seconds:.1f} s")
        yield local.load_workspaces()
    finally:
        local.down(purge=True)
        if previous is None:
            os.environ.pop("MNIST_WORKSPACES_DIR", None)
        else:
            os.environ["MNIST_WORKSPACES_DIR"] = previous


@pytest.fixture
def workspace_variables(local_workspaces, monkeypatch):
    """What `eval "$(kedro workspaces status)"` exports, for this test only."""
    variables = local.variables()
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


def blobs(local_workspaces, container: str) -> list[str]:
    from azure.storage.blob import BlobServiceClient

    store = local_workspaces["sandbox"].store
    service = BlobServiceClient.from_connection_string(store.connection_string)
    return [blob.name for blob in service.get_container_client(container).list_blobs()]


def gcs_objects(local_workspaces, bucket: str = "mlflow-artifacts") -> list[str]:
    return [blob.name for blob in local_workspaces["production"].store.client().list_blobs(bucket)]


def query(local_workspaces, name: str, sql: str) -> list[tuple]:
    """Rows of ``sql`` in the workspace's MLflow database, straight from PostgreSQL."""
    import psycopg2

    postgres = local_workspaces[name].postgres
    connection = psycopg2.connect(
        host="127.0.0.1", port=postgres.port, user=postgres.USER, password=postgres.password,
        dbname="mlflow",
    )  # fmt: skip
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    finally:
        connection.close()
