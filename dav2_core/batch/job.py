"""What one ``dav2 batch`` job is: the depth command's options plus where and how to run, and its identity.

A job's *fingerprint* is what fixes the numbers in its outputs (the model's weights by content, precision,
device, estimate options, forward batch size, colormap). It is stored in ``OUT/dav2_batch.json``; a rerun
into the same folder must match it (or pass ``overwrite``), so resumed outputs never mix two models or two
settings: other weights saved under the same checkpoint path are another model. The weights are hashed
(sha256) once; the job file records the file's size and mtime, so a rerun re-reads it only when they change.
Which extra files are written (``--npy``, ``--exr``, colour) is not part of it: asking for more on a
rerun writes the missing files.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ..engines.export import file_sha256
from ..jobs import CliOptions

Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = ("local", "ray")

#: Images per forward pass when none is given. Fixed (not sized from free memory) because the batch
#: composition is part of the numbers: workers with different free memory must still batch alike.
DEFAULT_BATCH_SIZE = 8
#: Attempts per input before its failure is final (a rerun skips it until ``retry_failed``).
DEFAULT_MAX_ATTEMPTS = 3
#: Seconds to wait for a Ray address to answer before giving up with a clear error.
DEFAULT_CONNECT_TIMEOUT = 5.0

JOB_FILE = "dav2_batch.json"
#: Folder in OUT for markers of batches being run (cleared at the start and end of every run).
INFLIGHT_DIR = ".dav2_inflight"
MANIFEST_FILE = "manifest.parquet"


class BatchError(Exception):
    """A problem that stops a batch job before any image is processed (bad source, options, cluster)."""


@dataclass(frozen=True)
class BatchJob:
    """One batch job (validated on construction; BatchError names the bad field).

    options: the depth command's options; ``options.inputs`` = (SOURCE,), ``options.output`` = OUT.
        SOURCE is a folder (read recursively), a text file of paths (one a line, ``#`` comments), or a
        CSV / Parquet file with a ``path_column``. ``options.batch_size`` None becomes DEFAULT_BATCH_SIZE.
    engine: 'local' (this process) or 'ray' (a pool of Ray actors).
    address: Ray cluster: 'local' (start one here), 'auto' (the running one), 'host:port' or
        'ray://host:port'; None = $RAY_ADDRESS, else 'local'. An already connected session is reused.
    num_workers / gpus_per_worker / cpus_per_worker: the actor pool (Ray); CPU workers run torch with
        int(cpus_per_worker) threads.
    root: folder that relative paths of a list are read against and outputs mirror (default: the list's
        folder). allow_outside: also accept listed paths outside ``root`` (outputs under ``_outside/``).
    max_attempts: tries per input across runs; retry_failed: try final failures again.
    overwrite: run even if OUT holds outputs of a job with another fingerprint (all are redone).
    """

    options: CliOptions
    engine: Engine = "local"
    address: str | None = None
    num_workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    path_column: str = "path"
    root: Path | None = None
    allow_outside: bool = False
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_failed: bool = False
    overwrite: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    def __post_init__(self) -> None:
        if len(self.options.inputs) != 1:
            raise BatchError(
                f"a batch job reads one SOURCE (a folder or a list of paths), got {len(self.options.inputs)}"
            )
        if self.engine not in ENGINES:
            raise BatchError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.engine == "local" and self.num_workers != 1:
            raise BatchError("--num-workers needs --engine ray (the local engine is one process)")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 1:
            raise BatchError(f"num_workers must be a whole number >= 1, got {self.num_workers!r}")
        if not self.gpus_per_worker >= 0 or not self.cpus_per_worker > 0:
            raise BatchError(
                f"gpus_per_worker must be >= 0 and cpus_per_worker > 0, got "
                f"{self.gpus_per_worker!r} and {self.cpus_per_worker!r}"
            )
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise BatchError(f"max_attempts must be a whole number >= 1, got {self.max_attempts!r}")
        if self.options.batch_size is None:  # a fixed forward batch: see DEFAULT_BATCH_SIZE
            options = replace(
                self.options,
                batch_size=DEFAULT_BATCH_SIZE,
                estimate=self.options.estimate.with_(chunk_size=DEFAULT_BATCH_SIZE),
            )
            object.__setattr__(self, "options", options)
        if self.options.estimate.temporal_consistency:
            raise BatchError("--temporal aligns consecutive video frames; a batch job treats every image alone")

    @property
    def source(self) -> Path:
        return Path(self.options.inputs[0]).expanduser()

    @property
    def output(self) -> Path:
        return Path(os.path.abspath(self.options.output))

    @property
    def batch_size(self) -> int:
        return int(self.options.batch_size)  # type: ignore[arg-type]

    @property
    def ray_address(self) -> str:
        return self.address or os.environ.get("RAY_ADDRESS") or "local"

    @property
    def worker_threads(self) -> int | None:
        """torch CPU threads per worker: fixed for Ray workers (thread count changes CPU float sums)."""
        return max(1, int(self.cpus_per_worker)) if self.engine == "ray" else None

    def weights_file(self) -> Path:
        """The file holding the job's weights: ``--checkpoint`` (an HF model folder: its weights file), else the
        variant's file in the models folder (downloaded now when missing). BatchError when there is none."""
        o = self.options
        if o.checkpoint is None:
            from ..hub import HubUnavailableError, resolve_checkpoint
            from ..loading import default_models_dir

            try:
                return resolve_checkpoint(o.variant or "vits", o.models_dir or default_models_dir())
            except (HubUnavailableError, ValueError) as exc:
                raise BatchError(str(exc)) from None
        path = Path(o.checkpoint).expanduser()
        if path.is_dir():
            path = next((path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()), path)
        if not path.is_file():
            raise BatchError(f"checkpoint not found: {o.checkpoint}")
        return path

    def fingerprint(self, weights: dict[str, Any]) -> dict[str, Any]:
        """What fixes the numbers of the outputs (compared on a rerun into the same folder); ``weights``: the
        :func:`weights_record` of :meth:`weights_file`."""
        o = self.options
        estimate = {k: v for k, v in asdict(o.estimate).items() if k != "chunk_size"}
        if estimate.get("tta") == "none":  # jobs started before the tta option resume unchanged
            del estimate["tta"]
        return {
            "model_sha256": weights["sha256"],
            "model_config_sha256": weights.get("config_sha256"),
            "variant": o.variant,
            "dtype": o.dtype,
            "device": o.device,
            "estimate": estimate,
            "batch_size": self.batch_size,
            "colormap": o.colormap,
        }


def weights_record(path: Path, known: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{path, size, mtime_ns, sha256[, config_sha256]}`` of a weights file (and of an HF ``config.json`` beside
    it, which may say relative or metric). ``known``: an earlier record, whose sha256 is reused when the path,
    size and mtime still match (an unchanged multi-GB file is not read again)."""
    stat = path.stat()
    record: dict[str, Any] = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    same = isinstance(known, dict) and known.get("sha256") and all(known.get(k) == v for k, v in record.items())
    record["sha256"] = known["sha256"] if same else file_sha256(path, remember=True)
    config = path.parent / "config.json"
    if config.is_file():
        record["config_sha256"] = file_sha256(config)
    return record


def fingerprint_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable 'key: stored -> current' for each field that differs."""
    keys = sorted(set(stored) | set(current))
    names = {"model_sha256": "model weights (sha256)", "model_config_sha256": "model config.json (sha256)"}
    return [
        f"{names.get(key, key)}: {stored.get(key)!r} -> {current.get(key)!r}"
        for key in keys
        if stored.get(key) != current.get(key)
    ]
