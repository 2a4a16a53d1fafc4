"""The monitor pipeline: request log and training data in, drift report and retrain flag out."""

from kedro.pipeline import Pipeline, node, pipeline

from mnist_mlops.pipelines.monitor.nodes import (
    assess_drift,
    describe_training_images,
    plot_monitoring,
    recent_rows,
)
from mnist_mlops.pipelines.monitor.rollback import guard_promotion


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                recent_rows,
                ["serving_request_log", "params:monitoring"],
                "recent_requests",
                name="recent_rows",
            ),
            node(
                describe_training_images,
                ["mnist_train_images", "mnist_train_labels", "params:monitoring"],
                "training_reference",
                name="describe_training_images",
            ),
            node(
                assess_drift,
                ["recent_requests", "training_reference", "params:monitoring"],
                ["monitoring_metrics", "drift_report"],
                name="assess_drift",
            ),
            node(
                guard_promotion,
                [
                    "serving_request_log",
                    "drift_report",
                    "production_workspace",
                    "params:monitoring",
                ],
                "monitoring_report",
                name="guard_promotion",
            ),
            node(
                plot_monitoring,
                ["recent_requests", "training_reference"],
                "monitoring_chart",
                name="plot_monitoring",
            ),
        ],
        tags="monitor",
    )
