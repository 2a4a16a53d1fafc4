"""mnist-mlops: MNIST CNN trained with Spark four ways, tracked, registered, promoted and served."""

import os

# Keras 3 breaks MultiWorkerMirroredStrategy (keras-team/keras#20585, tensorflow#72388), so every
# process of this project, the driver and each Spark worker that unpickles a training function,
# uses tf_keras. It must be set before TensorFlow is first imported, hence here.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Every model the project logs pins its own requirements (the served pyfunc: ONNX Runtime, NumPy,
# Pillow, SciPy). MLflow 3 would also copy the project's whole uv.lock and pyproject.toml (500 KB,
# TensorFlow and Spark included) into each model, found from the working directory.
os.environ.setdefault("MLFLOW_UV_AUTO_DETECT", "false")

from mnist_mlops.runtime import quiet_log  # after the TensorFlow settings above

quiet_log.install()

__version__ = "0.1.0"
