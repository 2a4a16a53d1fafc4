"""The rollout pipeline: the canary's live evidence in, promote / roll back / wait out."""

from kedro.pipeline import Pipeline, node, pipeline

from mnist_mlops.pipelines.rollout.nodes import (
    apply_decision,
    decide_rollout,
    gather_evidence,
    read_state,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                read_state,
                ["production_workspace", "params:rollout"],
                "rollout_state",
                name="read_rollout_state",
            ),
            node(
                gather_evidence,
                ["serving_request_log", "rollout_state"],
                "rollout_evidence",
                name="gather_rollout_evidence",
            ),
            node(
                decide_rollout,
                ["rollout_evidence", "params:rollout"],
                "rollout_decision",
                name="decide_rollout",
            ),
            node(
                apply_decision,
                ["rollout_decision", "rollout_state", "rollout_evidence", "production_workspace"],
                ["rollout_metrics", "rollout_report"],
                name="apply_rollout_decision",
            ),
        ],
        tags="rollout",
    )
