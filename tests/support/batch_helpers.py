"""Shared by the ``dav2 batch`` tests: small synthetic datasets, the CLI reference run, output comparison."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dav2_core import cli
from dav2_core.batch import JOB_FILE, MANIFEST_FILE, BatchJob
from dav2_core.cli.batch import parse_job

# The CLI tests' fixtures: the vits variant file (seeded random weights) and one torch thread (autouse), so
# the single-process reference runs with one thread like a Ray worker with one CPU (CPU sums depend on it).
from cli_fixtures import models_dir, one_cpu_thread  # noqa: F401

#: Tiny network input so a forward pass takes milliseconds on the CPU.
SMALL = ["--input-size", "70", "--device", "cpu", "-q"]
#: Mixed sizes (H, W): three size groups, so batches are built per size as the CLI does.
SIZES = [(48, 64), (64, 48), (40, 40)]
BOOKKEEPING = {MANIFEST_FILE, JOB_FILE}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, one_cpu_thread) -> tuple[Path, Path]:
    """(source folder: 9 images of 3 sizes in two folders + a corrupt JPEG, the single-process CLI's outputs
    for it with ``--batch-size 2``)."""
    root = tmp_path_factory.mktemp("batch")
    make_dataset(root / "src", 9, corrupt=True)
    assert run_reference(root / "src", root / "reference", models_dir, batch_size=2) == 1  # 1: the corrupt file
    return root / "src", root / "reference"


def write_image(path: Path, height: int, width: int, seed: int) -> Path:
    """A smooth random RGB image (PNG or JPEG from the suffix)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC))
    return path


def make_dataset(folder: Path, count: int, corrupt: bool = False) -> list[Path]:
    """``count`` images of SIZES in ``folder`` and ``folder/sub`` (one JPEG), plus a corrupt JPEG if asked."""
    paths = []
    for i in range(count):
        height, width = SIZES[i % len(SIZES)]
        name = f"img{i:03d}.jpg" if i == 4 else f"img{i:03d}.png"
        paths.append(write_image(folder / ("sub" if i % 2 else "") / name, height, width, seed=i))
    if corrupt:
        (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated, not a JPEG")
    return paths


def run_reference(source: Path, out: Path, models_dir: Path, batch_size: int) -> int:
    """The single-process depth command on the same folder: ``dav2 SOURCE -r --npy --batch-size B``."""
    return cli.main(
        [
            str(source),
            "-r",
            "-o",
            str(out),
            "--npy",
            "--batch-size",
            str(batch_size),
            "--models-dir",
            str(models_dir),
            *SMALL,
        ]
    )


def run_batch_cli(source: Path, out: Path, models_dir: Path, *extra: str) -> int:
    """``dav2 batch SOURCE -o OUT --npy`` with the small test settings."""
    return cli.main(["batch", str(source), "-o", str(out), "--npy", "--models-dir", str(models_dir), *SMALL, *extra])


def small_job(models_dir: Path, *args: str) -> BatchJob:
    """``dav2 batch`` arguments parsed into a job, with the test models folder and the tiny settings (SMALL)."""
    return parse_job([*args, "--models-dir", str(models_dir), *SMALL])


def output_files(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every depth output (bookkeeping files left out)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in BOOKKEEPING
    }


def assert_same_outputs(expected: Path, actual: Path) -> None:
    """Same file names and the same bytes (PNG and .npy: bit-identical depth)."""
    want, got = output_files(expected), output_files(actual)
    assert sorted(got) == sorted(want)
    different = [name for name in want if want[name] != got[name]]
    assert not different, f"{len(different)} files differ, e.g. {different[:3]}"


def read_manifest(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(out / MANIFEST_FILE).to_pylist()
