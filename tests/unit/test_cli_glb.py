"""``dav2 --glb``: a textured mesh per image, read back with trimesh; camera from --fov, EXIF or 60 degrees.

CPU only, a seeded random-init vits checkpoint, tiny images and ``--input-size 70``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from checkpoint_factory import write_checkpoint
from dav2_core import cli, geometry

SMALL = ["--input-size", "70", "--device", "cpu", "-q"]
H, W = 30, 44

trimesh = pytest.importorskip("trimesh")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    write_checkpoint(folder / "depth_anything_v2_vits.pth", "vits", "official-pth", seed=0)
    return folder


def photo(path: Path, f35: float | None = None, focal_only: bool = False) -> Path:
    rng = np.random.default_rng(5)
    image = Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    exif = image.getexif()
    if f35 is not None:
        exif.get_ifd(0x8769)[0xA405] = f35
    if focal_only:
        exif.get_ifd(0x8769)[0x920A] = 4.2  # a focal length without sensor size or 35 mm equivalent
    image.save(path, exif=exif, quality=95)
    return path


def run(args: list[str], models_dir: Path, capsys) -> tuple[int, str]:
    code = cli.main([*args, "--models-dir", str(models_dir), *SMALL])
    return code, capsys.readouterr().err


def half_fov(glb: Path) -> float:
    """The widest |x| / depth of the mesh's vertices = tan(fov / 2) * (W - 1) / W for a centred pinhole."""
    v = np.asarray(trimesh.load(glb, force="mesh", process=False).vertices)
    return float(np.max(np.abs(v[:, 0]) / -v[:, 2])) * W / (W - 1)


def test_glb_has_a_vertex_per_pixel_and_the_photo_as_texture(tmp_path, models_dir, capsys):
    src = photo(tmp_path / "p.jpg")
    code, err = run([str(src), "-o", str(tmp_path / "o"), "--glb", "--glb-discontinuity", "0"], models_dir, capsys)
    assert code == 0, err
    mesh = trimesh.load(tmp_path / "o" / "p_depth.glb", force="mesh", process=False)
    assert len(mesh.vertices) == H * W
    assert len(mesh.faces) == 2 * (H - 1) * (W - 1)
    assert mesh.visual.material.baseColorTexture.size == (W, H)
    depths = -np.asarray(mesh.vertices)[:, 2]  # relative model: the documented 1..10 units
    assert depths.min() == pytest.approx(1.0, rel=1e-5) and depths.max() == pytest.approx(10.0, rel=1e-5)


def test_glb_decimation_and_the_camera_from_exif_or_the_flag(tmp_path, models_dir, capsys):
    src = photo(tmp_path / "e.jpg", f35=26)
    args = [str(src), "-o", str(tmp_path / "o"), "--glb", "--glb-decimation", "3", "--glb-discontinuity", "0"]
    code, err = run(args, models_dir, capsys)
    assert code == 0, err
    glb = tmp_path / "o" / "e_depth.glb"
    assert len(trimesh.load(glb, force="mesh", process=False).vertices) == math.ceil(H / 3) * math.ceil(W / 3)
    f_px = 26 / geometry.FULL_FRAME_DIAGONAL_MM * math.hypot(W, H)
    # decimation 3 keeps columns 0, 3, .., 42: the rightmost vertex column is (42 - 21.5) px off axis
    v = np.asarray(trimesh.load(glb, force="mesh", process=False).vertices)
    assert float(np.max(v[:, 0] / -v[:, 2])) == pytest.approx((42 - (W - 1) / 2) / f_px, rel=1e-4)
    code, err = run([*args, "--fov", "90", "-o", str(tmp_path / "f")], models_dir, capsys)
    assert code == 0, err
    v = np.asarray(trimesh.load(tmp_path / "f" / "e_depth.glb", force="mesh", process=False).vertices)
    assert float(np.max(v[:, 0] / -v[:, 2])) == pytest.approx((42 - (W - 1) / 2) / (W / 2), rel=1e-4)


def test_exif_without_focal_length_falls_back_to_60_degrees(tmp_path, models_dir, capsys):
    src = photo(tmp_path / "n.jpg", focal_only=True)
    args = [str(src), "-o", str(tmp_path / "o"), "--glb", "--glb-discontinuity", "0"]  # random weights: noisy depth
    code = cli.main([*args, "--models-dir", str(models_dir), *SMALL[:-1]])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "no 35 mm equivalent or sensor size" in err and "60 degrees" in err  # says what it did
    assert half_fov(tmp_path / "o" / "n_depth.glb") <= math.tan(math.radians(30)) * (1 + 1e-4)


def test_a_decimation_too_large_for_the_image_fails_that_mesh_only(tmp_path, models_dir, capsys):
    src = photo(tmp_path / "d.jpg")
    code, err = run([str(src), "-o", str(tmp_path / "o"), "--glb", "--glb-decimation", "1000000"], models_dir, capsys)
    assert code == 1
    assert "mesh not written: decimation 1000000 leaves a 1x1 vertex grid" in err
    assert (tmp_path / "o" / "d_depth.png").is_file() and not (tmp_path / "o" / "d_depth.glb").exists()
    assert not list((tmp_path / "o").glob("*.tmp*"))


@pytest.mark.parametrize("bad", ["0", "180", "nan", "-3", "wide"])
def test_bad_fov_is_refused_by_the_parser(tmp_path, models_dir, capsys, bad):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(tmp_path / "x.jpg"), "--glb", "--fov", bad])
    assert exit_info.value.code == 2
    assert "--fov" in capsys.readouterr().err


def test_glb_without_trimesh_says_how_to_install_it(tmp_path, models_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "trimesh", None)  # import trimesh -> ImportError
    src = photo(tmp_path / "t.jpg")
    code, err = run([str(src), "-o", str(tmp_path / "o"), "--glb"], models_dir, capsys)
    assert code == 2 and "pip install trimesh" in err
    assert not (tmp_path / "o" / "t_depth.png").exists()  # refused before any work
