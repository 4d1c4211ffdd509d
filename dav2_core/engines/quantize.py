"""int8 files for the CPU engines (approximate, opt-in): which MatMuls are quantised and how, in one place.

Only the transformer's linear layers are quantised: the MatMuls whose second operand is a 2-D weight
(:func:`weight_matmuls`). Attention products, the position-embedding interpolation and the DPT head's
convolutions stay float32 (int8 convolutions were slower than float ones on the CPUs measured). Two forms,
one per runtime, because each runtime is fast only with its own:

* ONNX Runtime (:func:`ort_dynamic_int8`): ``quantize_dynamic`` - int8 weights per output channel,
  activations quantised per call (``DynamicQuantizeMatMul`` kernels).
* OpenVINO (:func:`int8_weights`): int8 weights per output channel (symmetric) behind ``DequantizeLinear``;
  OpenVINO keeps them compressed and its CPU plugin quantises the activations per group of
  :data:`OPENVINO_GROUP_SIZE` values on the fly, so the linear layers run as int8 dot products.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .export import require

#: OpenVINO CPU ``DYNAMIC_QUANTIZATION_GROUP_SIZE`` for the int8 file (0 would run the layers in float).
OPENVINO_GROUP_SIZE = 32


def linear_matmuls(graph: Any) -> list[Any]:
    """The MatMul nodes of an ONNX ``graph`` multiplying by a 2-D weight (the transformer's linear layers):
    the ones worth quantising (not attention products, not the position-embedding interpolation)."""
    weights = {t.name for t in graph.initializer if len(t.dims) == 2}
    return [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def weight_matmuls(path: Path) -> list[str]:
    """Names of the :func:`linear_matmuls` of the ONNX file ``path``."""
    onnx = require("onnx", "onnx")
    return [n.name for n in linear_matmuls(onnx.load(str(path), load_external_data=False).graph)]


def ort_dynamic_int8(source: Path, target: Path) -> None:
    """``target``: ``source`` with its weight MatMuls dynamically quantised for ONNX Runtime."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        nodes_to_quantize=weight_matmuls(source),
        per_channel=True,
    )


def int8_weights(source: Path, target: Path) -> None:
    """``target``: ``source`` with each weight MatMul's [K,N] weight stored as int8 (symmetric, one scale per
    output column: scale = max|w| / 127) and restored by a ``DequantizeLinear`` (axis 1) in the graph."""
    onnx = require("onnx", "onnx")
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    quantised = {n.input[1] for n in linear_matmuls(graph)}
    dequantise = []
    for name in sorted(quantised):
        weight = numpy_helper.to_array(weights[name]).astype(np.float32)
        scale = (np.maximum(np.abs(weight).max(axis=0), np.float32(1e-12)) / 127).astype(np.float32)
        values = np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)
        graph.initializer.remove(weights[name])
        graph.initializer.extend(
            [
                numpy_helper.from_array(values, f"{name}_int8"),
                numpy_helper.from_array(scale, f"{name}_scale"),
                numpy_helper.from_array(np.zeros_like(values[0]), f"{name}_zero"),
            ]
        )
        dequantise.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{name}_int8", f"{name}_scale", f"{name}_zero"],
                [name],
                name=f"{name}_dequantize",
                axis=1,
            )
        )
    nodes = dequantise + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
