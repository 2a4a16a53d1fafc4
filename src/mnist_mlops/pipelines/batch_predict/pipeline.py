"""The batch_predict pipeline: image table, predictions of the production model, their summary."""

from kedro.pipeline import Pipeline, node, pipeline

from mnist_mlops.pipelines.batch_predict.nodes import (
    images_to_table,
    score_images,
    summarise_predictions,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(images_to_table, "scoring_images", "image_table@pandas", name="images_to_table"),
            node(
                score_images,
                ["image_table@spark", "production_workspace", "params:batch_predict"],
                "batch_predictions",
                name="score_images",
                tags=["spark"],
            ),
            # Reads the saved predictions back: the run summary's batch paragraph.
            node(
                summarise_predictions,
                "batch_predictions",
                "batch_summary",
                name="summarise_predictions",
                tags=["spark"],
            ),
        ],
        tags="batch_predict",
    )
