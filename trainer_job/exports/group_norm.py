"""GroupNorm rewritten for onnx2tf: the same arithmetic on 4-D tensors only.

PyTorch exports GroupNorm as Reshape (N, G, -1) -> InstanceNormalization -> Reshape back. onnx2tf,
which moves the whole graph to NHWC, loses the channel axis across those reshapes (the detector's
head then fails to convert: "Dimensions must be equal, but are 4 and 64"). Here each such triple
becomes: per-channel spatial means, averaged over each group by a fixed 1x1 convolution (its
weights 1 / channels-per-group inside the group's block, 0 elsewhere), subtracted; the variance
likewise; divided by its square root plus epsilon; the InstanceNormalization's per-group scale
and bias applied per channel. Graphs without the pattern (the classifiers) come back unchanged.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    found = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def _channels(model: onnx.ModelProto) -> dict[str, int]:
    """The channel count (axis 1) of every 4-D tensor whose shape inference knows it."""
    inferred = onnx.shape_inference.infer_shapes(model)
    channels = {}
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    for value in values:
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            channels[value.name] = int(dims[1].dim_value)
    return channels


def _group_norm(
    prefix: str, x: str, y: str, channels: int, scale: np.ndarray, bias: np.ndarray, eps: float
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes computing y = GroupNorm(x) with len(scale) groups, and their initializers."""
    groups = len(scale)
    per_group = channels // groups
    block = np.kron(np.eye(groups), np.ones((per_group, per_group))) / per_group
    weights = block.astype(np.float32).reshape(channels, channels, 1, 1)
    per_channel = np.repeat(np.arange(groups), per_group)

    def name(part: str) -> str:
        return f"{prefix}/group_norm/{part}"

    initializers = [
        numpy_helper.from_array(weights, name("average")),
        numpy_helper.from_array(np.asarray(eps, np.float32), name("eps")),
        numpy_helper.from_array(
            scale[per_channel].astype(np.float32).reshape(channels, 1, 1), name("scale")
        ),
        numpy_helper.from_array(
            bias[per_channel].astype(np.float32).reshape(channels, 1, 1), name("bias")
        ),
    ]
    nodes = [
        helper.make_node("ReduceMean", [x], [name("mean")], axes=[2, 3], keepdims=1),
        helper.make_node("Conv", [name("mean"), name("average")], [name("group_mean")]),
        helper.make_node("Sub", [x, name("group_mean")], [name("centred")]),
        helper.make_node("Mul", [name("centred"), name("centred")], [name("squares")]),
        helper.make_node(
            "ReduceMean", [name("squares")], [name("variance")], axes=[2, 3], keepdims=1
        ),
        helper.make_node("Conv", [name("variance"), name("average")], [name("group_variance")]),
        helper.make_node("Add", [name("group_variance"), name("eps")], [name("shifted")]),
        helper.make_node("Sqrt", [name("shifted")], [name("deviation")]),
        helper.make_node("Div", [name("centred"), name("deviation")], [name("normalised")]),
        helper.make_node("Mul", [name("normalised"), name("scale")], [name("scaled")]),
        helper.make_node("Add", [name("scaled"), name("bias")], [y]),
    ]
    return nodes, initializers


def rewrite(model_bytes: bytes) -> bytes:
    """The model with every Reshape -> InstanceNormalization -> Reshape written in 4-D ops."""
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    constants, channels = _constants(graph), _channels(model)
    producer = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    replaced: dict[int, list[onnx.NodeProto]] = {}  # id of a Reshape back -> its new nodes
    dropped: set[int] = set()
    for norm in [n for n in graph.node if n.op_type == "InstanceNormalization"]:
        before = producer.get(norm.input[0])
        after = consumers.get(norm.output[0], [])
        if before is None or before.op_type != "Reshape" or len(after) != 1:
            continue
        back, x = after[0], before.input[0]
        if back.op_type != "Reshape" or x not in channels:
            continue
        if len(consumers.get(before.output[0], [])) != 1:
            continue
        eps = next((a.f for a in norm.attribute if a.name == "epsilon"), 1e-5)
        nodes, initializers = _group_norm(
            norm.name or norm.output[0],
            x,
            back.output[0],
            channels[x],
            constants[norm.input[1]],
            constants[norm.input[2]],
            eps,
        )
        replaced[id(back)] = nodes
        dropped |= {id(before), id(norm)}
        graph.initializer.extend(initializers)
    if not replaced:
        return model_bytes
    kept = []
    for node in graph.node:
        if id(node) in replaced:
            kept.extend(replaced[id(node)])
        elif id(node) not in dropped:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
