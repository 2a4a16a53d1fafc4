"""Project settings: hooks and configuration loading."""

from omegaconf.resolvers import oc

from mnist_mlops.config_loader import LocalSecretsConfigLoader
from mnist_mlops.hooks import ParameterHooks, SparkHooks, TypedParamsMlflowHook

HOOKS = (ParameterHooks(), SparkHooks(), TypedParamsMlflowHook())
# Its hook is registered above, as TypedParamsMlflowHook: it logs typed parameters flattened.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)  # its distribution name, as Kedro matches it

CONFIG_LOADER_CLASS = LocalSecretsConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # URIs, Spark master and credentials come from environment variables in every config file.
    "custom_resolvers": {"oc.env": oc.env},
    "config_patterns": {
        "spark": ["spark*", "spark*/**"],
    },
    # An environment's mlflow.yml and spark.yml only say what differs from base.
    "merge_strategy": {"mlflow": "soft", "spark": "soft", "parameters": "soft"},
}
