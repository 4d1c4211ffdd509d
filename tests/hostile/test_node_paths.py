"""Every node input and route that names a file, attacked in-process through ComfyUI's real modules: Evaluate
Depth's gt_file, Save Depth / Depth to Normals / Video Depth prefixes, the preview_files route. Each refusal is
dav2_core.paths' one message; nothing outside ComfyUI's folders is read, scored or written."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from comfy_harness import TEST_CHECKPOINT
from dav2_core.depth import DepthMap
from dav2_core.paths import PathRefused

SECRET = "TOPSECRET-4242"
H, W = 24, 32


def pfm(values: np.ndarray) -> bytes:
    h, w = values.shape
    return f"Pf\n{w} {h}\n-1.0\n".encode() + values[::-1].astype("<f4").tobytes()


@pytest.fixture(scope="module")
def places(comfy_inprocess, tmp_path_factory):
    """ComfyUI's folders, and an outside folder (beside ComfyUI's base folder) holding a valid PFM of the
    prediction's size: code that reads outside would score it."""
    base = comfy_inprocess.base_dir
    outside = base.parent / "hostile_outside"
    outside.mkdir(exist_ok=True)
    disparity = (1.0 + np.arange(H * W, dtype=np.float32).reshape(H, W) / 100.0).astype(np.float32)
    (outside / "secret.pfm").write_bytes(pfm(disparity))
    (base / "secret.pfm").write_bytes(pfm(disparity))  # beside input/, reachable with ../
    return {"base": base, "input": base / "input", "output": base / "output", "temp": base / "temp", "out": outside}


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def evaluate(comfy, gt_file: str):
    pred = DepthMap(1.0 + torch.rand(1, H, W, generator=torch.Generator().manual_seed(0)), "relative")
    args = dict(gt_kind="auto", gt_scale=0.0, align="auto", min_depth=0.0, max_depth=0.0)
    return comfy.node("Evaluate Depth").execute(pred, gt_file, **args)


def refusal_of(comfy, gt_file: str) -> str:
    """The refusal at run time (execute), checked to be the same as when the graph is queued."""
    with pytest.raises(PathRefused) as err:
        evaluate(comfy, gt_file)
    message = str(err.value)
    assert comfy.node("Evaluate Depth").validate_inputs(gt_file=gt_file.strip()) == message
    assert (
        message.startswith("gt_file ") and "is refused" in message and "relative to ComfyUI's input folder" in message
    )
    return message


# ------------------------------------------------------------------------------------------ Evaluate Depth
def test_evaluate_depth_reads_nothing_outside(comfy_inprocess, places, monkeypatch):
    out = places["out"]
    opened = []
    real_open = open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)  # Python-level opens: PIL, numpy and the PFM reader use it
    for text in (
        str(out / "secret.pfm"),  # absolute: the old node scored this file
        "../secret.pfm",  # beside the input folder: the old node scored this too
        "../../hostile_outside/secret.pfm",
        "sub/../../secret.pfm",
        "..\\secret.pfm",
        f"{out / 'secret.pfm'} [output]",
        "../secret.pfm [temp]",
        "~/secret.pfm/../../../secret.pfm",
    ):
        refusal_of(comfy_inprocess, text)
    assert not [f for f in opened if "secret" in f]


def test_evaluate_depth_links_leading_out_are_refused(comfy_inprocess, places):
    link = places["input"] / "hostile_link.pfm"
    folder_link = places["input"] / "hostile_dir"
    for path in (link, folder_link):
        if path.is_symlink():
            path.unlink()
    link.symlink_to(places["out"] / "secret.pfm")
    folder_link.symlink_to(places["out"], target_is_directory=True)
    try:
        refusal_of(comfy_inprocess, "hostile_link.pfm")
        refusal_of(comfy_inprocess, "hostile_dir/secret.pfm")
        refusal_of(comfy_inprocess, "hostile_dir/secret.pfm [input]")
    finally:
        link.unlink()
        folder_link.unlink()


