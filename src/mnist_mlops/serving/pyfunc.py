"""The servable model: the CNN run by ONNX Runtime behind an MLflow pyfunc."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import itertools
import pkgutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any
from unittest import mock

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array

from mnist_mlops.serving import preprocessing
from mnist_mlops.serving.preprocessing import InvalidInput, digit_candidates, pixels_from_array

ONNX_ARTIFACT = "onnx_model"
# The logged model's metadata key holding its fingerprint (see ``fingerprint``).
FINGERPRINT_KEY = "fingerprint"
_REQUIREMENTS = ("mlflow", "cloudpickle", "numpy", "pandas", "pillow", "scipy", "onnxruntime")
# The answer in place of a picture in which no digit was found (its digit and probabilities
# are None): the other pictures of the request are still answered.
NO_DIGIT = "no digit found"
# What ``predict`` returns, declared rather than inferred from an example (inferring it makes
# MLflow warn that an integer column cannot hold missing values): the digit and probabilities
# are missing, and ``error`` says why, for a picture without a digit.
# The ONNX Runtime session settings a loader may choose at load time, through MLflow's
# ``model_config`` (``mlflow.pyfunc.load_model(uri, model_config=...)`` or the
# ``MLFLOW_PYFUNC_INFERENCE_CONFIG`` variable): intra-op threads (0 = one per core) and whether
# they spin between calls. Logged with these defaults, ONNX Runtime's own, since MLflow passes a
# loader only the keys a model declared when it was logged.
SESSION_CONFIG: dict[str, Any] = {"onnx_intra_op_threads": 0, "onnx_allow_spinning": True}
OUTPUT_SCHEMA = Schema(
    [
        ColSpec(DataType.long, "digit", required=False),
        ColSpec(Array(DataType.double), "probabilities", required=False),
        ColSpec(DataType.string, "error", required=False),
    ]
)


def to_pixels(model_input: Any, score: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Pixels (N, 28, 28) of whatever MLflow hands the model.

    A DataFrame with an ``image`` column (``dataframe_records`` of base64 photos) is made
    MNIST-like (``score``, the model's probabilities, picks between a picture's readings; a
    picture in which no digit is found is all NaN, so that the others are still read); a
    ``pixels`` column (a table scored by Spark) holds 784 pixels per row; anything
    else (``inputs``, ``instances``, arrays) must already be 0-255 pixels.
    """
    if isinstance(model_input, pd.DataFrame):
        if "label" in model_input.columns:  # feedback, not pixels (a drop costs 0.1 ms)
            model_input = model_input.drop(columns="label")
        for column in ("image", "pixels"):
            if column in model_input.columns and model_input.empty:
                raise InvalidInput("the batch is empty")
        if "image" in model_input.columns:
            readings = [digit_candidates(image) for image in model_input["image"]]
            return _likeliest_readings(readings, score)
        if "pixels" in model_input.columns:
            return pixels_from_array(np.stack(model_input["pixels"].to_numpy()))
        return pixels_from_array(model_input.to_numpy())
    if isinstance(model_input, dict):
        if len(model_input) != 1:
            raise InvalidInput(f"expected one input tensor, got {sorted(model_input)}")
        model_input = next(iter(model_input.values()))
    return pixels_from_array(model_input)


