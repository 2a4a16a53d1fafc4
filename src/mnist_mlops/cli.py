"""Project commands, available as ``kedro <command>`` inside the project."""

from __future__ import annotations

import shlex
from pathlib import Path

import click


@click.group(name="mnist-mlops")
def cli() -> None:
    """Commands of the mnist-mlops project."""


@cli.command()
@click.option("--env", "-e", default=None, help="Kedro environment, e.g. gcp.")
@click.option("--host", default=None, help="Interface to listen on (serving.host).")
@click.option("--port", type=int, default=None, help="Port to listen on (serving.port).")
def serve(env: str | None, host: str | None, port: int | None) -> None:
    """Serve models:/<serving.model_name>@<serving.alias> over REST.

    The registry is the catalog's production_workspace; the bearer token comes from
    MNIST_SERVING_TOKEN or credentials.yml (serving.token): when set, requests must carry it.
    """
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from mnist_mlops.serving.app import load_model
    from mnist_mlops.serving.app import serve as serve_model

    bootstrap_project(Path.cwd())
    with KedroSession.create(env=env) as session:
        context = session.load_context()
        settings = context.params["serving"]
        workspace = context.catalog.load("production_workspace")
        token = context.config_loader["credentials"].get("serving", {}).get("token") or None
    model_uri = f"models:/{settings['model_name']}@{settings['alias']}"
    click.echo(f"Loading {model_uri} from {workspace.display_uri}")
    with workspace.session():
        # This process serves the production workspace alone: make it MLflow's default.
        mlflow.set_tracking_uri(workspace.tracking_uri)
        mlflow.set_registry_uri(workspace.registry_uri or workspace.tracking_uri)
        loaded = load_model(model_uri)
    serve_model(
        loaded,
        host or settings["host"],
        port or settings["port"],
        token=token,
        request_log=settings["request_log"],
        max_body_bytes=settings["max_body_bytes"],
    )


@cli.command("spark-cluster")
@click.argument("action", type=click.Choice(["up", "down", "status"]))
@click.option("--workers", type=int, default=2, show_default=True)
def spark_cluster(action: str, workers: int) -> None:
    """Start, stop or show a local Spark standalone cluster (master and one-core workers)."""
    from mnist_mlops.spark_cluster import main

    main([action, "--workers", str(workers)])


@cli.command("workspaces")
@click.argument("action", type=click.Choice(["up", "down", "status"]))
@click.option("--purge", is_flag=True, help="With down: delete every store's data and secrets.")
def workspaces(action: str, purge: bool) -> None:
    """Start, stop or show the two workspaces as local services (MLflow with basic-auth,
    PostgreSQL, Azure Blob or GCS): see docs/workspaces.md.

    \b
    status prints the variables to export (eval "$(kedro workspaces status)").
    """
    from mnist_mlops.workspaces import local

    if action == "up":
        seconds = local.up()
        click.echo(f"# workspaces up in {seconds:.1f} s; their variables:", err=True)
    elif action == "down":
        local.down(purge=purge)
        click.echo("# workspaces stopped" + (", state deleted" if purge else ""), err=True)
        return
    for workspace in local.load_workspaces().values():
        state = ", ".join(f"{k} {'up' if v else 'DOWN'}" for k, v in workspace.status().items())
        click.echo(f"# {workspace.name} at {workspace.uri}: {state}", err=True)
    for name, value in local.variables().items():
        click.echo(f"export {name}={shlex.quote(value)}")