def test_evaluate_depth_gives_no_existence_oracle(comfy_inprocess, places):
    out = places["out"]
    for exists, missing in (
        (str(out / "secret.pfm"), str(out / "missing.pfm")),
        ("../secret.pfm", "../missing.pfm"),
        (str(out / "secret.pfm"), str(out / "secret.jpg")),  # an "unsupported type" outside: the same too
        (str(out), str(out / "nowhere")),  # a folder
        ("/etc/passwd", "/etc/no_such_file"),
    ):
        a = refusal_of(comfy_inprocess, exists).replace(repr(exists), "<name>")
        b = refusal_of(comfy_inprocess, missing).replace(repr(missing), "<name>")
        assert a == b


@pytest.mark.parametrize("text", ["a\x00.pfm", "x" * 5000 + ".pfm", "C:\\secret.pfm", "x.pfm:stream", "a\nb.pfm"])
def test_evaluate_depth_odd_names(comfy_inprocess, places, text):
    message = refusal_of(comfy_inprocess, text)
    assert len(message) < 600


def test_evaluate_depth_annotated_forms_read_inside_comfyui_folders(comfy_inprocess, places):
    disparity = np.ones((H, W), np.float32) * 4.0
    disparity[:, W // 2 :] = 8.0
    for folder, text in (
        ("input", "hostile_gt.pfm"),
        ("output", "hostile_gt.pfm [output]"),
        ("temp", "hostile_gt.pfm [temp]"),
    ):
        (places[folder] / "hostile_gt.pfm").write_bytes(pfm(disparity))
        report = evaluate(comfy_inprocess, text).args[0]
        assert "hostile_gt.pfm" in report and str(places["base"]) not in report  # the name typed, not the server path
    with pytest.raises(ValueError, match="not found"):
        evaluate(comfy_inprocess, "no_such_gt.pfm [output]")  # inside: the user's own folder may say so


def test_evaluate_depth_never_quotes_file_contents(comfy_inprocess, places):
    cases = {
        "hostile_header.pfm": SECRET.encode() + b"\n32 24\n-1\n",
        "hostile_size.pfm": b"Pf\n" + SECRET.encode() + b"\n-1\n",
        "hostile_scale.pfm": b"Pf\n32 24\n" + SECRET.encode() + b"\n",
        "hostile_garbage.png": SECRET.encode() * 8,
        "hostile_garbage.npz": SECRET.encode() * 8,
    }
    for name, data in cases.items():
        (places["input"] / name).write_bytes(data)
        with pytest.raises(ValueError) as err:
            evaluate(comfy_inprocess, name)
        message = str(err.value)
        assert message.startswith(name) and "TOPSEC" not in message and str(places["base"]) not in message, message
    with pytest.raises(ValueError, match="hostile_size.pfm: the PFM size line is not two positive integers"):
        evaluate(comfy_inprocess, "hostile_size.pfm")


def test_evaluate_depth_two_valid_pixels_are_refused(comfy_inprocess, places):
    disparity = np.full((H, W), np.inf, np.float32)
    disparity[0, 0], disparity[5, 5] = 3.0, 6.0
    (places["input"] / "hostile_sparse.pfm").write_bytes(pfm(disparity))
    with pytest.raises(ValueError, match="2 valid ground-truth pixels .* at least 100"):
        evaluate(comfy_inprocess, "hostile_sparse.pfm")


# ------------------------------------------------------------------------------------------ output prefixes
def prefixes(places) -> list[str]:
    return [
        "../../hostile_escape",
        "../hostile_escape",
        str(places["out"] / "hostile_escape"),
        "sub/../../hostile_escape",
        "..\\..\\hostile_escape",
        "C:\\hostile_escape",
        "hostile_link/escape",
        "a\x00b",
        "",
        "..",
        "y" * 300 + "/depth",  # a part longer than file systems allow: refused, not an OSError traceback
        "depth/" + "z" * 300,
    ]


@pytest.fixture()
def output_link(places):
    link = places["output"] / "hostile_link"
    link.symlink_to(places["out"], target_is_directory=True)
    yield link
    link.unlink()


def assert_nothing_written(places, before: dict[str, set[str]]) -> None:
    after = {k: tree(places[k]) for k in before}
    assert after == before
    assert not list(places["base"].parent.glob("hostile_escape*"))


def test_save_depth_prefix_cannot_leave_the_output_folder(comfy_inprocess, places, output_link):
    node = comfy_inprocess.node("Save Depth")
    before = {k: tree(places[k]) for k in ("output", "out", "base")}
    for prefix in prefixes(places):
        for fmt in ("png16", "npy"):
            with pytest.raises(PathRefused, match="filename_prefix .* is refused"):
                node.execute(DepthMap(torch.rand(1, 8, 8)), prefix, fmt)
            if prefix.strip():
                assert "is refused" in node.validate_inputs(format=fmt, filename_prefix=prefix)  # when queued
    assert node.validate_inputs(format="npy", filename_prefix="depth/%date%/ok") is True
    assert_nothing_written(places, before)


def test_normals_ply_prefix_cannot_leave_the_output_folder(comfy_inprocess, places, output_link):
    node = comfy_inprocess.node("Depth to Normals")
    before = {k: tree(places[k]) for k in ("output", "out", "base")}
    for prefix in prefixes(places):
        with pytest.raises(PathRefused, match="filename_prefix .* is refused"):
            node.execute(DepthMap(1.0 + torch.rand(1, 8, 8), "metric"), 60.0, True, prefix, 1)
        if prefix.strip():
            assert "is refused" in node.validate_inputs(save_ply=True, filename_prefix=prefix)
        assert node.validate_inputs(save_ply=False, filename_prefix=prefix) is True  # not written: not checked
    assert_nothing_written(places, before)


def test_video_depth_sequence_prefix_cannot_leave_the_output_folder(comfy_inprocess, places, output_link):
    from comfy_api.latest import InputImpl

    from video_clips import write_clip

    clip = write_clip(places["input"] / "hostile_clip.mkv", np.zeros((2, 16, 16, 3), np.uint8))
    model = comfy_inprocess.node("Load Depth Anything V2").execute(TEST_CHECKPOINT, "fp32", "auto", "auto").args[0]
    node = comfy_inprocess.node("Video Depth")
    before = {k: tree(places[k]) for k in ("output", "out", "base", "temp")}
    for prefix in prefixes(places):
        with pytest.raises(PathRefused, match="filename_prefix .* is refused"):
            node.execute(model, InputImpl.VideoFromFile(str(clip)), prefix, image_sequence="npy", input_size=28)
        if prefix.strip():
            assert "is refused" in node.validate_inputs(image_sequence="npy", filename_prefix=prefix)
        assert node.validate_inputs(image_sequence="none", filename_prefix=prefix) is True
    assert_nothing_written(places, before)


# ------------------------------------------------------------------------------------------ routes
def test_preview_files_route_answers_nothing_about_files_outside(comfy_inprocess, places):
    routes = sys.modules[f"{comfy_inprocess.module.__name__}.nodes.routes"]
    preview_dir = places["temp"] / "dav2_preview"
    preview_dir.mkdir(parents=True, exist_ok=True)
    name = "dav2_depth_0123456789ab_00.png"
    (preview_dir / name).symlink_to(places["out"] / "secret.pfm")  # a preview name leading out
    try:
        names = [name, "../../secret.pfm", str(places["out"] / "secret.pfm"), "..%2F..%2Fsecret.pfm", "\x00"]
        assert routes.preview_files_present(names, str(places["temp"])) == dict.fromkeys(names, False)
    finally:
        (preview_dir / name).unlink()
