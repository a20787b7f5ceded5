"""cnn2gate: ONNX CNN -> per-layer fixed point -> Intel FPGA OpenCL project."""
__version__ = "0.1.0"
