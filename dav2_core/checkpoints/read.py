"""Read checkpoint files: find the file, recognise its container from its bytes, load tensors and metadata.

Nothing in a checkpoint is ever executed: pickles go through ``torch.load(weights_only=True)``.
:class:`CheckpointFile` resolves a path (an HF model folder -> its weights file) and sniffs the container
once; the loader passes it along so a load never re-reads the header or re-resolves the path.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import pickletools
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError, safe_open

from ..variants import VARIANTS, Variant

Container = Literal["zip", "pickle", "safetensors"]

#: Metadata keys our own safetensors files carry (all values are strings, as safetensors requires).
META_ENCODER, META_KIND, META_MAX_DEPTH, META_DATASET = "dav2.encoder", "dav2.kind", "dav2.max_depth", "dav2.dataset"
#: Extensions a checkpoint file is saved under; only such files (or known names) get "download it again".
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
OFFICIAL_HUB = "https://huggingface.co/depth-anything"
#: Wrapper keys training scripts put around a state dict.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = 0x80  # PROTO opcode that starts every pickle of protocol >= 2 (legacy torch.save too)
#: Globals a tensors-only pickle may name when torch's own table is not importable (see :func:`_allowed_globals`).
_TENSOR_GLOBALS = ("collections.OrderedDict", "_codecs.encode", "torch._utils.", "torch.")
#: Most bytes of a pickle read to classify a refusal (real checkpoints' pickles are a few hundred KB).
_MAX_PICKLE_SCAN = 64 << 20


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file, the cause and what to do."""


def location(path: Path | None) -> str:
    """How messages name a checkpoint: its path, or "state dict" for an in-memory one."""
    return str(path) if path is not None else "state dict"


@functools.lru_cache(maxsize=1)
def known_file_names() -> dict[str, Variant]:
    """Every file name a published variant is known under (official .pth, kijai's safetensors) -> Variant.

    Cached: do not modify the returned dict."""
    from ..hub import local_filenames  # lazy: huggingface_hub is only needed for downloads

    return {name: v for v in VARIANTS.values() for name in local_filenames(v)}


def _download_hint(path: Path) -> str:
    """Where a good copy of this file can be had (the file name only picks the link; it never decides the model)."""
    variant = known_file_names().get(path.name)
    if variant is not None and variant.hf_repo:
        return f"https://huggingface.co/{variant.hf_repo}"
    return f"{OFFICIAL_HUB} (or wherever it came from)"


def looks_like_checkpoint(path: Path) -> bool:
    """True for a known checkpoint name or a checkpoint extension: only then is re-downloading sound advice."""
    return path.suffix.lower() in CHECKPOINT_SUFFIXES or path.name in known_file_names()


def corrupted(path: Path, detail: str) -> CheckpointError:
    """A file that is (or was meant to be) a checkpoint but cannot be read."""
    if not looks_like_checkpoint(path):
        return CheckpointError(
            f"{path}: not a checkpoint ({detail}). Pass a Depth Anything V2 checkpoint file "
            f"(.pth or .safetensors; official files: {OFFICIAL_HUB})."
        )
    return CheckpointError(
        f"{path}: the checkpoint is truncated or corrupted ({detail}). "
        f"Delete it and download it again from {_download_hint(path)}."
    )


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


@dataclass(frozen=True)
class CheckpointFile:
    """A checkpoint file found on disk and its container, recognised from its first bytes (not its extension)."""

    path: Path
    container: Container

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> CheckpointFile:
        """Resolve ``path`` (an HF model folder means its model.safetensors / pytorch_model.bin) and sniff it."""
        p = Path(path).expanduser()
        if p.is_dir():
            for name in ("model.safetensors", "pytorch_model.bin"):
                if (p / name).is_file():
                    p = p / name
                    break
            else:
                raise CheckpointError(
                    f"{p}: is a folder without model.safetensors or pytorch_model.bin; pass the checkpoint file itself."
                )
        if not p.is_file():
            raise CheckpointError(
                f"{p}: no such checkpoint file. Check the path, or download the file (official files: {OFFICIAL_HUB})."
            )
        return cls(p, _sniff(p))


