"""The Ray engine: the scan as Ray Data tasks, the planned batches on a pool of Ray actors (one model each).

Only paths and result rows travel through Ray's object store (about 1 kB per planned batch and 200 B
per result); workers read the images and write the outputs themselves, so SOURCE and OUT must be the
same paths on every node (a shared file system). Each planned batch is its own block, so a worker that
dies loses only the batch it held: Ray restarts the actor and retries that batch (the worker gives up on
a batch that killed ``max_attempts`` workers); results of finished batches are never redone.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from typing import Any
from collections.abc import Iterator
from urllib.parse import urlsplit

import numpy as np

from .job import BatchError, BatchJob
from .local import SCAN_CHUNK, ResultSink, scan_in_process, scan_items
from .manifest import Row
from .plan import scan_batch
from .worker import BatchWorker, KillOnce

RAY_HELP = "--engine ray needs Ray Data, an optional extra: pip install 'ray[data]' (or pip install '.[ray]')"
#: Seconds (at least) a cluster that accepts connections gets to complete Ray's handshake.
HANDSHAKE_SECONDS = 10.0
#: Planned batches per Ray Data run: bounds the driver's and the object store's share of a huge plan.
WAVE_BATCHES = 50_000


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or BatchError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise BatchError(RAY_HELP) from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise BatchError(f"Ray address {address!r} is not host:port, ray://host:port, auto or local")
    return parts.hostname, port


def check_answers(address: str, timeout: float) -> None:
    """BatchError within ``timeout`` seconds when nothing accepts connections at ``address``."""
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
        raise BatchError(
            f"no Ray cluster answers at {address} ({why} after at most {timeout:g} s); start one with "
            "`ray start --head` there, check the address and port (GCS 6379, Ray Client 10001), "
            "or use --address local"
        ) from None


def _init_within(ray: Any, address: str, seconds: float, **kwargs: Any) -> None:
    """``ray.init`` to an existing cluster, giving up after ``seconds`` (Ray itself waits ~20 s or more).

    Runs in a daemon thread: a server that accepts connections but never speaks Ray would otherwise
    block here. Only for clusters started elsewhere: a local one must be started by the main thread
    (its processes end with the thread that started them).
    """
    outcome: dict[str, BaseException | None] = {}

    def init() -> None:
        try:
            ray.init(address=address, **kwargs)
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=init, name="dav2-ray-connect", daemon=True)
    thread.start()
    thread.join(seconds)
    if "error" not in outcome:
        raise BatchError(
            f"no Ray cluster answers at {address}: something accepts connections there, but no Ray "
            f"handshake came within {seconds:g} s (wrong port, or not a Ray head node? a cluster with "
            "token authentication also needs RAY_AUTH_MODE=token and its token in ~/.ray/auth_token or "
            "RAY_AUTH_TOKEN here); start one with `ray start --head` there, or use --address local"
        )
    if outcome["error"] is not None:
        raise outcome["error"]


def connect(address: str, timeout: float, quiet: bool) -> bool:
    """Connect to (or start) a Ray cluster; True when this call started the session (then shut it down)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address not in ("local", "auto"):
        check_answers(address, timeout)
    options = {"include_dashboard": False, "logging_level": logging.WARNING if quiet else logging.INFO}
    try:
        if address == "local":
            ray.init(address="local", **options)
        else:
            _init_within(ray, address, max(HANDSHAKE_SECONDS, 2 * timeout), **options)
    except ConnectionError as exc:
        hint = " (start one with `ray start --head`, or use --address local)" if address == "auto" else ""
        raise BatchError(f"cannot connect to Ray at {address}: {exc}{hint}") from None
    except BatchError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. ray:// without the ray[client] package
        raise BatchError(f"cannot connect to Ray at {address}: {exc}") from None
    return True


