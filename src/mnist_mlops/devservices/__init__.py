"""Local stand-ins for hosted services, started by ``kedro workspaces up`` (PostgreSQL, Azurite,
fake-gcs-server, MLflow servers): for development and tests, never imported by a run."""
