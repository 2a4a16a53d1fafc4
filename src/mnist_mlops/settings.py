"""Project settings: hooks and configuration loading."""

from omegaconf.resolvers import oc

from mnist_mlops.config.loader import LocalSecretsConfigLoader
from mnist_mlops.hooks import (
    ParameterHooks,
    RunSummaryHooks,
    SparkHooks,
    TensorFlowHooks,
    TypedParamsMlflowHook,
    WorkspaceHooks,
)
from mnist_mlops.workspaces import local_artifact_location

# kedro-mlflow's hook last, as when the plugin registered it (pluggy calls the last one first).
HOOKS = (
    ParameterHooks(),
    WorkspaceHooks(),
    TensorFlowHooks(),
    SparkHooks(),
    RunSummaryHooks(),
    TypedParamsMlflowHook(),
)
# The plugin's own instance: replaced by TypedParamsMlflowHook, which logs typed parameters
# flattened. "kedro_mlflow" is its distribution name, as Kedro matches it.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)

CONFIG_LOADER_CLASS = LocalSecretsConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # URIs, Spark master and credentials come from environment variables in every config file.
    # local_artifacts: where a local store keeps artifacts (null for a server: mlflow.yml).
    "custom_resolvers": {"oc.env": oc.env, "local_artifacts": local_artifact_location},
    "config_patterns": {
        "spark": ["spark*", "spark*/**"],
    },
    # An environment's mlflow.yml and spark.yml only say what differs from base.
    "merge_strategy": {"mlflow": "soft", "spark": "soft", "parameters": "soft"},
}
