"""Graph rewrites that prepare shipped models: folding, dead inputs, batch-free reshapes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from streamface.engine.models import onnx_rewrite


def reference_dequantize(x, scale, zp, axis, block_size):
    node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=axis,
                            block_size=block_size)
    graph = helper.make_graph([node], "dq", [], [helper.make_tensor_value_info("y", 1, None)],
                              [numpy_helper.from_array(x, "x"), numpy_helper.from_array(scale, "s"),
                               numpy_helper.from_array(zp, "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    return ReferenceEvaluator(model).run(None, {})[0]


@pytest.mark.parametrize("shape, axis, block", [((6, 10), 1, 4), ((6, 10), 0, 4), ((5, 7), 1, 0),
                                                ((4, 3, 3), 0, 0)])
def test_dequantize_linear_matches_the_reference(shape, axis, block):
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 127, shape, dtype=np.int8)
    if block:
        blocks = list(shape)
        blocks[axis] = -(-shape[axis] // block)
        scale = rng.uniform(0.01, 0.1, blocks).astype(np.float32)
        zp = rng.integers(-3, 3, blocks, dtype=np.int8)
    else:
        scale = rng.uniform(0.01, 0.1, shape[axis]).astype(np.float32)
        zp = rng.integers(-3, 3, shape[axis], dtype=np.int8)
    ours = onnx_rewrite.dequantize_linear(x, scale, zp, axis=axis, block_size=block)
    np.testing.assert_array_equal(ours, reference_dequantize(x, scale, zp, axis, block))


def quantized_batch1_model():
    """x (1, 4) -> MatMul with a DequantizeLinear'd, Reshaped weight -> Dropout -> Reshape to
    a batch-1 constant shape; also a dead weight input, as the shipped SFace has."""
    w = np.arange(8, dtype=np.int8).reshape(8)
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0, block_size=4),
        helper.make_node("Reshape", ["wd", "wshape"], ["w"]),
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Constant", [], ["ratio"], value=numpy_helper.from_array(
            np.array([0.4], np.float32))),
        helper.make_node("Dropout", ["h", "ratio"], ["d"]),
        helper.make_node("Reshape", ["d", "oshape"], ["y"]),
    ]
    inits = [numpy_helper.from_array(w, "wq"),
             numpy_helper.from_array(np.array([0.5, 0.25], np.float32), "ws"),
             numpy_helper.from_array(np.array([0, 1], np.int8), "wz"),
             numpy_helper.from_array(np.array([4, 2], np.int64), "wshape"),
             numpy_helper.from_array(np.array([1, 2, 1], np.int64), "oshape")]
    graph = helper.make_graph(
        nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                     helper.make_tensor_value_info("dead_weight", TensorProto.FLOAT, [3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 1])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_rewrites_make_a_float_batchable_graph():
    import onnxruntime as ort

    model = quantized_batch1_model()
    x = np.arange(4, dtype=np.float32)[None]
    (expected,) = ReferenceEvaluator(model).run(None, {"x": x, "dead_weight": np.zeros((3, 3),
                                                                                        np.float32)})
    assert onnx_rewrite.fold_constants(model) == 3  # DequantizeLinear, Reshape, Constant
    assert onnx_rewrite.drop_dead_inputs(model) == ["dead_weight"]
    assert onnx_rewrite.remove_dropout(model) == 1
    assert onnx_rewrite.relax_batch_reshapes(model) == 1
    onnx_rewrite.set_symbolic_dims(model, {"x": {0: "batch"}})
    onnx_rewrite.raise_ir_version(model)
    onnx_rewrite.check(model)
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Reshape"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (single,) = session.run(None, {"x": x})
    np.testing.assert_allclose(single, expected)
    (batch,) = session.run(None, {"x": np.concatenate([x, 2 * x])})
    np.testing.assert_allclose(batch, np.concatenate([expected, 2 * expected]))


def test_initializers_used_only_in_subgraphs_are_kept():
    then = helper.make_graph([helper.make_node("Identity", ["c"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", 1, [1])])
    other = helper.make_graph([helper.make_node("Identity", ["c"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", 1, [1])])
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)], "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", 1, [1])],
        [numpy_helper.from_array(np.ones(1, np.float32), "c")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_rewrite.fold_constants(model)
    onnx_rewrite.drop_dead_inputs(model)
    assert [i.name for i in model.graph.initializer] == ["c"]
    onnx.checker.check_model(model)
