"""The data_prep pipeline: raw IDX files to a validated, split model input and a data report."""

from kedro.pipeline import Pipeline, node, pipeline

from mnist_mlops.pipelines.data_prep.nodes import (
    build_data_report,
    split_train_validation,
    validate_mnist,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                validate_mnist,
                inputs=[
                    "mnist_train_images",
                    "mnist_train_labels",
                    "mnist_test_images",
                    "mnist_test_labels",
                ],
                outputs="mnist_validated",
                name="validate_mnist",
            ),
            node(
                split_train_validation,
                inputs=["mnist_validated", "params:data_prep"],
                outputs="model_input",
                name="split_train_validation",
            ),
            node(
                build_data_report,
                inputs="model_input",
                outputs="data_report",
                name="build_data_report",
            ),
        ],
        tags="data_prep",
    )
