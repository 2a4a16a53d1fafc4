"""The project's pipelines, one folder each, and the parameter section each one reads."""

from mnist_mlops.config.parameters import Section


def section_models() -> dict[str, type[Section]]:
    """The model of every pipeline's parameter section, by section name.

    Listed here rather than found from the pipelines: ``kedro run --pipeline X`` loads only X.
    """
    from mnist_mlops.pipelines.batch_predict.parameters import BatchPredictParameters
    from mnist_mlops.pipelines.data_prep.parameters import DataPrepParameters
    from mnist_mlops.pipelines.deploy.parameters import DeploymentParameters
    from mnist_mlops.pipelines.monitor.parameters import MonitoringParameters
    from mnist_mlops.pipelines.registration.parameters import RegistrationParameters
    from mnist_mlops.pipelines.rollout.parameters import RolloutParameters
    from mnist_mlops.pipelines.training.parameters import TrainingParameters
    from mnist_mlops.pipelines.tune.parameters import TuningParameters

    models = (
        BatchPredictParameters,
        DataPrepParameters,
        DeploymentParameters,
        MonitoringParameters,
        RegistrationParameters,
        RolloutParameters,
        TrainingParameters,
        TuningParameters,
    )
    return {model.section: model for model in models}
