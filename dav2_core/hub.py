"""Find a variant's checkpoint in a models folder, or download the official file with huggingface_hub."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import constants, hf_hub_download

from .variants import FAMILY_NAMES, Variant, get_variant

try:  # the HTTP library's error base class, as huggingface_hub re-exports it
    from huggingface_hub.errors import HTTPError as _TransportError
except ImportError:  # older huggingface_hub: requests-based, whose errors are OSErrors
    _TransportError = OSError


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "could not fetch".

    OSError covers huggingface_hub's own errors (HfHubHTTPError, LocalEntryNotFoundError,
    OfflineModeIsEnabled), requests' errors and file-system failures while writing. The transport's
    errors need not be OSErrors (httpx's / httpx2's ConnectError, RemoteProtocolError...):
    ``huggingface_hub.errors.HTTPError`` is the base class of whichever HTTP library this
    huggingface_hub talks through (requests before 1.0, httpx in 1.x, httpx2 in 2.x).
    """
    return (OSError,) if issubclass(_TransportError, OSError) else (OSError, _TransportError)


_NETWORK_ERRORS = _network_errors()


class HubUnavailableError(RuntimeError):
    """The checkpoint is not in the models folder and cannot be downloaded (offline, no network, unpublished)."""


def hub_unreachable_reason() -> str | None:
    """Why the Hub endpoint cannot be reached at all (its host name does not resolve), else None.

    huggingface_hub retries a failed connection for about half a minute; a host that does not even
    resolve (no network, or a closed sandbox) is known at once, so we say so without the wait.
    """
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        return f"cannot resolve {host}: {exc.strerror or exc}"
    return None


def repo_url(variant: Variant) -> str:
    """Web page of the variant's Hub repository."""
    return f"https://huggingface.co/{variant.hf_repo}"


def local_filenames(variant: Variant) -> tuple[str, ...]:
    """File names accepted for a variant in a models folder, preferred first.

    The official ``.pth`` name, then kijai's safetensors re-uploads of the same weights
    (``depth_anything_v2_vits_fp32.safetensors``, ``..._fp16...``,
    ``depth_anything_v2_metric_hypersim_vitl_fp32.safetensors``).
    """
    stem = variant.filename.removesuffix(".pth")
    if variant.is_video:  # Video Depth Anything: only the official .pth is published
        return (variant.filename,)
    if variant.kind == "metric":
        return variant.filename, f"{stem}_fp32.safetensors"
    return variant.filename, f"{stem}_fp32.safetensors", f"{stem}_fp16.safetensors"


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set now (env read at call time) or was at huggingface_hub import."""
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {
        "1",
        "ON",
        "YES",
        "TRUE",
    }


def resolve_checkpoint(variant_name: str, models_dir: str | os.PathLike[str]) -> Path:
    """Path of a variant's checkpoint: found in ``models_dir`` or downloaded there from the Hub.

    Downloads go through ``hf_hub_download(repo, filename, local_dir=models_dir)`` (huggingface_hub's own
    tqdm progress). Raises HubUnavailableError naming the file, the full path to put it at and the repo
    page when it is missing and cannot be downloaded (``HF_HUB_OFFLINE=1``, no network, or no published
    file, as for vitg). ValueError for an unknown variant name.
    """
    variant = get_variant(variant_name)
    folder = Path(models_dir).expanduser().resolve()
    for name in local_filenames(variant):
        if (folder / name).is_file():
            return folder / name
    target = folder / variant.filename
    if variant.hf_repo is None:
        raise HubUnavailableError(
            f"{variant.filename}: {FAMILY_NAMES[variant.family]} {variant.encoder} ({variant.name}) has no published "
            f"checkpoint to download. Put your own copy at {target}."
        )
    how = f"Download {variant.filename} from {repo_url(variant)} and put it at {target}."
    if hub_offline():
        raise HubUnavailableError(f"{variant.filename} is not in {folder} and HF_HUB_OFFLINE is set. {how}")
    unreachable = hub_unreachable_reason()
    if unreachable:
        raise HubUnavailableError(
            f"{variant.filename} is not in {folder} and the Hub is unreachable ({unreachable}). {how}"
        )
    before = _download_state(folder, variant.filename)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return Path(hf_hub_download(variant.hf_repo, variant.filename, local_dir=folder))
    except BaseException as exc:
        _remove_new_paths(
            folder, variant.filename, before
        )  # lock, metadata and .incomplete files of the failed attempt
        if not isinstance(exc, _NETWORK_ERRORS):
            raise
        raise HubUnavailableError(
            f"{variant.filename} is not in {folder} and could not be downloaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}). {how}"
        ) from exc


def _download_state(folder: Path, filename: str) -> set[Path]:
    """What ``hf_hub_download(local_dir=folder)`` may create: the folder, its ``.cache`` tree, the file."""
    cache = folder / ".cache"
    found = {p for p in (folder, cache, folder / filename) if p.exists() or p.is_symlink()}
    return found | set(cache.rglob("*")) if cache.is_dir() else found


def _remove_new_paths(folder: Path, filename: str, before: set[Path]) -> None:
    """Delete what a failed download created (lock, metadata and ``.incomplete`` files under
    ``.cache/huggingface``, the folders holding them, a partial file), deepest first; never an older path,
    and a folder only once it is empty."""
    for path in sorted(_download_state(folder, filename) - before, key=lambda p: len(p.parts), reverse=True):
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
        except OSError:
            pass