def _likeliest_readings(
    candidates: list[np.ndarray], score: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Of each picture's candidate digits, the one the model reads most confidently (all NaN
    for a picture without candidates). Only pictures with several are scored, in one call: a
    single reading needs no choice (most pictures; the model reads it once, in ``predict``)."""
    several = [c for c in candidates if len(c) > 1]
    confidence = score(np.concatenate(several)).max(axis=1) if several else np.empty(0)
    bounds = np.cumsum([0] + [len(c) for c in several])
    best = iter(int(np.argmax(confidence[start:end])) for start, end in itertools.pairwise(bounds))
    none = np.full((28, 28), np.nan, np.float32)
    return np.stack([c[next(best)] if len(c) > 1 else c[0] if len(c) else none for c in candidates])


class MnistDigitModel(PythonModel):
    """Predicts the digit and the ten probabilities of each image, without TensorFlow."""

    # ``predict`` takes pixel arrays, dicts of them and DataFrames of photos: no one MLflow type
    # hint says that, so its input has none and MLflow is told not to validate by hint (it would
    # warn at import and at logging). Nothing changes in what it accepts: MLflow's wrapper for an
    # unhinted input passes it through as it is.
    _skip_type_hint_validation = True

    def load_context(self, context: PythonModelContext) -> None:
        self.load(
            context.artifacts[ONNX_ARTIFACT], {**SESSION_CONFIG, **(context.model_config or {})}
        )

    def load(self, onnx_path: str, config: Mapping[str, Any] = SESSION_CONFIG) -> None:
        """Open the ONNX session with the ``SESSION_CONFIG`` settings ``config`` gives."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(config["onnx_intra_op_threads"])
        if not config["onnx_allow_spinning"]:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            onnx_path, options, providers=["CPUExecutionProvider"]
        )
        self._input_name = self._session.get_inputs()[0].name

    def prepare(self, model_input: Any) -> np.ndarray:
        """Validated pixels (N, 28, 28) of a model input, by this model's own preprocessing;
        all NaN for a picture in which no digit was found.

        The scoring server calls it so that a version swapped in brings its preprocessing along.
        """
        return to_pixels(model_input, self.probabilities)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Softmax outputs (N, 10) for pixels (N, 28, 28); NaN for NaN images (no digit)."""
        found = ~np.isnan(pixels).any(axis=(1, 2))
        if found.all():
            return self._session.run(None, {self._input_name: pixels.astype(np.float32)})[0]
        probabilities = np.full((len(pixels), 10), np.nan, np.float32)
        if found.any():
            probabilities[found] = self.probabilities(pixels[found])
        return probabilities

    def predict(self, context: Any, model_input, params: dict | None = None) -> pd.DataFrame:
        """The digit and probabilities of each input; for a picture without a digit, None and
        None with the ``error`` ``NO_DIGIT`` (the column is there only when one is missing)."""
        probabilities = self.probabilities(self.prepare(model_input))
        found = ~np.isnan(probabilities).any(axis=1)
        digits = pd.Series(probabilities.argmax(axis=1).astype(np.int64))
        answers = pd.DataFrame(
            {
                "digit": digits if found.all() else digits.astype(object).where(found, None),
                "probabilities": [
                    row.astype(float).tolist() if f else None
                    for row, f in zip(probabilities, found, strict=True)
                ],
            }
        )
        if not found.all():
            answers["error"] = [None if f else NO_DIGIT for f in found]
        return answers


def _example_digit() -> np.ndarray:
    """A drawn "1": a real-looking input example that needs no dataset."""
    example = np.zeros((1, 28, 28), dtype=np.float32)
    example[0, 5:23, 13:16] = 255.0
    return example


@contextlib.contextmanager
def _grappler_on_one_cpu() -> Iterator[None]:
    """Have tf2onnx's graph optimisation (Grappler) plan for one CPU, as the ONNX model runs.

    tf2onnx calls Grappler without a cluster, so Grappler describes the local machine, probing
    CUDA even when TensorFlow is told to use CPUs only (``TF_ENABLED_DEVICE_TYPES``): an ERROR
    line on every machine without CUDA. tf2onnx 1.17 has no option to pass a cluster, hence the
    patch, for this call only. Its optimisers (constant folding, functions) do not depend on the
    devices.
    """
    from tensorflow.core.protobuf.device_properties_pb2 import DeviceProperties, NamedDevice
    from tensorflow.python.grappler import cluster, tf_optimizer

    cpu = NamedDevice(
        name="/job:localhost/replica:0/task:0/device:CPU:0", properties=DeviceProperties(type="CPU")
    )
    one_cpu = functools.partial(tf_optimizer.OptimizeGraph, cluster=cluster.Cluster(devices=[cpu]))
    with mock.patch.object(tf_optimizer, "OptimizeGraph", one_cpu):
        yield


def _served_modules() -> tuple[Any, ...]:
    """The modules pickled into the logged model by value: the code it serves with, every
    stage of the preprocessing package included."""
    stages = (
        importlib.import_module(f"{preprocessing.__name__}.{stage.name}")
        for stage in pkgutil.iter_modules(preprocessing.__path__)
    )
    return (preprocessing, *stages, sys.modules[__name__])


def served_sources() -> dict[str, bytes]:
    """The source of each module pickled into the logged model, by module name."""
    return {module.__name__: Path(module.__file__).read_bytes() for module in _served_modules()}


def fingerprint(onnx_path: str, sources: Mapping[str, bytes]) -> str:
    """SHA-256 of what is served: the ONNX model's weights and the code logged with them.

    Each initializer is hashed by its type, shape and bytes, and the digests are sorted: ONNX
    names follow TensorFlow's variable names, which the same weights loaded in another process
    may carry with other suffixes (``conv2d_1``), and the same weights must give the same
    fingerprint. The sources are hashed by module name.
    """
    import onnx
    from onnx import numpy_helper

    tensors = (numpy_helper.to_array(t) for t in onnx.load(onnx_path).graph.initializer)
    digests = sorted(
        hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()
        for a in tensors
    )
    digests += [
        f"{name}:{hashlib.sha256(source).hexdigest()}" for name, source in sorted(sources.items())
    ]
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def _export_onnx(keras_model: Any, onnx_path: str) -> None:
    """Convert the CNN to ONNX at ``onnx_path``: inputs (N, 28, 28) float32 named ``image``."""
    import tensorflow as tf
    import tf2onnx

    with _grappler_on_one_cpu():
        tf2onnx.convert.from_keras(
            keras_model,
            input_signature=(tf.TensorSpec((None, 28, 28), tf.float32, name="image"),),
            opset=17,
            output_path=onnx_path,
        )


def log_servable_model(
    keras_model: Any, *, name: str = "model", registered_model_name: str | None = None
) -> mlflow.models.model.ModelInfo:
    """Log the CNN as an ONNX-backed pyfunc in the active MLflow run.

    The model class and the preprocessing are pickled by value, so the logged model loads and
    predicts with nothing of this project installed; its requirements are pinned to this
    environment. The signature declares the outputs only: inputs are either pixel arrays or
    photos (``dataframe_records`` with an ``image`` column), which one tensor schema cannot say.
    Its metadata holds the ``fingerprint`` of what it serves (key ``FINGERPRINT_KEY``).
    """
    import cloudpickle

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = str(Path(tmp) / "mnist_cnn.onnx")
        _export_onnx(keras_model, onnx_path)
        modules = _served_modules()
        for module in modules:
            cloudpickle.register_pickle_by_value(module)
        try:
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=MnistDigitModel(),
                artifacts={ONNX_ARTIFACT: onnx_path},
                signature=mlflow.models.ModelSignature(outputs=OUTPUT_SCHEMA),
                input_example=_example_digit(),
                pip_requirements=[f"{package}=={version(package)}" for package in _REQUIREMENTS],
                registered_model_name=registered_model_name,
                model_config=SESSION_CONFIG,
                metadata={FINGERPRINT_KEY: fingerprint(onnx_path, served_sources())},
            )
        finally:
            for module in modules:
                cloudpickle.unregister_pickle_by_value(module)