def _sniff(path: Path) -> Container:
    size = path.stat().st_size
    if size == 0:
        if not looks_like_checkpoint(path):
            raise CheckpointError(
                f"{path}: the file is empty (0 bytes), not a checkpoint. Pass a Depth Anything V2 checkpoint file."
            )
        raise CheckpointError(
            f"{path}: the file is empty (0 bytes), so a download or copy was interrupted. "
            f"Delete it and download it again from {_download_hint(path)}."
        )
    with path.open("rb") as f:
        head = f.read(9)
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head[0] == _PICKLE_MAGIC:
        return "pickle"
    if len(head) == 9 and head[8:9] == b"{":
        if struct.unpack("<Q", head[:8])[0] + 8 <= size:
            return "safetensors"
        raise corrupted(path, "the safetensors header runs past the end of the file")
    raise corrupted(path, "unknown format: its bytes are neither a PyTorch checkpoint nor a safetensors file")


def _allowed_globals() -> set[str] | None:
    """The ``module.name`` globals torch's weights-only unpickler accepts (None if torch hides its table)."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return set(_get_allowed_globals()) | {
            f"{g.__module__}.{g.__name__}" for g in torch.serialization.get_safe_globals() if hasattr(g, "__name__")
        }
    except (ImportError, AttributeError, TypeError):
        return None


def _pickle_streams(file: CheckpointFile) -> list[bytes]:
    """The raw pickle(s) of a checkpoint, never unpickled: the zip format's ``data.pkl``, or the legacy file."""
    if file.container == "zip":
        with zipfile.ZipFile(file.path) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            return [archive.open(names[0]).read(_MAX_PICKLE_SCAN)] if names else []
    with file.path.open("rb") as f:
        return [f.read(_MAX_PICKLE_SCAN)]


def code_globals(file: CheckpointFile) -> list[str]:
    """The functions and classes the file's pickle imports that a tensors-only load does not allow.

    Read by walking the pickle's opcodes with :mod:`pickletools` (nothing is imported or executed):
    ``GLOBAL`` / ``INST`` name them inline, ``STACK_GLOBAL`` takes the two strings pushed before it
    (directly or from the memo). Non-empty means the file wants to run code when loaded; an empty list
    for a file torch refused means it is broken, not hostile. Stops at the first undecodable byte.
    """
    allowed = _allowed_globals()

    def is_allowed(name: str) -> bool:
        if allowed is not None:
            return name in allowed
        return any(name == g or (g.endswith(".") and name.startswith(g)) for g in _TENSOR_GLOBALS)

    found: list[str] = []
    try:
        streams = _pickle_streams(file)
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError):
        return found
    for data in streams:
        position = 0
        for _ in range(4):  # the legacy format is up to four pickles in a row (magic, version, info, data)
            memo: dict[int, object] = {}
            pushed: list[object] = [None, None]
            stop = None
            try:
                for op, arg, offset in pickletools.genops(data[position:]):
                    name, stop = op.name, offset
                    if name in ("GLOBAL", "INST"):
                        module, _, attr = str(arg).partition(" ")
                        found.append(f"{module}.{attr}")
                    elif name == "STACK_GLOBAL":
                        module, attr = pushed[-2], pushed[-1]
                        found.append(f"{module}.{attr}" if isinstance(module, str) and isinstance(attr, str) else "?")
                    if name == "MEMOIZE":
                        memo[len(memo)] = pushed[-1]
                    elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                        memo[int(arg)] = pushed[-1]
                    elif name in ("GET", "BINGET", "LONG_BINGET"):
                        pushed.append(memo.get(int(arg)))
                    elif isinstance(arg, str) and ("UNICODE" in name or "STRING" in name):
                        pushed.append(arg)
                    elif op.stack_after:
                        pushed.append(None)
                    del pushed[:-2]
            except (ValueError, KeyError, IndexError, UnicodeDecodeError):
                break
            if stop is None:
                break
            position += stop + 1
            if position >= len(data) or file.container == "zip":
                break
    return [name for name in dict.fromkeys(found) if not is_allowed(name)]


