"""The data contract between nodes/ and web/ without a browser: the packed 16-bit preview PNG and its entries
(nodes/preview.py), and what the pack's HTTP routes give the web extension (nodes/routes.py): colormap LUTs,
the stats keys and batch cap, which preview files still exist.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from comfy_harness import load_nodes_module
from preview_oracle import Q_MAX, unpack_depth_u16

preview = load_nodes_module("preview")
routes = load_nodes_module("routes")


def _png_chunks(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, i = [], 8
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i : i + 8])
        chunks.append(kind.decode())
        i += 12 + n
    return chunks


def test_pack_roundtrip_error_within_half_step() -> None:
    rng = np.random.default_rng(1)
    d = (rng.normal(size=(61, 83)) * 4.0 + 7.0).astype(np.float32)
    d[5, 6] = np.nan
    d[7, 8] = np.inf
    rgb, lo, hi = preview.pack_depth_u16(d)
    assert preview.Q_MAX == Q_MAX  # the oracle reads the same 16-bit scale
    finite = np.isfinite(d)
    assert lo == pytest.approx(float(d[finite].min())) and hi == pytest.approx(float(d[finite].max()))
    assert rgb.dtype == np.uint8 and rgb.shape == (61, 83, 3)
    back = unpack_depth_u16(rgb, lo, hi)
    err = np.abs(back[finite] - d[finite].astype(np.float64))
    assert err.max() <= (hi - lo) / 131070 * (1 + 1e-9)
    assert np.isnan(back[5, 6]) and np.isnan(back[7, 8])
    assert (rgb[..., 2][finite] == 0).all() and rgb[5, 6, 2] == 255 and rgb[7, 8, 2] == 255
    q = rgb[..., 0].astype(int) * 256 + rgb[..., 1]
    assert q[finite].min() == 0 and q[finite].max() == 65535


@pytest.mark.parametrize("shape", [(1, 1), (48, 64)])
def test_pack_constant_depth_has_zero_range(shape: tuple[int, int]) -> None:
    d = np.full(shape, 3.25, dtype=np.float32)
    rgb, lo, hi = preview.pack_depth_u16(d)
    assert lo == hi == 3.25
    assert not rgb.any()
    assert np.array_equal(unpack_depth_u16(rgb, lo, hi), d.astype(np.float64))


def test_preview_png_is_plain_8bit_rgb(tmp_path: Path) -> None:
    import cv2
    from dav2_core.depth import DepthMap

    values = torch.linspace(0.0, 1.0, 30 * 40).reshape(1, 30, 40)
    (entry,) = preview.write_preview_entries(DepthMap(values), str(tmp_path))
    path = tmp_path / entry["subfolder"] / entry["filename"]
    data = path.read_bytes()
    # No gAMA/sRGB/iCCP/cHRM chunk: a canvas returns the stored bytes without colour conversion.
    assert _png_chunks(data) == ["IHDR", "IDAT", "IEND"]
    assert data[24] == 8 and data[25] == 2  # bit depth 8, colour type 2 (RGB, no alpha)
    rgb = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]
    back = unpack_depth_u16(rgb, entry["min"], entry["max"])
    assert np.abs(back - values[0].numpy()).max() <= 1.0 / 131070 + 1e-7
    assert not list((tmp_path / entry["subfolder"]).glob("*.part*"))


def test_preview_entries_fields_cap_and_sizes(tmp_path: Path) -> None:
    from dav2_core.depth import DepthMap

    depth = DepthMap(torch.rand(20, 9, 16) * 5, kind="metric", model="m.safetensors")
    entries = preview.write_preview_entries(depth, str(tmp_path), max_preview_side=8)
    assert len(entries) == preview.MAX_PREVIEW_IMAGES == 16
    assert [e["index"] for e in entries] == list(range(16))
    assert {e["batch"] for e in entries} == {20}
    e = entries[3]
    assert (e["width"], e["height"], e["preview_width"], e["preview_height"]) == (16, 9, 8, 4)
    assert (e["units"], e["kind"], e["type"], e["model"]) == ("m", "metric", "temp", "m.safetensors")
    assert e["larger_is_nearer"] is False  # metres: larger = farther
    assert e["min"] == pytest.approx(float(depth.values[3].min())) and e["max"] == pytest.approx(
        float(depth.values[3].max())
    )
    assert len({x["filename"] for x in entries}) == 16
    assert preview.preview_size(3840, 2160, 1024) == (1024, 576)
    assert preview.preview_size(1, 1, 1024) == (1, 1)
    assert preview.preview_size(5000, 3, 1024) == (1024, 1)


def test_preview_pixel_budget_keeps_at_least_one_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dav2_core.depth import DepthMap

    monkeypatch.setattr(preview, "MAX_PREVIEW_PIXELS", 1300)
    entries = preview.write_preview_entries(DepthMap(torch.rand(5, 20, 30)), str(tmp_path))
    assert [e["index"] for e in entries] == [0, 1] and {e["batch"] for e in entries} == {5}
    big = preview.write_preview_entries(DepthMap(torch.rand(3, 40, 50)), str(tmp_path))
    assert [e["index"] for e in big] == [0]
    for e in entries + big:
        assert (tmp_path / e["subfolder"] / e["filename"]).is_file()


def test_preview_rejects_bad_input(tmp_path: Path) -> None:
    from dav2_core.depth import DepthMap

    with pytest.raises(ValueError, match="DepthMap"):
        preview.write_preview_entries(torch.zeros(1, 4, 4), str(tmp_path))
    with pytest.raises(ValueError, match="empty"):
        preview.write_preview_entries(DepthMap(torch.zeros(1, 0, 4)), str(tmp_path))
    with pytest.raises(ValueError, match="max_preview_side"):
        preview.preview_size(10, 10, 0)


def test_preview_entries_carry_the_display_range(tmp_path: Path) -> None:
    from dav2_core.depth import DepthMap

    depth = DepthMap(torch.rand(3, 6, 7) * 5, kind="metric")
    plain = preview.write_preview_entries(depth, str(tmp_path))
    assert not any("display_min" in e or "display_max" in e for e in plain)  # no range given: as before
    lo, hi = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([1.5, 1.0, 4.25])
    entries = preview.write_preview_entries(depth, str(tmp_path), display_range=(lo, hi))
    assert [(e["display_min"], e["display_max"]) for e in entries] == [(0.5, 1.5), (1.0, 1.0), (2.0, 4.25)]
    assert all(isinstance(e["display_min"], float) for e in entries)
    listed = preview.write_preview_entries(depth, str(tmp_path), display_range=([0, 0, 0], [1, 2, 3]))
    assert [e["display_max"] for e in listed] == [1.0, 2.0, 3.0]
    for bad, match in [
        ((lo[:2], hi[:2]), "one value per image"),
        ((hi, lo), "must not exceed"),
        ((lo, torch.tensor([1.0, float("nan"), 2.0])), "finite"),
        (lo, "pair"),
    ]:
        with pytest.raises(ValueError, match=match):
            preview.write_preview_entries(depth, str(tmp_path), display_range=bad)


def test_entries_say_which_way_the_values_run(tmp_path: Path) -> None:
    from dav2_core.depth import DepthMap

    for kind, nearer in [("relative", True), ("metric", False)]:
        depth = DepthMap(torch.rand(1, 4, 5), kind=kind)
        (entry,) = preview.write_preview_entries(depth, str(tmp_path))
        assert entry["larger_is_nearer"] is nearer
        assert entry["units"] == depth.units  # the units DepthMap derives from the kind, sent as they are
        # the same direction as the one nearness rule of dav2_core
        flat = depth.values.flatten()
        assert torch.equal(depth.nearness().flatten().argsort(), flat.argsort() if nearer else (-flat).argsort())


def test_web_config_is_the_python_constants() -> None:
    from dav2_core.stats import STAT_KEYS

    config = routes.web_config()
    assert config == {
        "stat_keys": list(STAT_KEYS),
        "max_preview_images": preview.MAX_PREVIEW_IMAGES,
        "pick": routes.PICK_TARGETS,
        "legacy_values": {  # dav2_core.ranges.LEGACY_NAMES, by node input (web/range_names.js renames them)
            "DAV2EstimateDepth": {"normalization": {"per_image": "min_max"}},
            "DAV2VideoDepth": {"normalization": {"two_pass": "clip", "per_frame": "image"}},
            "DAV2ColorizeDepth": {"range_mode": {"auto": "min_max"}},
        },
    }


def test_preview_files_present_answers_only_for_preview_names(tmp_path: Path) -> None:
    from dav2_core.depth import DepthMap

    kept, gone = preview.write_preview_entries(DepthMap(torch.rand(2, 3, 4)), str(tmp_path))
    (tmp_path / gone["subfolder"] / gone["filename"]).unlink()
    (tmp_path / "secret.png").write_bytes(b"x")
    names = [kept["filename"], gone["filename"], "../secret.png", "secret.png", "dav2_depth_zz_00.png", ""]
    assert routes.preview_files_present(names, str(tmp_path)) == {
        kept["filename"]: True,
        gone["filename"]: False,
        "../secret.png": False,
        "secret.png": False,
        "dav2_depth_zz_00.png": False,
        "": False,
    }
    many = [kept["filename"]] * 100
    assert len(routes.preview_files_present(many, str(tmp_path))) == 1  # one key per distinct name


@pytest.mark.server
def test_routes_on_the_server(comfy_server) -> None:
    """The routes as the browser reaches them (the frontend's api.fetchApi adds /api)."""
    from dav2_core.colormaps import COLORMAPS, lut_uint8_table
    from dav2_core.depth import DepthMap

    table = comfy_server.get("/dav2/colormaps")
    assert list(table) == list(COLORMAPS) and table == lut_uint8_table()
    assert comfy_server.get("/api/dav2/colormaps") == table
    assert comfy_server.get("/api/dav2/config") == routes.web_config()
    (entry,) = preview.write_preview_entries(DepthMap(torch.rand(1, 3, 4)), str(comfy_server.base_dir / "temp"))
    missing = "dav2_depth_000000000000_00.png"
    answer = comfy_server.get(f"/api/dav2/preview_files?names={entry['filename']}/{missing}")
    assert answer == {entry["filename"]: True, missing: False}
