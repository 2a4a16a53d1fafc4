"""The batch_predict pipeline: image table, then predictions of the production model."""

from kedro.pipeline import Pipeline, node, pipeline

from mnist_mlops.pipelines.batch_predict.nodes import images_to_table, score_images


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
        ],
        tags="batch_predict",
    )
