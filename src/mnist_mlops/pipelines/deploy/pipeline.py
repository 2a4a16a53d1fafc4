"""The deploy pipeline: validate, describe, stage, infra-validate and promote a pushed model."""

from kedro.pipeline import Pipeline, node, pipeline

from mnist_mlops.pipelines.deploy.nodes import (
    infra_validate,
    promote,
    select_pushed_version,
    select_version,
    stage_version,
    validate_version,
)


def create_pipeline(after_push: bool = False, **kwargs) -> Pipeline:
    """The deploy pipeline; ``after_push`` deploys the version the registration pipeline pushed
    (the whole flow), otherwise the newest pushed version not yet deployed."""
    select = (
        node(
            select_pushed_version,
            ["production_model_version", "production_workspace", "params:deployment"],
            "deploy_candidate",
            name="select_version",
        )
        if after_push
        else node(
            select_version,
            ["production_workspace", "params:deployment"],
            "deploy_candidate",
            name="select_version",
        )
    )
    return pipeline(
        [
            select,
            node(
                validate_version,
                [
                    "deploy_candidate",
                    "mnist_test_images",
                    "mnist_test_labels",
                    "report_pictures",
                    "production_workspace",
                    "params:deployment",
                ],
                "validated_version",
                name="validate_version",
            ),
            node(
                stage_version,
                ["validated_version", "production_workspace", "params:deployment"],
                "staged_version",
                name="stage_version",
            ),
            node(
                infra_validate,
                [
                    "staged_version",
                    "mnist_test_images",
                    "tuning_pictures",
                    "production_workspace",
                    "params:deployment",
                ],
                "infra_validated_version",
                name="infra_validate",
            ),
            node(
                promote,
                ["infra_validated_version", "production_workspace", "params:deployment"],
                "deployment_report",
                name="promote",
            ),
        ],
        tags="deploy",
    )
