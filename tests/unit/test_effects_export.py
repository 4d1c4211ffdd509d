"""Save/Load Depth: 16-bit PNG, float EXR and npy round trips with metadata; atomic writes; EXR missing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dav2_core.depth import DepthMap
from dav2_core.effects import export
from dav2_core.effects.export import exr_backend, load_depth, save_depth


def _relative(b: int = 1) -> DepthMap:
    g = torch.Generator().manual_seed(0)
    return DepthMap(torch.rand(b, 24, 32, generator=g) * 7.0 - 2.0, kind="relative", model="vits")


def _metric() -> DepthMap:
    return DepthMap(
        0.5 + 20.0 * torch.rand(1, 24, 32, generator=torch.Generator().manual_seed(1)),
        kind="metric",
        model="metric_hypersim_vits",
    )


def test_png16_round_trip_within_quantisation(tmp_path):
    for depth in (_relative(), _metric()):
        paths = save_depth(depth, tmp_path / f"d_{depth.kind}", "png16")
        assert paths == [tmp_path / f"d_{depth.kind}.png"]
        back = load_depth(paths[0])
        v = depth.values
        step = float(v.max() - v.min()) / 65535
        assert back.kind == depth.kind and back.units == depth.units and back.model == depth.model
        assert float((back.values - v).abs().max()) <= step / 2 + 1e-5 * float(v.abs().max())
        from PIL import Image

        with Image.open(paths[0]) as im:  # a real 16-bit greyscale PNG with the metadata chunk
            assert im.mode == "I;16" and json.loads(im.text["dav2_depth"])["min"] == pytest.approx(float(v.min()))


def test_png16_batch_writes_numbered_files(tmp_path):
    paths = save_depth(_relative(3), tmp_path / "clip.png", "png16")  # the extension is accepted
    assert [p.name for p in paths] == ["clip_00000.png", "clip_00001.png", "clip_00002.png"]
    assert torch.allclose(load_depth(paths[2]).values[0], _relative(3).values[2], atol=1e-3)


def test_png16_constant_map_and_non_finite(tmp_path):
    flat = DepthMap(torch.full((1, 4, 5), 3.5))
    assert torch.equal(load_depth(save_depth(flat, tmp_path / "flat", "png16")[0]).values, flat.values)
    bad = DepthMap(torch.tensor([[[1.0, float("nan")]]]))
    with pytest.raises(ValueError, match="save it as exr or npy"):
        save_depth(bad, tmp_path / "bad", "png16")
    assert list(tmp_path.glob("bad*")) == []


def test_npy_round_trip_exact_with_sidecar(tmp_path):
    depth = _relative(2)
    paths = save_depth(depth, tmp_path / "d", "npy")
    assert paths == [tmp_path / "d.npy", tmp_path / "d.npy.json"]
    meta = json.loads(paths[1].read_text())
    assert meta["kind"] == "relative" and meta["shape"] == [2, 24, 32] and meta["model"] == "vits"
    back = load_depth(paths[0])
    assert torch.equal(back.values, depth.values) and back.kind == "relative"


@pytest.mark.skipif(exr_backend() is None, reason="no EXR writer installed (pip install OpenEXR)")
def test_exr_round_trip_exact(tmp_path):
    depth = _metric()
    paths = save_depth(depth, tmp_path / "m", "exr")
    assert paths == [tmp_path / "m.exr", tmp_path / "m.exr.json"]
    back = load_depth(paths[0])
    assert torch.equal(back.values, depth.values)  # float32, bit-exact
    assert back.kind == "metric" and back.units == "m"
    nan = DepthMap(torch.tensor([[[1.0, float("nan")], [float("inf"), 2.0]]]))
    assert torch.equal(load_depth(save_depth(nan, tmp_path / "n", "exr")[0]).values.isnan(), nan.values.isnan())


def test_exr_unavailable_says_how_to_enable(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "exr_backend", lambda: None)
    with pytest.raises(RuntimeError, match="pip install OpenEXR.*OPENCV_IO_ENABLE_OPENEXR=1"):
        save_depth(_metric(), tmp_path / "m", "exr")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    old = tmp_path / "clip_00000.png"
    old.write_bytes(b"previous")
    calls = []

    def failing(path, values, meta):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real(path, values, meta)

    real = export._write_png16
    monkeypatch.setattr(export, "_write_png16", failing)
    with pytest.raises(OSError, match="disk full"):
        save_depth(_relative(3), tmp_path / "clip", "png16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip_00000.png"]  # no temporaries, no new files
    assert old.read_bytes() == b"previous"


def test_plain_png_without_metadata_loads_as_relative_with_warning(tmp_path):
    from PIL import Image

    Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)).save(tmp_path / "plain.png")
    with pytest.warns(UserWarning, match="no dav2_depth metadata"):
        d = load_depth(tmp_path / "plain.png")
    assert d.kind == "relative" and d.values.tolist() == [[[0.0, 1.0]]]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p: save_depth(_relative(), p / "x", "tiff"), "unknown depth format"),
        (lambda p: save_depth(torch.rand(1, 4, 4), p / "x", "npy"), "DepthMap"),
        (lambda p: load_depth(p / "missing.npy"), "no such file"),
        (lambda p: load_depth(p), "no such file"),
    ],
)
def test_bad_input(tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(tmp_path)


def test_unsupported_file_type(tmp_path):
    (tmp_path / "d.tif").write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported depth file type"):
        load_depth(tmp_path / "d.tif")


def test_opencv_exr_backend(tmp_path, monkeypatch):
    """The OpenCV path: a round trip where its build has the EXR codec, else the how-to-enable error."""
    import cv2

    monkeypatch.setattr(export, "exr_backend", lambda: "opencv")
    try:
        has_exr = bool(cv2.imencode(".exr", np.zeros((1, 1), np.float32))[0])
    except cv2.error:
        has_exr = False
    if has_exr:
        back = load_depth(save_depth(_metric(), tmp_path / "cv", "exr")[0])
        assert torch.equal(back.values, _metric().values) and back.kind == "metric"
    else:
        with pytest.raises(RuntimeError, match="OPENCV_IO_ENABLE_OPENEXR=1"):
            save_depth(_metric(), tmp_path / "cv", "exr")
        assert list(tmp_path.iterdir()) == []
