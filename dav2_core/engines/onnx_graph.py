"""The network as an ONNX-traceable module, with the official position-embedding resize kept exact.

DINOv2 resizes its 37x37 position grid by bicubic interpolation with
``scale_factor = ((gh + 0.1) / 37, (gw + 0.1) / 37)`` (see ``DinoVisionTransformer.position_embedding``).
The tracer cannot keep that dynamic (the scale is a Python float), and runtimes disagree on the ONNX
``Resize`` op's cubic coordinate mapping (OpenVINO's CPU plugin is ~2e-3 of the depth range off for
upscales). So:

* a fixed-shape export bakes the embedding PyTorch computes for that one grid (exact by construction);
* a dynamic export computes it in the graph from the input's shape as two interpolation matrices
  (``W_h [gh,37]`` and ``W_w [gw,37]``, built from PyTorch's own cubic-convolution formula, A = -0.75,
  half-pixel source coordinates from the scale factor, clamped border taps) and two MatMuls:
  ``pos = W_h @ grid @ W_w^T``. Only elementwise ops, Range and MatMul: every runtime computes it the same
  way. The trained 37x37 grid is used unchanged (scale 1 gives the identity matrix), as officially.
"""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator

import torch
from torch import nn

from ..variants import PATCH_SIZE, POS_EMBED_GRID


def _const(g, values, dtype=torch.float32):  # noqa: ANN001 - torch.onnx graph context
    return g.op("Constant", value_t=torch.tensor(values, dtype=dtype))


def _cubic_matrix(g, grid, inverse_scale):  # noqa: ANN001
    """ONNX ops: [grid, 37] matrix of PyTorch's bicubic weights (align_corners=False) for one axis."""
    size = POS_EMBED_GRID
    dst = g.op("Cast", g.op("Range", _const(g, 0, torch.int64), grid, _const(g, 1, torch.int64)), to_i=1)
    src = g.op("Sub", g.op("Mul", g.op("Add", dst, _const(g, 0.5)), inverse_scale), _const(g, 0.5))
    floor = g.op("Floor", src)
    t = g.op("Sub", src, floor)
    a = -0.75

    def near(x):  # |x| <= 1: ((A + 2) x - (A + 3)) x^2 + 1
        inner = g.op("Sub", g.op("Mul", _const(g, a + 2), x), _const(g, a + 3))
        return g.op("Add", g.op("Mul", g.op("Mul", inner, x), x), _const(g, 1.0))

    def far(x):  # 1 < |x| < 2: ((A x - 5A) x + 8A) x - 4A
        inner = g.op(
            "Add", g.op("Mul", g.op("Sub", g.op("Mul", _const(g, a), x), _const(g, 5 * a)), x), _const(g, 8 * a)
        )
        return g.op("Sub", g.op("Mul", inner, x), _const(g, 4 * a))

    one, two = _const(g, 1.0), _const(g, 2.0)
    weights = (far(g.op("Add", t, one)), near(t), near(g.op("Sub", one, t)), far(g.op("Sub", two, t)))
    columns = g.op(
        "Unsqueeze",
        g.op(
            "Cast",
            g.op("Range", _const(g, 0, torch.int64), _const(g, size, torch.int64), _const(g, 1, torch.int64)),
            to_i=1,
        ),
        _const(g, [0], torch.int64),
    )
    matrix = None
    for tap, weight in zip((-1.0, 0.0, 1.0, 2.0), weights):
        index = g.op("Clip", g.op("Add", floor, _const(g, tap)), _const(g, 0.0), _const(g, float(size - 1)))
        hit = g.op("Cast", g.op("Equal", g.op("Unsqueeze", index, _const(g, [1], torch.int64)), columns), to_i=1)
        term = g.op("Mul", hit, g.op("Unsqueeze", weight, _const(g, [1], torch.int64)))
        matrix = term if matrix is None else g.op("Add", matrix, term)
    return matrix


class _ResizedPositions(torch.autograd.Function):
    """(patch grid [1,C,37,37], image [B,3,H,W], PyTorch's result [1,C,H/14,W/14]) -> that result when run;
    exported, the result is recomputed in the graph from the grid and the image's shape."""

    @staticmethod
    def forward(ctx, patch_pos: torch.Tensor, image: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return exact.clone()

    @staticmethod
    def symbolic(g, patch_pos, image, exact):  # noqa: ANN001, ANN205
        shape = g.op("Shape", image)
        grid = g.op(
            "Div",
            g.op("Slice", shape, _const(g, [2], torch.int64), _const(g, [4], torch.int64)),
            _const(g, [PATCH_SIZE], torch.int64),
        )
        trained = g.op("Equal", grid, _const(g, [POS_EMBED_GRID, POS_EMBED_GRID], torch.int64))
        both = g.op("Cast", g.op("ReduceMin", g.op("Cast", trained, to_i=7), keepdims_i=1), to_i=9)
        inverse = g.op(
            "Div",
            _const(g, [float(POS_EMBED_GRID)] * 2),
            g.op("Add", g.op("Cast", grid, to_i=1), _const(g, [0.1, 0.1])),
        )
        inverse = g.op("Where", both, _const(g, [1.0, 1.0]), inverse)  # the trained grid is used as is
        rows = []
        for axis in (0, 1):
            pick = _const(g, [axis], torch.int64)
            count = g.op("Squeeze", g.op("Gather", grid, pick, axis_i=0), _const(g, [0], torch.int64))
            rows.append(_cubic_matrix(g, count, g.op("Gather", inverse, pick, axis_i=0)))
        height_matrix, width_matrix = rows
        resized = g.op("MatMul", height_matrix, patch_pos)  # [1,C,gh,37]
        return g.op("MatMul", resized, g.op("Transpose", width_matrix, perm_i=[1, 0]))  # [1,C,gh,gw]


@contextmanager
def _positions(model: nn.Module, image: torch.Tensor, baked: torch.Tensor | None) -> Iterator[None]:
    """Within the block, ``model``'s position embedding is ``baked``, or (None) the exportable dynamic one."""
    vit = model.pretrained
    reference = vit.position_embedding

    def positions(grid_h: int, grid_w: int) -> torch.Tensor:
        if baked is not None:
            return baked
        pos = vit.pos_embed.float()
        side = POS_EMBED_GRID
        grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        gh, gw = int(grid_h), int(grid_w)  # the traced shape: PyTorch's result only runs the trace
        exact = reference(gh, gw)[:, 1:].transpose(1, 2).reshape(1, -1, gh, gw)
        patch = _ResizedPositions.apply(grid, image, exact)
        return torch.cat((pos[:, :1], patch.flatten(2).transpose(1, 2)), dim=1)

    vit.position_embedding = positions
    try:
        yield
    finally:
        del vit.position_embedding  # the class method is back


class ExportModule(nn.Module):
    """``image`` [B,3,H,W] float32 (ImageNet-normalised, x14) -> ``depth`` [B,H,W] float32, ready to trace.

    ``grid`` = (gh, gw) for a fixed-shape export: the position embedding PyTorch computes for it is baked
    in as a constant; None: computed in the graph for any input shape.
    """

    def __init__(self, model: nn.Module, grid: tuple[int, int] | None) -> None:
        super().__init__()
        self.model = model
        baked = None
        if grid is not None:
            with torch.no_grad():
                baked = model.pretrained.position_embedding(*grid).detach().clone()
        self.register_buffer("baked_positions", baked, persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        with _positions(self.model, image, self.baked_positions):
            return self.model(image).float()
