"""Depth for whole datasets: ``dav2 batch SOURCE -o OUT`` in one process or on a Ray cluster, resumable.

``run_batch(BatchJob(options, engine="local" | "ray", ...))`` reads SOURCE (:mod:`.sources`), scans and
plans fixed same-size batches (:mod:`.plan`), runs them on workers that each load the model once and
call the CLI's image path (:mod:`.worker`: the shared estimate pipeline, the CLI's files and atomic
writes), and records every entry in ``OUT/manifest.parquet`` (:mod:`.manifest`). The local engine
(:mod:`.local`) needs only pyarrow; the Ray engine (:mod:`.ray_engine`) needs the ``ray`` extra.

Outputs per image ``<stem>`` (mirroring SOURCE's layout): ``<stem>_depth.png`` (16-bit, near = white),
``<stem>_depth_color.png``, and with ``--npy`` / ``--exr`` the raw float32 depth, exactly as ``dav2``
writes them. A rerun skips images whose outputs verify, retries failures up to ``max_attempts`` and
gives bit-identical numbers whatever the number of workers (see :mod:`.plan`).
"""

from .job import DEFAULT_BATCH_SIZE, ENGINES, JOB_FILE, MANIFEST_FILE, BatchError, BatchJob
from .manifest import STATUSES, manifest_schema
from .runner import BatchSummary, WorkerStats, run_batch
from .worker import KillOnce

__all__ = [
    "BatchError",
    "BatchJob",
    "BatchSummary",
    "DEFAULT_BATCH_SIZE",
    "ENGINES",
    "JOB_FILE",
    "KillOnce",
    "MANIFEST_FILE",
    "STATUSES",
    "WorkerStats",
    "manifest_schema",
    "run_batch",
]
