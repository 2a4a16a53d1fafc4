"""The tune pipeline: data_prep, then an Optuna study of the training recipe on Spark."""

from kedro.pipeline import Pipeline, node, pipeline

from mnist_mlops.pipelines import data_prep
from mnist_mlops.pipelines.tune.nodes import (
    open_tuning_study,
    plot_param_importances,
    plot_tuning_history,
    summarise_study,
    tune_recipe,
)


def create_pipeline(**kwargs) -> Pipeline:
    # data_prep first, so that `kedro run --pipeline tune` works on a fresh clone and
    # data_prep.max_train_images sizes the search's images.
    return data_prep.create_pipeline() + pipeline(
        [
            node(
                open_tuning_study,
                ["params:tuning", "tuning_storage"],
                "tuning_study",
                name="open_tuning_study",
            ),
            node(
                tune_recipe,
                ["model_input", "params:training", "params:tuning", "tuning_study"],
                "tuning_trials",
                name="tune_recipe",
                tags=["spark"],  # hooks.SparkHooks starts the session
            ),
            node(
                summarise_study,
                ["tuning_study", "tuning_trials"],
                "tuning_summary",
                name="summarise_study",
            ),
            node(
                plot_tuning_history,
                ["tuning_study", "tuning_trials"],
                "tuning_history_chart",
                name="plot_tuning_history",
            ),
            node(
                plot_param_importances,
                ["tuning_study", "tuning_summary"],
                "tuning_importance_chart",
                name="plot_param_importances",
            ),
        ],
        tags="tune",
    )
