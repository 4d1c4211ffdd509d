"""Hostile command lines: every one ends in one clear line and an exit status, never a traceback.

``dav2 export`` with a huge shape or batch, ``.onnx`` files of the wrong size or cut short, ``dav2 eval --json``
to a path that cannot be written, a decompression-bomb ground truth (and no Pillow "DOS attack" warning for a
legitimate 96 MP picture), Ctrl-C in ``dav2 export`` and ``dav2 eval`` (130, one line, no partial file).
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_fixtures import SMALL, one_cpu_thread  # noqa: F401  (fixture)
from dav2_core import cli, io
from dav2_core.checkpoints.random_init import write_random_checkpoint
from signals import default_sigint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pth", "vits", "official-pth", seed=0)


@pytest.fixture(scope="module")
def fixed_onnx(tmp_path_factory, checkpoint) -> Path:
    """A vits export fixed at 28x28 (any batch)."""
    pytest.importorskip("onnx")
    out = tmp_path_factory.mktemp("onnx") / "fixed28.onnx"
    assert cli.main(["export", "--checkpoint", str(checkpoint), "--height", "28", "--width", "28", "-o", str(out)]) == 0
    return out


def _image(path: Path, height: int = 40, width: int = 60) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def _one_clean_line(err: str, prog: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"{prog}: ")]
    assert len(lines) == 1, err


# ------------------------------------------------------------------------------------- dav2 export
@pytest.mark.parametrize(
    "shape,says",
    [
        (["--height", "100002", "--width", "100002"], "the limit is 16384"),
        (["--height", "14", "--width", "1400000"], "the limit is 16384"),
        (["--height", "518", "--width", "518", "--batch", "100000"], "Leave out --batch"),
        (["--height", "1792", "--width", "1792", "--batch", "64"], "the largest here is 5"),
    ],
)
def test_export_of_a_huge_shape_or_batch_is_refused_before_tracing(tmp_path, checkpoint, capsys, shape, says):
    pytest.importorskip("onnx")
    out = tmp_path / "big.onnx"
    assert cli.main(["export", "--checkpoint", str(checkpoint), *shape, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    _one_clean_line(err, "dav2 export")
    assert says in err, err
    assert list(tmp_path.iterdir()) == []


def test_onnx_file_of_another_fixed_size_is_a_message(tmp_path, fixed_onnx, capsys):
    pytest.importorskip("onnxruntime")
    image = _image(tmp_path / "in.png")
    args = [str(image), "-o", str(tmp_path / "out"), "--checkpoint", str(fixed_onnx), "--backend", "onnxruntime"]
    status = cli.main([*args, "--input-size", "70", "--device", "cpu", "-q"])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert "was exported for 28x28 only" in err and "--dynamic" in err
    assert not list((tmp_path / "out").glob("*_depth*"))


@pytest.mark.parametrize("keep", [0.0005, 0.5, 0.999])
def test_truncated_onnx_file_is_a_message(tmp_path, fixed_onnx, capsys, keep):
    pytest.importorskip("onnxruntime")
    data = fixed_onnx.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: int(len(data) * keep)])
    image = _image(tmp_path / "in.png")
    args = [str(image), "-o", str(tmp_path / "out"), "--checkpoint", str(cut), "--backend", "onnxruntime"]
    status = cli.main([*args, "--input-size", "28", "--device", "cpu", "-q", "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert status == 2
    _one_clean_line(err, "dav2")
    assert "not a readable ONNX file" in err and "truncated or corrupted" in err and str(cut) in err


def test_ctrl_c_in_export_is_one_line_and_130_with_nothing_left(tmp_path, checkpoint, capsys, monkeypatch):
    pytest.importorskip("onnx")
    from dav2_core.engines import export

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_trace", interrupted)
    out = tmp_path / "x.onnx"
    assert cli.main(["export", "--checkpoint", str(checkpoint), "--dynamic", "-o", str(out)]) == 130
    err = capsys.readouterr().err
    _one_clean_line(err, "dav2 export")
    assert "interrupted" in err and list(tmp_path.iterdir()) == []


def test_sigint_to_a_real_export_process(tmp_path, checkpoint):
    """Ctrl-C (SIGINT) while the export traces, in a real process: 130, one line, no file, no temporary."""
    pytest.importorskip("onnx")
    out = tmp_path / "out" / "x.onnx"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dav2_core", "export", "--checkpoint", str(checkpoint), "--dynamic", "-o", str(out)]
    process = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(".dav2-export-*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the export ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    _one_clean_line(err, "dav2 export")
    assert list(out.parent.iterdir()) == []


# --------------------------------------------------------------------------------------- dav2 eval
@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    """(ground truth: a 16-bit depth PNG in mm, prediction: a relative .npy) of the same size."""
    rng = np.random.default_rng(3)
    gt = tmp_path / "gt.png"
    Image.fromarray(rng.integers(500, 5000, (24, 32), dtype=np.uint16)).save(gt)
    pred = tmp_path / "pred.npy"
    np.save(pred, rng.random((24, 32)).astype(np.float32) + 0.1)
    return gt, pred


@pytest.mark.parametrize("where", ["under a file", "a folder"])
def test_eval_json_to_an_unwritable_path_fails_before_the_run(tmp_path, pair, capsys, monkeypatch, where):
    gt, pred = pair
    (tmp_path / "file.txt").write_text("x")
    target = tmp_path / "file.txt" / "r.json" if where == "under a file" else tmp_path
    from dav2_core.cli import eval as eval_cli

    ran: list[bool] = []
    real = eval_cli.run
    monkeypatch.setattr(eval_cli, "run", lambda *a, **k: ran.append(True) or real(*a, **k))
    assert cli.main(["eval", "--gt", str(gt), "--pred", str(pred), "--json", str(target)]) == 2
    out, err = capsys.readouterr()
    _one_clean_line(err, "dav2 eval")
    assert str(target) in err and not ran and out == ""


def test_eval_json_to_a_good_path_writes_it(tmp_path, pair, capsys):
    gt, pred = pair
    target = tmp_path / "new" / "r.json"
    assert cli.main(["eval", "--gt", str(gt), "--pred", str(pred), "--json", str(target)]) == 0
    assert target.is_file() and "abs_rel" in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]  # the writability probe left nothing


def test_ctrl_c_in_eval_is_one_line_and_130(tmp_path, pair, capsys, monkeypatch):
    gt, pred = pair
    from dav2_core.cli import eval as eval_cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(eval_cli, "evaluate_depth", interrupted)
    target = tmp_path / "r.json"
    assert cli.main(["eval", "--gt", str(gt), "--pred", str(pred), "--json", str(target)]) == 130
    err = capsys.readouterr().err
    _one_clean_line(err, "dav2 eval")
    assert "interrupted" in err and not target.exists()


def _png_bomb(path: Path, width: int, height: int) -> Path:
    """A few hundred bytes of PNG whose header claims ``width`` x ``height`` 8-bit grey pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 4)  # a few rows; the decoder would need all of them
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("size", [(20_000, 20_000), (100_000, 100_000)])
def test_decompression_bomb_ground_truth_is_refused_with_our_limit(tmp_path, pair, capsys, size):
    _, pred = pair
    bomb = _png_bomb(tmp_path / "bomb.png", *size)
    assert cli.main(["eval", "--gt", str(bomb), "--pred", str(pred)]) == 2
    err = capsys.readouterr().err
    _one_clean_line(err, "dav2 eval")
    assert f"{size[0]}x{size[1]} pixels" in err and "the limit is 268 MP" in err
    assert "DecompressionBomb" not in err and "DOS attack" not in err


def test_decompression_bomb_input_image_is_refused_by_dav2(tmp_path, checkpoint, capsys):
    bomb = _png_bomb(tmp_path / "bomb.png", 30_000, 30_000)
    status = cli.main([str(bomb), "-o", str(tmp_path / "out"), "--checkpoint", str(checkpoint), *SMALL])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err and "30000x30000 pixels" in err and "the limit is 268 MP" in err
    assert not list((tmp_path / "out").glob("*_depth*"))
    with pytest.raises(io.ImageReadError, match="the limit is 268 MP"):
        io.read_image(bomb)


def test_a_legitimate_96_mp_picture_gets_no_dos_attack_warning(tmp_path):
    """12000 x 8000 (96 MP, above Pillow's 89 MP warning): read without any warning; Pillow's own limit is
    left as it was for everyone else in the process (ComfyUI's nodes)."""
    big = tmp_path / "big.png"
    _png_bomb(big, 12_000, 8_000)  # the header is what the probe reads
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert io.probe_image_size(big) == (8_000, 12_000)
        with io.open_image(big) as image:
            assert image.size == (12_000, 8_000)
    assert Image.MAX_IMAGE_PIXELS == before
