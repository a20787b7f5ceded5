"""Exporting a small torch module to ONNX for a test, with either exporter."""
from __future__ import annotations

import warnings

import torch


def export_torch(model, shape, path, dynamo: bool = False, **kwargs) -> str:
    """Export `model` (eval mode) on one random input of `shape` (no batch axis) to `path`."""
    torch.manual_seed(0)
    model.eval()
    args = (torch.randn(1, *shape),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, args, str(path), dynamo=True, external_data=False, verbose=False, **kwargs)
        else:
            torch.onnx.export(model, args, str(path), dynamo=False, opset_version=13, **kwargs)
    return str(path)
