"""ONNX export of any loaded Depth Anything V2 model (vits/vitb/vitl/vitg, relative and metric).

The file takes ``image`` [B,3,H,W] float32 (ImageNet-normalised RGB, H and W multiples of 14) and gives
``depth`` [B,H,W] float32 (relative inverse depth, or metres for a metric model): the contract of
:mod:`dav2_core.engines`. Shapes are either fixed (``height``/``width``, optionally ``batch``) or dynamic
in batch, height and width; the official position-embedding resize stays exact either way (see
:mod:`dav2_core.engines.onnx_graph`). Precision ``fp32`` or ``fp16`` (fp16 weights and matrix products;
LayerNorms, the residual stream, input and output stay float32, as in our PyTorch fp16 path).

Every file is checked with ``onnx.checker`` and carries its meaning in ``metadata_props``: encoder, kind,
max_depth, units, checkpoint_sha256 (of the source checkpoint file, computed when missing), precision,
dynamic, height, width, batch, mean, std, opset, export_version. Files are written atomically; models
over 2 GB (vitg) keep their weights in ``<name>.data`` beside the ``.onnx`` file.

Needs the ``onnx`` package (``pip install comfyui-depth-anything-v2-pro[onnx]``); PyTorch does the tracing.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from ..chunks import MAX_CHUNK
from ..io import clean_stale_temps, temp_prefix
from ..preprocess import MAX_TOKENS
from ..variants import IMAGENET_MEAN, IMAGENET_STD, PATCH_SIZE, units_for

#: Default ONNX opset: LayerNormalization is native from 17, and every runtime we support reads it.
OPSET = 17
#: Bumped whenever the exported graph changes: part of every engine-cache key.
EXPORT_VERSION = "1"
INPUT_NAME, OUTPUT_NAME = "image", "depth"
EXPORT_DTYPES = ("fp32", "fp16")
_PROTOBUF_LIMIT = 1_900_000_000  # bytes of weights above which they go to an external .data file
#: Most patches (batch x patches per image) a fixed-shape export traces at once: 64 images at 518x518.
MAX_EXPORT_PATCHES = MAX_CHUNK * 37 * 37
#: Size traced for a dynamic export: non-square, batch 2, so nothing specialises to 1 or to the trained grid.
_TRACE_SHAPE = (2, 3, 5 * PATCH_SIZE, 7 * PATCH_SIZE)


class ExportError(ValueError):
    """An export that cannot be done as asked; the message says why and what to do."""


def require(module: str, extra: str) -> Any:
    """Import an optional package or raise ImportError naming the pip extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is not installed; install it with `pip install comfyui-depth-anything-v2-pro[{extra}]` "
            f"(or `pip install {module}`) ({exc})"
        ) from exc


_FILE_SHAS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str], remember: bool = False) -> str:
    """sha256 of a file's bytes; ``remember``: hash a file once per path, size and mtime in this process."""
    p = Path(path)
    stat = p.stat()
    key = (str(p.resolve()), stat.st_size, stat.st_mtime_ns)
    if remember and key in _FILE_SHAS:
        return _FILE_SHAS[key]
    digest = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    if remember:
        _FILE_SHAS[key] = digest.hexdigest()
    return digest.hexdigest()


def checkpoint_sha256(model: torch.nn.Module) -> str:
    """sha256 identifying a model's weights: its ``checkpoint_sha256`` attribute, else the checkpoint file's
    sha256 (computed, then remembered on the model), else one over the state dict (names, dtypes, bytes)."""
    known = getattr(model, "checkpoint_sha256", None)
    if known:
        return known
    info = getattr(model, "checkpoint_info", None)
    path = getattr(info, "path", None)
    if path is not None and Path(path).is_file():
        sha = file_sha256(path, remember=True)
    else:
        digest = hashlib.sha256()
        for name, tensor in model.state_dict().items():
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        sha = digest.hexdigest()
    try:
        model.checkpoint_sha256 = sha
    except AttributeError:
        pass
    return sha


