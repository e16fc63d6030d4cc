"""Backends named in the design that this version does not run yet (native TensorRT).

They fail loudly and early, with the reason and the alternative, instead of
pretending to work or quietly running something else.
"""

from __future__ import annotations

import importlib.util

from streamface.engine.errors import BackendError


def tensorrt_engine(model, *, device: str, name: str = "model", **options):
    """Native TensorRT (engine built from the ONNX, plan cached per model hash): not yet."""
    if importlib.util.find_spec("tensorrt") is None:
        raise BackendError(f"{name}: backend 'tensorrt' needs the tensorrt Python package and a "
                           f"CUDA GPU, and tensorrt is not installed; use backend='ort' "
                           f"(onnxruntime-gpu also offers TensorRT as an execution provider)")
    raise BackendError(f"{name}: the native TensorRT backend is not implemented in this version; "
                       f"use backend='ort' with onnxruntime-gpu (tensorrt=True selects its "
                       f"TensorRT execution provider)")