def _printable(name: str, limit: int = 60) -> str:
    """A global's name as the file spells it, safe to print (control characters dropped, shortened)."""
    clean = "".join(ch for ch in name if ch.isprintable())
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _torch_load(file: CheckpointFile) -> Any:
    path = file.path
    try:
        with warnings.catch_warnings():  # garbage after a pickle PROTO byte names absurd protocols: not news
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            if path.suffix == ".safetensors":  # torch.load would hand such a path to safetensors: open it ourselves
                with path.open("rb") as f:
                    return torch.load(f, map_location="cpu", weights_only=True)
            # mmap keeps a multi-GB file out of RAM until used; only the zip format supports it.
            return torch.load(path, map_location="cpu", weights_only=True, mmap=file.container == "zip")
    except pickle.UnpicklingError as exc:
        # torch's weights-only unpickler refused: decide from the pickle's own opcodes whether it wants code run
        # (never from torch's wording, and never relaying torch's advice to load it unsafely).
        wanted = code_globals(file)
        if not wanted:
            cause = exc.__context__ if isinstance(exc.__context__, Exception) else exc  # the unpickler's own error
            detail = type(exc).__name__ if "weights_only" in str(cause) else _first_line(cause)
            raise corrupted(path, f"not a valid PyTorch pickle: {detail}") from None
        names = ", ".join(_printable(n) for n in wanted[:3]) + (
            f" and {len(wanted) - 3} more" if len(wanted) > 3 else ""
        )
        raise CheckpointError(
            f"{path}: refused: this file wants to run code when loaded (its pickle calls {names}), and this loader "
            "refuses to execute code from a checkpoint (nothing was executed). Do not load it with other tools "
            "either. Genuine Depth Anything V2 checkpoints hold only tensors; get a clean copy or a .safetensors "
            f"file from {_download_hint(path)}."
        ) from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure of the reader on these bytes is a broken file
        raise corrupted(path, _first_line(exc)) from None


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Find the tensor mapping inside {'model': sd} / {'state_dict': sd} wrappers; strip 'module.' prefixes."""
    for _ in range(3):
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = [obj[k] for k in _WRAPPER_KEYS if isinstance(obj, dict) and isinstance(obj.get(k), dict)]
        if not inner:
            top = list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
            raise CheckpointError(
                f"{path}: holds no state dict of tensors (top level: {top}). "
                "Pass a Depth Anything V2 checkpoint (.pth or .safetensors)."
            )
        obj = inner[0]
    else:
        raise CheckpointError(
            f"{path}: state dict nested too deeply inside wrapper dicts; re-save the plain state dict."
        )
    sd: dict[str, torch.Tensor] = {str(k): v for k, v in obj.items()}
    while sd and all(k.startswith("module.") for k in sd):  # saved from DataParallel / DDP
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def contents(file: CheckpointFile, with_tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors keyed as stored, on the CPU; safetensors header metadata) of an opened file, in one read.

    Pickled checkpoints have no metadata (``{}``). ``with_tensors=False`` reads only the metadata.
    """
    if file.container != "safetensors":
        return (_unwrap(_torch_load(file), file.path) if with_tensors else {}), {}
    try:
        with safe_open(file.path, framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            return ({k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}), meta
    except (SafetensorError, OSError, ValueError) as exc:
        raise corrupted(file.path, str(exc)[:200]) from None


def sidecar_config(file: CheckpointFile) -> dict[str, Any] | None:
    """An HF ``config.json`` next to the file if it describes a Depth Anything model, else None.

    A config of another ``model_type`` (or JSON that is not an object) is ignored: it describes some other
    model sharing the folder. A ``config.json`` that exists but cannot be read or parsed is a
    CheckpointError: it may be what says "metric", and guessing "relative" would give wrong depth silently.
    """
    cfg_path = file.path.parent / "config.json"
    if not cfg_path.is_file():
        return None
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{cfg_path}: this config.json beside the checkpoint cannot be read ({_first_line(exc)}), and it may be "
            "what says whether the model is relative or metric. Download the model's config.json again (or "
            "delete it if it does not belong to this model), or choose the kind explicitly (checkpoint type "
            "in ComfyUI, kind=/max_depth= in Python)."
        ) from None
    return cfg if isinstance(cfg, dict) and cfg.get("model_type") == "depth_anything" else None


# ------------------------------------------------------------------------- path-level public readers
def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, keys as stored (see :func:`to_official_keys`), on the CPU.

    ``.pth/.pt/.bin`` go through ``torch.load(weights_only=True)`` (memory-mapped for the zip format);
    ``.safetensors`` through safetensors. The container is recognised from the bytes, not the extension.
    Raises CheckpointError for a missing, empty, truncated, corrupted or unknown file, or a pickle that
    needs code.
    """
    return contents(CheckpointFile.open(path))[0]


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The safetensors header metadata (``{}`` for pickled checkpoints or files without any)."""
    return contents(CheckpointFile.open(path), with_tensors=False)[1]


def read_sidecar_config(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The Depth Anything HF ``config.json`` next to a checkpoint (see :func:`sidecar_config`)."""
    return sidecar_config(CheckpointFile.open(path))
