"""Project commands, available as ``kedro <command>`` inside the project."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click
from kedro.framework.cli.utils import _split_params

if TYPE_CHECKING:
    from mnist_mlops.workspaces import Workspace


@click.group(name="mnist-mlops")
def cli() -> None:
    """Commands of the mnist-mlops project."""


@cli.command()
@click.option("--env", "-e", default=None, help="Kedro environment, e.g. gcp.")
@click.option("--host", default=None, help="Interface to listen on (serving.host).")
@click.option("--port", type=int, default=None, help="Port to listen on (serving.port).")
@click.option("--workers", type=int, default=None, help="Worker processes (serving.workers).")
@click.option(
    "--model-uri",
    default=None,
    help="Model to serve; default models:/<serving.model_name>@<serving.alias>. An alias is "
    "followed, a version is served as it is.",
)
@click.option(
    "--params",
    default="",
    # kedro run's own parser: dotted keys, the same syntax (serving.poll_s=1,...).
    callback=_split_params,
    help="Override parameters like kedro run: serving.poll_s=1,serving.limits.body_timeout_s=5",
)
def serve(
    env: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    model_uri: str | None,
    params: dict,
) -> None:
    """Serve a model of the production registry over REST, following its alias.

    The registry is the catalog's production_workspace; the bearer token comes from
    MNIST_SERVING_TOKEN or credentials.yml (serving.token): when set, /invocations and /metrics
    need it.
    """
    import logging.config

    from mnist_mlops.serving import startup
    from mnist_mlops.serving.server import LOG_CONFIG
    from mnist_mlops.serving.server import serve as serve_model
    from mnist_mlops.serving.settings import validate_settings
    from mnist_mlops.workspaces.workspace import CREDENTIAL_VARIABLES

    logging.config.dictConfig(LOG_CONFIG)  # one plain line per event, start-up phases included
    startup.mark_origin()
    startup.phase("cli")
    parameters, workspace, token = _serving_configuration(env, params)
    options = {"host": host, "port": port, "workers": workers}
    given = {key: value for key, value in options.items() if value is not None}
    settings = validate_settings({**parameters, **given})
    model_uri = model_uri or f"models:/{settings.model_name}@{settings.alias}"
    click.echo(f"Serving {model_uri} from {workspace.display_uri}")
    # This process and its workers (which inherit its environment) serve the production
    # workspace alone: its URIs and credentials, and no other MLFLOW_* credential, are theirs.
    for variable in CREDENTIAL_VARIABLES:
        os.environ.pop(variable, None)
    os.environ.update(
        {k: v for k, v in workspace.subprocess_env().items() if k.startswith("MLFLOW_")}
    )
    startup.phase("configuration")
    serve_model(settings, model_uri, token)


def _serving_configuration(env: str | None, params: dict) -> tuple[dict, Workspace, str | None]:
    """The ``serving`` parameters, the production workspace and the serving token.

    Read with the project's configuration loader alone, not a Kedro session: loading a session's
    context runs every hook (kedro-mlflow's builds the whole catalog, importing TensorFlow for
    its model datasets) and imports every pipeline: 8 s measured on a busy 2-core machine, for
    nothing the server uses.
    """
    from kedro.framework.project import settings as project
    from kedro.framework.startup import bootstrap_project
    from kedro.io import DataCatalog

    bootstrap_project(Path.cwd())
    config = project.CONFIG_LOADER_CLASS(
        conf_source=str(Path.cwd() / project.CONF_SOURCE),
        env=env or os.environ.get("KEDRO_ENV"),
        runtime_params=params,
        **project.CONFIG_LOADER_ARGS,
    )
    credentials = config["credentials"]
    entry = {"production_workspace": config["catalog"]["production_workspace"]}
    workspace = DataCatalog.from_config(entry, credentials).load("production_workspace")
    # As the project's WorkspaceHooks do: MLflow's defaults hide a stopped store for minutes.
    for variable, value in config["globals"].get("mlflow_http", {}).items():
        os.environ.setdefault(variable, str(value))
    token = credentials.get("serving", {}).get("token") or None
    return config["parameters"].get("serving", {}), workspace, token


@cli.command("spark-cluster")
@click.argument("action", type=click.Choice(["up", "down", "status"]))
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--port", type=int, default=7077, show_default=True, help="The master's port.")
@click.option("--webui-port", type=int, default=8080, show_default=True)
def spark_cluster(action: str, workers: int, port: int, webui_port: int) -> None:
    """Start, stop or show a local Spark standalone cluster (master and one-core workers)."""
    from mnist_mlops.spark.cluster import Cluster

    cluster = Cluster(port=port, webui_port=webui_port)
    if action == "up":
        state = cluster.up(workers=workers)
        click.echo(f"Spark master {cluster.master_url} with {state['aliveworkers']} workers")
        click.echo(f"  SPARK_MASTER={cluster.master_url} kedro run --env azure")
    elif action == "down":
        cluster.down()
        click.echo("Spark cluster stopped")
    else:
        state = cluster.status()
        click.echo(
            "down" if state is None else f"{state['status']}: {state['aliveworkers']} workers"
        )


@cli.command("workspaces")
@click.argument("action", type=click.Choice(["up", "down", "status"]))
@click.option("--purge", is_flag=True, help="With down: delete every store's data and secrets.")
def workspaces(action: str, purge: bool) -> None:
    """Start, stop or show the two workspaces as local services (MLflow with basic-auth,
    PostgreSQL, Azure Blob or GCS): see docs/workspaces.md.

    \b
    status prints the variables to export (eval "$(kedro workspaces status)").
    """
    from kedro.utils import find_kedro_project

    from mnist_mlops.devservices import workspaces as local

    if action == "up":
        project = find_kedro_project(Path.cwd()) or Path.cwd()
        if still_missing := local.install_missing(project):
            raise click.ClickException(
                "cannot start the local workspaces: " + "; ".join(still_missing)
            )
        seconds = local.up()
        click.echo(f"# workspaces up in {seconds:.1f} s; their variables:", err=True)
    elif action == "down":
        local.down(purge=purge)
        click.echo("# workspaces stopped" + (", state deleted" if purge else ""), err=True)
        return
    found = local.load_workspaces()
    if not found:
        raise click.ClickException("no local workspaces here: run `kedro workspaces up` first")
    for workspace in found.values():
        state = ", ".join(f"{k} {'up' if v else 'DOWN'}" for k, v in workspace.status().items())
        click.echo(f"# {workspace.name} at {workspace.uri}: {state}", err=True)
    for name, value in local.variables().items():
        click.echo(f"export {name}={shlex.quote(value)}")