def model_metadata(model: torch.nn.Module) -> dict[str, str]:
    """What a file records about its source model: encoder, kind, max_depth, units, checkpoint_sha256."""
    info = getattr(model, "checkpoint_info", None)
    kind = info.kind if info is not None else ("metric" if model.max_depth is not None else "relative")
    max_depth = info.max_depth if info is not None else model.max_depth
    return {
        "encoder": model.encoder,
        "kind": kind,
        "max_depth": "" if max_depth is None else repr(float(max_depth)),
        "units": units_for(kind),
        "checkpoint_sha256": checkpoint_sha256(model),
    }


def max_opset() -> int:
    """Newest opset the TorchScript exporter of this torch writes."""
    from torch.onnx import _constants

    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", OPSET))


def _check_shape(height: int | None, width: int | None, batch: int | None, dynamic: bool) -> None:
    if dynamic:
        if height is not None or width is not None or batch is not None:
            raise ExportError("a dynamic export takes any batch, height and width; do not also give height/width/batch")
        return
    if height is None or width is None:
        raise ExportError("a fixed-shape export needs height and width (multiples of 14), or dynamic=True")
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < PATCH_SIZE or value % PATCH_SIZE:
            raise ExportError(f"{name} must be a multiple of {PATCH_SIZE} pixels (e.g. 518), got {value!r}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ExportError(f"batch must be a whole number >= 1 (or None for a dynamic batch), got {batch!r}")
    patches = (height // PATCH_SIZE) * (width // PATCH_SIZE)
    if patches > MAX_TOKENS:
        side = math.isqrt(MAX_TOKENS) * PATCH_SIZE
        raise ExportError(
            f"{height}x{width} is {patches} patches of {PATCH_SIZE} px; the limit is {MAX_TOKENS} (the largest "
            f"network the depth path runs, e.g. {side}x{side}), as attention memory grows with its square. "
            "Choose a smaller height and width"
        )
    if batch is not None and (batch > MAX_CHUNK or batch * patches > MAX_EXPORT_PATCHES):
        largest = max(1, min(MAX_CHUNK, MAX_EXPORT_PATCHES // patches))
        raise ExportError(
            f"a fixed batch of {batch} at {height}x{width} is too big to trace (the export runs the network once "
            f"at that shape); the largest here is {largest}. Leave out --batch for a file that takes any batch"
        )


def _trace(
    model: torch.nn.Module, target: Path, dtype: str, dynamic: bool, shape: tuple[int, int, int, int], opset: int
) -> None:
    """torch.onnx (TorchScript tracer) -> ``target``; the model is traced on the CPU."""
    from .onnx_graph import ExportModule

    want = torch.float16 if dtype == "fp16" else torch.float32
    weight = model.pretrained.patch_embed.proj.weight
    net = model  # traced as is when already on the CPU in the export dtype (vitg: no second 5 GB copy)
    if weight.device.type != "cpu" or weight.dtype != want or model.training:
        net = copy.deepcopy(model).to(device="cpu", dtype=want).eval()
    grid = None if dynamic else (shape[2] // PATCH_SIZE, shape[3] // PATCH_SIZE)
    module = ExportModule(net, grid)
    axes = None
    if dynamic or shape[0] == -1:
        axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
        if dynamic:
            axes[INPUT_NAME].update({2: "height", 3: "width"})
            axes[OUTPUT_NAME].update({1: "height", 2: "width"})
    example = torch.randn((shape[0] if shape[0] > 0 else 2, *shape[1:]), generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer / deprecation chatter; the result is verified by the checker
        torch.onnx.export(
            module,
            (example,),
            str(target),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes=axes,
            do_constant_folding=True,
        )


def export_onnx(
    model: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    height: int | None = None,
    width: int | None = None,
    batch: int | None = None,
    dynamic: bool = False,
    dtype: str = "fp32",
    opset: int = OPSET,
) -> Path:
    """Export ``model`` (a loaded ``DepthAnythingV2``) to the ONNX file ``path``; returns the path.

    Fixed shape: ``height`` x ``width`` (x14 px) with ``batch`` images (None: any batch). ``dynamic=True``:
    any batch, height and width (x14). ``dtype``: 'fp32' or 'fp16'. Raises ExportError on bad arguments.
    """
    if getattr(model, "is_video", False):
        raise ExportError(
            "Video Depth Anything has no ONNX export (its temporal head runs whole windows of frames); "
            "run it with the torch backend, or export a Depth Anything V2 variant"
        )
    onnx = require("onnx", "onnx")
    if dtype not in EXPORT_DTYPES:
        raise ExportError(f"unknown export precision {dtype!r}; choose fp32 or fp16")
    _check_shape(height, width, batch, dynamic)
    newest = max_opset()
    if isinstance(opset, bool) or not isinstance(opset, int) or not OPSET <= opset <= newest:
        raise ExportError(
            f"opset {opset!r} cannot be written here: the exporter needs {OPSET} or newer, and "
            f"torch {torch.__version__} writes at most {newest}"
        )
    target = Path(path).expanduser()
    if target.suffix != ".onnx":
        raise ExportError(f"{target}: give the output file an .onnx extension")
    target.parent.mkdir(parents=True, exist_ok=True)
    shape = _TRACE_SHAPE if dynamic else (batch or -1, 3, height, width)
    metadata = {
        **model_metadata(model),
        "precision": dtype,
        "dynamic": str(bool(dynamic)).lower(),
        "height": "" if dynamic else str(height),
        "width": "" if dynamic else str(width),
        "batch": "" if dynamic or batch is None else str(batch),
        "input": f"{INPUT_NAME} [B,3,H,W] float32 RGB, (x/255 - mean)/std, H and W multiples of {PATCH_SIZE}",
        "output": f"{OUTPUT_NAME} [B,H,W] float32",
        "mean": ",".join(map(str, IMAGENET_MEAN)),
        "std": ",".join(map(str, IMAGENET_STD)),
        "opset": str(opset),
        "export_version": EXPORT_VERSION,
        "producer": "dav2_core",
    }
    clean_stale_temps(target.parent, legacy=(".dav2-export-",))  # what killed exports left here
    with tempfile.TemporaryDirectory(prefix=temp_prefix(".dav2-export-"), dir=target.parent) as tmp:
        traced = Path(tmp) / "traced.onnx"
        _trace(model, traced, dtype, dynamic, shape, opset)
        proto = onnx.load(str(traced))
        del proto.metadata_props[:]
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=value)
        large = sum(t.raw_data.__len__() for t in proto.graph.initializer) > _PROTOBUF_LIMIT
        staged = Path(tmp) / target.name
        data_name = target.name + ".data"
        onnx.save_model(
            proto,
            str(staged),
            save_as_external_data=large,
            all_tensors_to_one_file=True,
            location=data_name if large else None,
        )
        onnx.checker.check_model(str(staged), full_check=False)
        if large:
            os.replace(Path(tmp) / data_name, target.parent / data_name)
        os.replace(staged, target)
    return target


def load_proto(path: str | os.PathLike[str]) -> Any:
    """An ONNX file's ModelProto without its external weights; ValueError naming the file when it is missing,
    truncated or not ONNX at all (protobuf's own error is no message for a user)."""
    onnx = require("onnx", "onnx")
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such ONNX file") from None
    except (DecodeError, OSError, ValueError, RuntimeError) as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{path}: not a readable ONNX file, it is truncated or corrupted ({detail}); export it again with "
            "`dav2 export` (or copy it again)"
        ) from None


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (without loading its weights); ValueError for a broken file."""
    return {p.key: p.value for p in load_proto(path).metadata_props}


def opset_of(path: str | os.PathLike[str]) -> int:
    """The default-domain ONNX opset a file was written with."""
    proto = load_proto(path)
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
