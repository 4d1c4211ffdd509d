"""dav2_core.paths (the one rule for user-supplied paths) and the ground-truth readers, engine only: every
refusal is the one message, it never depends on what exists outside, and no reader quotes file bytes."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from dav2_core.depth import DepthMap
from dav2_core.effects import save_depth
from dav2_core.evaluate import MIN_VALID_PIXELS, evaluate_depth
from dav2_core.ground_truth import from_array, read_ground_truth, read_mask, read_pfm
from dav2_core.io import ImageReadError, read_image
from dav2_core.paths import MAX_CHARS, PathRefused, confine, confine_prefix, refusal, split_annotation

SECRET = "TOPSECRET-4242"


@pytest.fixture()
def roots(tmp_path: Path) -> dict[str, Path]:
    """input/output/temp folders under a base folder that also holds files outside them."""
    folders = {k: tmp_path / "base" / k for k in ("input", "output", "temp")}
    for f in folders.values():
        f.mkdir(parents=True)
    (tmp_path / "base" / "secret.txt").write_text(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.pfm").write_bytes(pfm_bytes(np.ones((2, 2), np.float32)))
    return folders


def pfm_bytes(values: np.ndarray, size_line: bytes | None = None, scale_line: bytes = b"-1.0") -> bytes:
    h, w = values.shape
    size = size_line if size_line is not None else f"{w} {h}".encode()
    return b"Pf\n" + size + b"\n" + scale_line + b"\n" + values[::-1].astype("<f4").tobytes()


def refused(text, roots, default="input", what="gt_file") -> str:
    with pytest.raises(PathRefused) as err:
        confine(text, roots, default, what)
    assert str(err.value) == refusal(what, text, roots, default)  # always the one message
    return str(err.value)


# ------------------------------------------------------------------------------------------ confine
def test_names_inside_the_roots_resolve(roots):
    (roots["input"] / "sub").mkdir()
    assert confine("a.png", roots) == roots["input"].resolve() / "a.png"
    assert confine("sub/a.png", roots) == roots["input"].resolve() / "sub" / "a.png"
    assert confine("  sub//./a.png  ", roots) == roots["input"].resolve() / "sub" / "a.png"
    assert confine("sub\\a.png", roots) == roots["input"].resolve() / "sub" / "a.png"  # a Windows separator
    assert confine("a.png [input]", roots) == roots["input"].resolve() / "a.png"
    assert confine("a.png [output]", roots) == roots["output"].resolve() / "a.png"
    assert confine("sub/a.png [temp]", roots) == roots["temp"].resolve() / "sub" / "a.png"
    assert confine("a.png", roots, default="output") == roots["output"].resolve() / "a.png"


def test_core_annotation_rule():
    assert split_annotation("x.png [output]") == ("x.png", "output")
    assert split_annotation("x.png [temp]") == ("x.png", "temp")
    assert split_annotation("x.png [input]") == ("x.png", "input")
    assert split_annotation("x.png[output]") == ("x.png", "output")  # core would cut the 'g' off
    assert split_annotation("[output] x.png") == ("[output] x.png", None)  # only at the very end
    assert split_annotation("x.png") == ("x.png", None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "/etc/passwd",
        "//etc/passwd",
        "../secret.txt",
        "../../outside/secret.pfm",
        "sub/../../secret.txt",
        "..",
        ".",
        "..\\secret.txt",
        "sub\\..\\..\\secret.txt",
        "C:\\Windows\\win.ini",
        "C:secret.txt",
        "\\\\server\\share\\x.png",
        "//server/share/x.png",
        "x.png:stream",
        "a\x00.png",
        "a.png\x00.txt",
        "a\n.png",
        "../secret.txt [output]",
        "/etc/passwd [temp]",
        "x" * (MAX_CHARS + 1),
        "a/" + "y" * 256 + "/b.png",
    ],
)
def test_refused_lexically(roots, text):
    message = refused(text, roots)
    assert SECRET not in message and len(message) < 600  # a huge name is shortened in the message


def test_annotation_for_a_root_the_caller_does_not_allow(roots):
    inputs_only = {"input": roots["input"]}
    refused("a.png [output]", inputs_only)
    refused("a.png [temp]", inputs_only)
    assert "[output]" not in refusal("gt_file", "x", inputs_only, "input")  # offers only the allowed forms


def test_non_text_is_refused(roots):
    for value in (None, 3, b"a.png", ["a.png"]):
        refused(value, roots)


def test_links_leading_out_are_refused_whether_or_not_the_target_exists(roots, tmp_path):
    outside = tmp_path / "outside"
    (roots["input"] / "to_file").symlink_to(outside / "secret.pfm")
    (roots["input"] / "to_missing").symlink_to(outside / "missing.pfm")
    (roots["input"] / "to_dir").symlink_to(outside, target_is_directory=True)
    (roots["input"] / "loop").symlink_to(roots["input"] / "loop")
    for text in ("to_file", "to_missing", "to_dir/secret.pfm", "to_dir/missing.pfm", "to_dir"):
        refused(text, roots)
    loop = confine("loop", roots)  # a link loop inside is no escape: no OSError here, the reader finds no file
    assert loop.parent == roots["input"].resolve() and not loop.is_file()
    inner = roots["input"] / "inner"
    inner.mkdir()
    (roots["input"] / "to_inner").symlink_to(inner, target_is_directory=True)
    assert confine("to_inner/a.png", roots) == inner.resolve() / "a.png"  # a link that stays inside is fine


def test_no_existence_oracle(roots, tmp_path):
    """A remote user learns nothing from the answer: an existing and a missing file outside read the same."""
    pairs = [
        (str(tmp_path / "outside" / "secret.pfm"), str(tmp_path / "outside" / "nothing.pfm")),
        ("../../outside/secret.pfm", "../../outside/nothing.pfm"),
        ("../secret.txt", "../nothing.txt"),
        ("../../outside", "../../nowhere"),
    ]
    for exists, missing in pairs:
        a = refused(exists, roots).replace(repr(exists), "<name>")
        b = refused(missing, roots).replace(repr(missing), "<name>")
        assert a == b


def test_a_root_that_is_itself_a_link_works(tmp_path):
    real = tmp_path / "real_input"
    real.mkdir()
    (tmp_path / "linked_input").symlink_to(real, target_is_directory=True)
    assert confine("a.png", {"input": tmp_path / "linked_input"}) == real.resolve() / "a.png"


# ------------------------------------------------------------------------------------------ output prefixes
def test_prefixes_inside_the_output_folder(roots):
    assert confine_prefix("depth/dav2", roots["output"]) == "depth/dav2"
    assert confine_prefix(" depth\\%date%/dav2 ", roots["output"]) == "depth/%date%/dav2"
    assert confine_prefix("dav2_depth", roots["output"]) == "dav2_depth"


@pytest.mark.parametrize(
    "prefix",
    ["", " ", "../../x", "../x", "/tmp/x", "a/../../x", "..\\..\\x", "C:\\x", "a\x00b", "x:y", ".", "a/..", None],
)
def test_prefixes_that_leave_the_output_folder_are_refused(roots, prefix):
    with pytest.raises(PathRefused, match="filename_prefix .* is refused"):
        confine_prefix(prefix, roots["output"])


def test_prefix_through_a_link_leading_out_is_refused(roots, tmp_path):
    (roots["output"] / "elsewhere").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(PathRefused):
        confine_prefix("elsewhere/depth", roots["output"])
    with pytest.raises(PathRefused):
        confine_prefix("elsewhere/new/depth", roots["output"])
    assert not (tmp_path / "outside" / "new").exists()  # nothing was created on the way


# ------------------------------------------------------------------------------------------ readers
def test_pfm_bad_header_does_not_echo_bytes(tmp_path):
    path = tmp_path / "gt.pfm"
    path.write_bytes(SECRET.encode() + b"\n4 4\n-1\n" + b"\0" * 64)
    with pytest.raises(ValueError, match="not a PFM file") as err:
        read_ground_truth(path, name="gt.pfm")
    assert "TOPSEC" not in str(err.value) and "gt.pfm" in str(err.value)


@pytest.mark.parametrize(
    ("size_line", "problem"),
    [
        (b"abc def", "size line"),
        (b"4", "size line"),
        (b"4 4 4", "size line"),
        (b"-2 -2", "size line"),
        (b"0 4", "size line"),
        (b"", "size line"),
        (SECRET.encode(), "size line"),
        (b"100000000 100000000", "truncated"),  # refused before reading: no 40 PB allocation
    ],
)
def test_pfm_bad_size_line_names_the_file_and_the_problem(tmp_path, size_line, problem):
    path = tmp_path / "disp.pfm"
    path.write_bytes(pfm_bytes(np.ones((2, 2), np.float32), size_line))
    with pytest.raises(ValueError, match=problem) as err:
        read_pfm(path, "disp.pfm")
    message = str(err.value)
    assert message.startswith("disp.pfm: ") and "int()" not in message and "TOPSEC" not in message


def test_pfm_bad_scale_line_and_extra_data(tmp_path):
    path = tmp_path / "disp.pfm"
    for scale in (b"abc", b"0", b"nan", SECRET.encode()):
        path.write_bytes(pfm_bytes(np.ones((2, 2), np.float32), scale_line=scale))
        with pytest.raises(ValueError, match="scale line") as err:
            read_ground_truth(path, name="disp.pfm")
        assert "TOPSEC" not in str(err.value)
    path.write_bytes(pfm_bytes(np.ones((2, 2), np.float32)) + b"\0\0\0\0")
    with pytest.raises(ValueError, match="longer than its size line"):
        read_ground_truth(path)
    path.write_bytes(pfm_bytes(np.arange(6, dtype=np.float32).reshape(2, 3)))
    assert read_pfm(path).tolist() == [[0, 1, 2], [3, 4, 5]]  # a good file still reads


def test_npy_with_a_bad_header_does_not_echo_it(tmp_path):
    path = tmp_path / "gt.npy"
    header = ("{'descr': '" + SECRET + "', 'fortran_order': False, 'shape': (2, 2), }").ljust(118) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 16)
    with pytest.raises(ValueError) as raw:
        np.load(path, allow_pickle=False)
    assert SECRET in str(raw.value)  # numpy itself quotes the header...
    with pytest.raises(ValueError, match="not a readable .npy ground truth") as err:
        read_ground_truth(path, "depth", name="gt.npy")
    assert SECRET not in str(err.value)  # ...the reader does not


def test_npz_names_and_sidecar_metadata_are_not_quoted(tmp_path):
    np.savez(tmp_path / "gt.npz", **{SECRET: np.ones((2, 2)), "other": np.ones((2, 2))})
    with pytest.raises(ValueError, match="holds 2 arrays") as err:
        read_ground_truth(tmp_path / "gt.npz", "depth")
    assert SECRET not in str(err.value)
    written = save_depth(DepthMap(torch.ones(1, 4, 4), "metric"), tmp_path / "saved", "npy")[0]  # + sidecar
    Path(str(written) + ".json").write_text('{"kind": "' + SECRET + '", "units": "m"}')
    with pytest.raises(ValueError, match="Save Depth metadata") as err:
        read_ground_truth(written, name="saved.npy")
    assert SECRET not in str(err.value) and str(tmp_path) not in str(err.value)


def test_garbage_files_of_every_type_give_a_message_not_a_traceback(tmp_path):
    for suffix in (".png", ".pfm", ".npy", ".npz", ".exr"):
        path = tmp_path / f"garbage{suffix}"
        path.write_bytes(SECRET.encode() * 4)
        with pytest.raises(ValueError) as err:
            read_ground_truth(path, "depth", name=path.name)
        message = str(err.value)
        assert message.startswith(path.name) and SECRET not in message, message
        assert str(tmp_path) not in message  # the server's folder is not shown either


def test_masks_and_images_with_garbage_are_not_quoted(tmp_path):
    header = ("{'descr': '" + SECRET + "', 'fortran_order': False, 'shape': (2, 2), }").ljust(118) + "\n"
    (tmp_path / "mask.npy").write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    with pytest.raises(ValueError, match="not a readable .npy mask") as err:
        read_mask(tmp_path / "mask.npy")
    assert SECRET not in str(err.value)
    for name, data in (("mask.png", SECRET.encode() * 4), ("photo.jpg", b"\xff\xd8" + SECRET.encode() * 4)):
        (tmp_path / name).write_bytes(data)
    with pytest.raises(ValueError, match="not a readable mask image") as err:
        read_mask(tmp_path / "mask.png")
    assert SECRET not in str(err.value)
    with pytest.raises(ImageReadError) as err:
        read_image(tmp_path / "photo.jpg")
    assert SECRET not in str(err.value) and "TOPSEC" not in str(err.value)


# ------------------------------------------------------------------------------------------ minimum of valid pixels
def test_two_valid_pixels_are_refused_not_a_perfect_score():
    gt = torch.full((1, 20, 20), float("nan"))
    gt[0, 0, 0], gt[0, 5, 5] = 1.0, 2.0
    pred = DepthMap(torch.rand(1, 20, 20), "relative")  # random: two pixels would still fit exactly
    with pytest.raises(ValueError, match=f"2 valid ground-truth pixels .* at least {MIN_VALID_PIXELS}"):
        evaluate_depth(pred, from_array(gt, "depth"))
    depth = 1.0 + torch.rand(1, 20, 20, generator=torch.Generator().manual_seed(0))
    few = depth.clone()
    few.view(-1)[MIN_VALID_PIXELS - 1 :] = 0.0  # 99 measured pixels
    with pytest.raises(ValueError, match=f"{MIN_VALID_PIXELS - 1} valid"):
        evaluate_depth(DepthMap(depth, "metric"), from_array(few, "depth"))
    enough = depth.clone()
    enough.view(-1)[MIN_VALID_PIXELS:] = 0.0
    row = evaluate_depth(DepthMap(depth, "metric"), from_array(enough, "depth")).per_image[0]
    assert row["n_valid"] == MIN_VALID_PIXELS and row["abs_rel"] < 1e-9


def test_confine_does_not_read_files(roots, monkeypatch):
    """The answer comes from names and links only: opening a file outside is never attempted."""
    opened = []
    real_open = open

    def spy(file, *args, **kwargs):
        opened.append(os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    refused("../../outside/secret.pfm", roots)
    confine("a.png", roots)
    assert opened == []
