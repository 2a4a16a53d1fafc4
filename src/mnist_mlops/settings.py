"""Project settings: hooks and configuration loading."""

from omegaconf.resolvers import oc

from mnist_mlops.hooks import SparkHooks

HOOKS = (SparkHooks(),)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # URIs, Spark master and credentials come from environment variables in every config file.
    "custom_resolvers": {"oc.env": oc.env},
    "config_patterns": {
        "spark": ["spark*", "spark*/**"],
        # conf/local holds personal secrets; read it whichever environment runs (--env azure too).
        "credentials": ["credentials*", "credentials*/**", "../local/credentials*"],
    },
    # An environment's mlflow.yml and spark.yml only say what differs from base.
    "merge_strategy": {"mlflow": "soft", "spark": "soft", "parameters": "soft"},
}
