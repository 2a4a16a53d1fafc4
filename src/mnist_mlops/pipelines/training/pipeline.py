"""The training pipeline: one node per strategy, a comparison, a champion."""

from kedro.pipeline import Pipeline, node, pipeline

from mnist_mlops.pipelines.training.nodes import (
    choose_recipe,
    compare_strategies,
    plot_strategy_comparison,
    select_champion,
    train_custom,
    train_distributed,
    train_local,
    train_single_node,
)
from mnist_mlops.spark.strategies import STRATEGIES

_TRAINERS = {
    "single_node": train_single_node,
    "local": train_local,
    "distributed": train_distributed,
    "custom": train_custom,
}


def create_pipeline(**kwargs) -> Pipeline:
    results = [f"{strategy}_result" for strategy in STRATEGIES]
    train_nodes = [
        node(
            _TRAINERS[strategy],
            inputs=["model_input", "training_recipe"],
            outputs=f"{strategy}_result",
            name=f"train_{strategy}",
            # Nodes tagged "spark" need a SparkSession: hooks.SparkHooks starts one when the
            # strategy a node is tagged with is selected.
            tags=[strategy, "spark"] if strategy != "single_node" else [strategy],
        )
        for strategy in STRATEGIES
    ]
    return pipeline(
        [
            node(
                choose_recipe,
                ["params:training", "params:tuning", "tuning_storage"],
                ["training_recipe", "recipe"],
                name="choose_recipe",
            ),
            *train_nodes,
            node(compare_strategies, results, "strategy_comparison", name="compare_strategies"),
            node(
                plot_strategy_comparison,
                results,
                "strategy_comparison_chart",
                name="plot_strategy_comparison",
            ),
            node(select_champion, results, ["champion_model", "champion"], name="select_champion"),
        ],
        tags="training",
    )