def _pool_size(ray: Any, job: BatchJob) -> Any:
    """The actor pool: ``num_workers`` actors, or as many as the cluster holds now (growing later)."""
    resources = ray.cluster_resources()
    fits = [resources.get("CPU", 0.0) / job.cpus_per_worker]
    if job.gpus_per_worker > 0:
        fits.append(resources.get("GPU", 0.0) / job.gpus_per_worker)
    fit = int(min(fits) + 1e-9)
    if fit < 1:
        raise BatchError(
            f"the Ray cluster has {resources.get('CPU', 0):g} CPUs and {resources.get('GPU', 0):g} GPUs; "
            f"one worker needs {job.cpus_per_worker:g} CPUs and {job.gpus_per_worker:g} GPUs "
            "(lower --cpus-per-worker / --gpus-per-worker, or add nodes)"
        )
    if fit >= job.num_workers:
        return ray.data.ActorPoolStrategy(size=job.num_workers)
    return ray.data.ActorPoolStrategy(min_size=fit, max_size=job.num_workers)


def _root_cause(exc: BaseException) -> str:
    """The innermost message of a Ray error chain: a worker's own exception, not Ray's wrapping (an actor
    that died in its constructor carries the worker's traceback as text: its last line is the error)."""
    best, seen = type(exc).__name__, set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(current)).splitlines() if line.strip()]
        if lines:
            best = lines[-1] if len(lines) > 1 else f"{type(current).__name__}: {lines[0]}"
        current = getattr(current, "cause", None) or current.__cause__
    return best


class RayEngine:
    """A Ray cluster session for one job (``with RayEngine(job) as engine``)."""

    name = "ray"
    #: Below this many inputs the scan runs in the driver (a Ray Data job costs seconds to start).
    local_scan_rows = 20_000

    def __init__(self, job: BatchJob, fault: KillOnce | None = None) -> None:
        self.job = job
        self.fault = fault
        self.ray = require_ray()
        self._started = False

    def __enter__(self) -> RayEngine:
        self._started = connect(self.job.ray_address, self.job.connect_timeout, self.job.options.quiet)
        context = self.ray.data.DataContext.get_current()
        context.enable_progress_bars = not self.job.options.quiet
        if self.job.options.quiet:
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self.ray.shutdown()

    def prepare(self) -> None:
        """Nothing to do here: each actor loads the model when the pool starts."""

    def scan(self, rows: list[Row]) -> Iterator[dict[str, np.ndarray]]:
        if len(rows) < self.local_scan_rows:  # reading a few headers here beats starting Ray Data tasks
            yield from scan_in_process(self.job, rows)
            return
        items = scan_items(rows)
        blocks = max(1, min(len(items) // SCAN_CHUNK + 1, 1000))
        dataset = self.ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            scan_batch,
            fn_kwargs={"out_dir": str(self.job.output), "options": self.job.options},
            batch_size=SCAN_CHUNK,
            batch_format="numpy",
        )
        try:
            yield from dataset.iter_batches(batch_size=None, batch_format="numpy")
        except Exception as exc:  # noqa: BLE001 - Ray wraps worker errors
            raise BatchError(f"the scan failed on the Ray cluster: {_root_cause(exc)}") from None

    def run(self, payloads: list[list[list[Any]]], on_rows: ResultSink) -> None:
        ray, job = self.ray, self.job
        compute = _pool_size(ray, job)
        for start in range(0, len(payloads), WAVE_BATCHES):
            wave = payloads[start : start + WAVE_BATCHES]
            items = [{"batch": json.dumps(entries)} for entries in wave]
            dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                BatchWorker,
                fn_constructor_kwargs={"job": job, "fault": self.fault},
                batch_size=1,
                batch_format="numpy",
                compute=compute,
                num_cpus=job.cpus_per_worker,
                num_gpus=job.gpus_per_worker or None,
            )  # Ray restarts dead actors and retries their batch
            try:
                for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                    on_rows([dict(zip(batch, values)) for values in zip(*batch.values())])
            except Exception as exc:  # noqa: BLE001 - Ray wraps worker and actor errors
                raise BatchError(
                    f"the Ray workers stopped: {_root_cause(exc)}; finished images are kept, "
                    "rerun the same command to resume"
                ) from None
