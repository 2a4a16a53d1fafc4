"""The servable model: MNIST-style preprocessing and an ONNX Runtime pyfunc."""
