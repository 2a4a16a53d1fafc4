"""The registration pipeline: gate the champion, register it, push it to production."""

from kedro.pipeline import Pipeline, node, pipeline

from mnist_mlops.pipelines.registration.nodes import (
    build_model_card,
    evaluate_candidate,
    log_candidate,
    publish_model_card,
    push_to_production,
    register_in_sandbox,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(log_candidate, ["champion_model", "champion"], "candidate", name="log_candidate"),
            node(
                evaluate_candidate,
                [
                    "candidate",
                    "model_input",
                    "report_pictures",
                    "production_workspace",
                    "params:registration",
                ],
                "gate_evaluation",
                name="evaluate_candidate",
            ),
            node(
                build_model_card,
                [
                    "champion",
                    "gate_evaluation",
                    "data_report",
                    "model_input",
                    "params:registration",
                ],
                ["model_card", "model_card_pictures"],
                name="build_model_card",
            ),
            node(
                register_in_sandbox,
                [
                    "candidate",
                    "gate_evaluation",
                    "data_report",
                    "sandbox_workspace",
                    "params:registration",
                ],
                "sandbox_model_version",
                name="register_in_sandbox",
            ),
            node(
                push_to_production,
                [
                    "sandbox_model_version",
                    "sandbox_workspace",
                    "production_workspace",
                    "params:registration",
                ],
                "production_model_version",
                name="push_to_production",
            ),
            node(
                publish_model_card,
                [
                    "model_card",
                    "model_card_pictures",
                    "sandbox_model_version",
                    "production_model_version",
                    "sandbox_workspace",
                    "production_workspace",
                ],
                "published_model_card",
                name="publish_model_card",
            ),
        ],
        tags="registration",
    )
