"""Checkpoint formats, variant detection and every bad checkpoint input (CPU, vits random-init)."""

from __future__ import annotations

import builtins
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from checkpoint_factory import FORMATS, hf_config, make_state_dict, write_checkpoint
from dav2_core import checkpoints
from dav2_core.checkpoints import (
    CheckpointError,
    CheckpointInfo,
    detect_variant,
    expected_shapes,
    load_checkpoint,
    read_metadata,
    read_state_dict,
    save_checkpoint,
    to_official_keys,
)
from dav2_core.variants import ENCODERS

SUFFIX = {"official-pth": ".pth"}


def _name(fmt: str) -> str:
    return f"ckpt_{fmt}{SUFFIX.get(fmt, '.safetensors')}"


@pytest.fixture(scope="module")
def ref() -> dict[str, torch.Tensor]:
    return make_state_dict("vits", seed=0)


@pytest.fixture(scope="module")
def official_vits():
    from depth_anything_v2.dpt import DepthAnythingV2

    spec = ENCODERS["vits"]
    return DepthAnythingV2("vits", spec.features, list(spec.out_channels))


@pytest.fixture(scope="module")
def our_vits():
    """dav2_core's own model, or None while that module does not exist yet."""
    try:
        from dav2_core.model import DepthAnythingV2
    except ImportError:
        return None
    return DepthAnythingV2("vits")


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    """One vits checkpoint per format (seed 0), each in its own folder."""
    root = tmp_path_factory.mktemp("formats")
    return {fmt: write_checkpoint(root / fmt / _name(fmt), "vits", fmt, seed=0) for fmt in FORMATS}


def _hf_meta_state_dict(encoder: str) -> dict[str, torch.Tensor]:
    """Shapes-only state dict of a transformers DepthAnything model (meta device: no memory, no init)."""
    from transformers import DepthAnythingForDepthEstimation

    with torch.device("meta"):
        model = DepthAnythingForDepthEstimation(hf_config(encoder))
    return model.state_dict()


# ----------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_round_trips_into_official_and_our_model(fmt, written, ref, official_vits, our_vits):
    sd, info = load_checkpoint(written[fmt])
    assert info.encoder == "vits" and info.kind == "relative" and info.max_depth is None
    assert info.path == written[fmt]
    assert info.format == {"official-pth": "official-pth", "hf-safetensors": "hf-safetensors"}.get(
        fmt, "official-safetensors"
    )
    assert set(sd) == set(ref)
    # fp16 files hold exactly the fp16 rounding of the weights; every other format is bit-exact
    expect = {k: v.half() for k, v in ref.items()} if fmt == "kijai-fp16" else ref
    assert info.dtype == (torch.float16 if fmt == "kijai-fp16" else torch.float32)
    assert all(torch.equal(sd[k], expect[k]) for k in ref)

    models = [official_vits] + ([our_vits] if our_vits is not None else [])
    for model in models:
        model.load_state_dict(sd, strict=True)
        assert all(torch.equal(v, expect[k].float()) for k, v in model.state_dict().items())
    if our_vits is None:
        pytest.skip("dav2_core.model not there yet (official model checked)")


def test_hf_folder_path_and_config_json(written, ref):
    hf_file = written["hf-safetensors"]
    folder = hf_file.parent / "hf_repo_copy"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(hf_file.read_bytes())
    (folder / "config.json").write_text((hf_file.parent / "config.json").read_text())
    sd, info = load_checkpoint(folder)  # an HF repo folder works like its model.safetensors
    assert info.format == "hf-safetensors" and info.path == folder / "model.safetensors"
    assert info.kind_source == "config.json"
    assert all(torch.equal(sd[k], ref[k]) for k in ref)


def test_wrapped_dicts_module_prefix_and_legacy_pickle(tmp_path, ref):
    torch.save({"model": {f"module.{k}": v for k, v in ref.items()}, "epoch": 3}, tmp_path / "a.pth")
    torch.save({"state_dict": ref, "optimizer": {}}, tmp_path / "b.ckpt")
    torch.save(ref, tmp_path / "c.pt", _use_new_zipfile_serialization=False)
    for name in ("a.pth", "b.ckpt", "c.pt"):
        sd, info = load_checkpoint(tmp_path / name)
        assert info.encoder == "vits" and info.format == "official-pth"
        assert set(sd) == set(ref) and all(torch.equal(sd[k], ref[k]) for k in ref)


def test_extension_is_not_trusted(tmp_path, written, ref):
    swapped = tmp_path / "really_a_pth.safetensors"
    swapped.write_bytes(written["official-pth"].read_bytes())
    sd, info = load_checkpoint(swapped)
    assert info.format == "official-pth" and torch.equal(sd["pretrained.cls_token"], ref["pretrained.cls_token"])


# ------------------------------------------------------------------------------------------ detection
def test_expected_shapes_are_the_official_models(ref):
    assert {k: tuple(v.shape) for k, v in ref.items()} == expected_shapes(ENCODERS["vits"])


@pytest.mark.parametrize("encoder", ["vitb", "vitl", "vitg"])
def test_detects_bigger_encoders_from_hf_shapes(encoder):
    """transformers' in-memory layout (q/k/v, SwiGLU gate/up split) converts and detects, shapes only."""
    sd, layout = to_official_keys(_hf_meta_state_dict(encoder))
    assert layout == "hf"
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected_shapes(ENCODERS[encoder])
    assert detect_variant(sd).encoder == encoder


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_detects_every_encoder_from_our_model_shapes(encoder):
    try:
        from dav2_core.model import DepthAnythingV2
    except ImportError:
        pytest.skip("dav2_core.model not there yet")
    with torch.device("meta"):
        sd = DepthAnythingV2(encoder).state_dict()
    info = detect_variant(sd)
    assert (info.encoder, info.kind, info.kind_source, info.format) == (encoder, "relative", "default", "state-dict")


def test_encoder_comes_from_the_tensors_not_the_file_name(tmp_path):
    path = write_checkpoint(tmp_path / "depth_anything_v2_metric_hypersim_vitb.pth", "vits", "official-pth")
    _, info = load_checkpoint(path)
    # a vits model under a vitb name is not that published file: its name says nothing about the kind either
    assert (info.encoder, info.kind, info.kind_source) == ("vits", "relative", "default")
    with pytest.raises(CheckpointError, match=r"holds a vits model.*you asked for vitb") as exc:
        load_checkpoint(path, expected_encoder="vitb")
    assert str(path) in str(exc.value)
    with pytest.raises(CheckpointError, match="you asked for vitl"):
        load_checkpoint(path, expected_encoder="metric_vkitti_vitl")  # variant ids work too
    assert load_checkpoint(path, expected_encoder="vits")[1].encoder == "vits"
    with pytest.raises(ValueError, match="unknown encoder"):
        load_checkpoint(path, expected_encoder="vitx")


@pytest.mark.parametrize(
    "name,fmt,expected",
    [
        ("depth_anything_v2_metric_hypersim_vits.pth", "official-pth", ("metric", 20.0)),
        ("depth_anything_v2_metric_vkitti_vits_fp32.safetensors", "kijai-fp32", ("metric", 80.0)),  # kijai's name
        ("depth_anything_v2_vits.pth", "official-pth", ("relative", None)),
    ],
)
def test_published_file_name_decides_when_the_file_is_silent(tmp_path, name, fmt, expected):
    path = write_checkpoint(tmp_path / name, "vits", fmt)
    _, info = load_checkpoint(path)
    assert (info.kind, info.max_depth, info.kind_source) == (*expected, "file name")
    _, info = load_checkpoint(path, kind="relative")  # the caller still wins
    assert (info.kind, info.max_depth, info.kind_source) == ("relative", None, "override")
    if expected[0] == "metric":  # kind="metric" alone takes the depth the name gives
        assert load_checkpoint(path, kind="metric")[1].max_depth == expected[1]


def test_metadata_and_config_json_beat_the_file_name(tmp_path):
    meta = write_checkpoint(
        tmp_path / "a" / "depth_anything_v2_metric_hypersim_vits_fp32.safetensors",
        "vits",
        "official-safetensors",
        kind="relative",
    )
    _, info = load_checkpoint(meta)
    assert (info.kind, info.kind_source) == ("relative", "metadata")
    cfg = write_checkpoint(
        tmp_path / "b" / "depth_anything_v2_metric_hypersim_vits_fp32.safetensors", "vits", "kijai-fp32"
    )
    write_checkpoint(tmp_path / "b" / "model.safetensors", "vits", "hf-safetensors", kind="metric", max_depth=80.0)
    _, info = load_checkpoint(cfg)
    assert (info.kind, info.max_depth, info.kind_source) == ("metric", 80.0, "config.json")


def test_metric_from_our_metadata(tmp_path):
    path = write_checkpoint(tmp_path / "m.safetensors", "vits", "official-safetensors", kind="metric", max_depth=20.0)
    assert read_metadata(path)[checkpoints.META_KIND] == "metric"
    _, info = load_checkpoint(path)
    assert (info.kind, info.max_depth, info.kind_source) == ("metric", 20.0, "metadata")


def test_metric_dataset_only_metadata_gives_its_max_depth(tmp_path, ref):
    path = tmp_path / "k.safetensors"
    save_file(dict(ref), path, metadata={"dav2.kind": "metric", "dav2.dataset": "vkitti"})
    _, info = load_checkpoint(path)
    assert (info.kind, info.max_depth) == ("metric", 80.0)


def test_metric_from_hf_config_json(tmp_path):
    path = write_checkpoint(tmp_path / "model.safetensors", "vits", "hf-safetensors", kind="metric", max_depth=80.0)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["depth_estimation_type"] == "metric"
    _, info = load_checkpoint(path)
    assert (info.kind, info.max_depth, info.kind_source, info.format) == (
        "metric",
        80.0,
        "config.json",
        "hf-safetensors",
    )


def test_foreign_config_json_is_ignored(tmp_path):
    path = write_checkpoint(tmp_path / "x.safetensors", "vits", "kijai-fp32")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "depth_estimation_type": "metric"}))
    assert load_checkpoint(path)[1].kind == "relative"


@pytest.mark.parametrize("damage", ["truncated", "binary", "empty"])
def test_unreadable_config_json_is_an_error_not_relative(tmp_path, damage):
    """An HF metric folder whose config.json is broken must not load as relative (wrong depth, silently)."""
    write_checkpoint(tmp_path / "model.safetensors", "vits", "hf-safetensors", kind="metric", max_depth=20.0)
    cfg = tmp_path / "config.json"
    text = cfg.read_text()
    cfg.write_bytes({"truncated": text[: len(text) // 2].encode(), "binary": b"\xff\xfe\x00{", "empty": b""}[damage])
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(tmp_path)
    _assert_clear(exc, cfg, "cannot be read", "relative or metric", "Download the model's config.json again")
    # the caller's kind does not need the config, so it still loads
    _, info = load_checkpoint(tmp_path, kind="metric", max_depth=20.0)
    assert (info.kind, info.max_depth, info.kind_source) == ("metric", 20.0, "override")


def test_one_load_resolves_the_path_and_sniffs_once(tmp_path, written, monkeypatch):
    from collections import Counter

    from dav2_core.checkpoints import read

    calls: Counter[str] = Counter()
    real_sniff, real_open = read._sniff, read.CheckpointFile.open.__func__

    def sniff(path):
        calls["sniff"] += 1
        return real_sniff(path)

    def open_(cls, path):
        calls["open"] += 1
        return real_open(cls, path)

    monkeypatch.setattr(read, "_sniff", sniff)
    monkeypatch.setattr(read.CheckpointFile, "open", classmethod(open_))
    write_checkpoint(tmp_path / "model.safetensors", "vits", "hf-safetensors")
    for path in [*written.values(), tmp_path]:  # tmp_path: an HF model folder
        calls.clear()
        assert load_checkpoint(path)[1].encoder == "vits"
        assert calls == {"open": 1, "sniff": 1}, (path, calls)


def test_caller_override_wins(tmp_path):
    path = write_checkpoint(tmp_path / "m.safetensors", "vits", "official-safetensors", kind="metric", max_depth=20.0)
    _, info = load_checkpoint(path, kind="relative")
    assert (info.kind, info.max_depth, info.kind_source) == ("relative", None, "override")
    _, info = load_checkpoint(path, max_depth=80.0)
    assert (info.kind, info.max_depth, info.kind_source) == ("metric", 80.0, "override")
    _, info = load_checkpoint(path, kind="metric")  # kind alone keeps the file's max_depth
    assert (info.kind, info.max_depth) == ("metric", 20.0)
    rel = write_checkpoint(tmp_path / "r.pth", "vits", "official-pth")
    _, info = load_checkpoint(rel, kind="metric", max_depth=20)
    assert (info.kind, info.max_depth, info.kind_source) == ("metric", 20.0, "override")
    with pytest.raises(CheckpointError, match="max_depth=20"):
        load_checkpoint(rel, kind="metric")  # nothing says how deep
    with pytest.raises(ValueError, match="max_depth only applies to metric"):
        load_checkpoint(rel, kind="relative", max_depth=20)
    with pytest.raises(ValueError, match="kind must be"):
        load_checkpoint(rel, kind="disparity")


# ----------------------------------------------------------------------------------------- bad input
def _assert_clear(exc: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    text = str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert str(path) in text, text
    for word in words:
        assert word in text, text


@pytest.mark.parametrize("fmt", ["official-pth", "kijai-fp16"])
@pytest.mark.parametrize("keep", [0.5, 0.999, 12])
def test_truncated_files(tmp_path, written, fmt, keep):
    data = written[fmt].read_bytes()
    cut = tmp_path / "depth_anything_v2_vits.pth"
    cut.write_bytes(data[: int(len(data) * keep) if keep < 1 else keep])
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(cut)
    _assert_clear(exc, cut, "truncated or corrupted", "https://huggingface.co/depth-anything/Depth-Anything-V2-Small")


def test_garbage_and_empty_and_missing(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1), dtype=torch.uint8).numpy().tobytes()
    )
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(garbage)
    _assert_clear(exc, garbage, "unknown format", "truncated or corrupted", "Delete it")

    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(empty)
    _assert_clear(exc, empty, "empty (0 bytes)", "download it again")

    missing = tmp_path / "nope" / "depth_anything_v2_vits.pth"
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(missing)
    _assert_clear(exc, missing, "no such checkpoint file")

    with pytest.raises(CheckpointError, match="folder without model.safetensors"):
        load_checkpoint(tmp_path)


def _random_pickle_bytes(seed: int) -> bytes:
    """4 KB of random bytes behind a pickle PROTO opcode: what a garbage file starting with 0x80 looks like."""
    rest = torch.randint(0, 256, (4095,), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return b"\x80" + rest.numpy().tobytes()


@pytest.mark.parametrize("seed", range(6))
def test_random_bytes_are_not_called_a_pickle_that_needs_code(tmp_path, seed):
    path = tmp_path / "model.pth"
    path.write_bytes(_random_pickle_bytes(seed))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    _assert_clear(exc, path, "truncated or corrupted", "not a valid PyTorch pickle", "Delete it")
    assert "run code" not in str(exc.value)


@pytest.mark.parametrize(
    "name,data",
    [
        ("passwd", b"root:x:0:0:root:/root:/bin/bash\n"),
        ("notes.txt", None),  # random bytes behind a pickle opcode
        ("picture.png", b"\x89PNG\r\n\x1a\n" + bytes(64)),
        ("empty.txt", b""),
    ],
)
def test_arbitrary_files_are_not_checkpoints_and_get_no_download_advice(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(_random_pickle_bytes(0) if data is None else data)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    _assert_clear(exc, path, "not a checkpoint")
    assert "Delete" not in str(exc.value) and "download it again" not in str(exc.value)


class _Payload:
    """Unpickling this would call open(marker, 'w'), creating the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


@pytest.mark.parametrize("how", ["torch.save", "pickle-protocol-2"])
def test_pickle_with_code_is_refused_and_never_run(tmp_path, ref, how):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    payload = {"model": {"pretrained.cls_token": ref["pretrained.cls_token"]}, "hook": _Payload(marker)}
    if how == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    # the payload really is live: a plain unpickle would create the marker
    assert not marker.exists()
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    _assert_clear(exc, path, "refuses to execute code from a checkpoint", "nothing was executed")
    with pytest.raises(CheckpointError, match="refuses to execute code"):
        read_state_dict(path)
    assert not marker.exists()


def test_payload_is_live_when_unpickled_unsafely(tmp_path):
    """Guards the test above: the crafted payload does run under a plain pickle.loads."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker), protocol=2)).close()
    assert marker.exists()


def test_unrelated_state_dict(tmp_path):
    import torchvision

    path = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    _assert_clear(
        exc,
        path,
        "unknown checkpoint layout",
        "conv1.weight",
        "'pretrained.', 'depth_head.'",
        "'backbone.', 'neck.', 'head.'",
    )


def test_bare_dinov2_backbone_gets_a_hint(tmp_path, ref):
    path = tmp_path / "dinov2_vits14.pth"
    torch.save({k.removeprefix("pretrained."): v for k, v in ref.items() if k.startswith("pretrained.")}, path)
    with pytest.raises(CheckpointError, match="bare DINOv2 backbone"):
        load_checkpoint(path)


def test_incomplete_and_mis_shaped_state_dicts(tmp_path, ref):
    missing = {k: v for k, v in ref.items() if "refinenet2" not in k}
    with pytest.raises(CheckpointError, match=r"missing, e.g. \['depth_head.scratch.refinenet2"):
        detect_variant(missing)
    narrow = write_checkpoint(tmp_path / "n.pth", "vits", "official-pth")
    sd = torch.load(narrow, weights_only=True)
    sd["depth_head.scratch.output_conv1.weight"] = torch.zeros(16, 64, 3, 3)
    torch.save(sd, narrow)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(narrow)
    _assert_clear(exc, narrow, "wrong shape", "output_conv1.weight (16, 64, 3, 3) (expected (32, 64, 3, 3))")
    odd = dict(ref)
    odd["pretrained.cls_token"] = torch.zeros(1, 1, 500)
    with pytest.raises(CheckpointError, match="match no Depth Anything V2 encoder"):
        detect_variant(odd)


def test_broken_hf_layout(tmp_path, written):
    sd = read_state_dict(written["hf-safetensors"])
    sd.pop("backbone.encoder.layer.4.attention.attention.key.weight")
    with pytest.raises(CheckpointError, match=r"block 4 attention weight: found only \['q', 'v'\]"):
        to_official_keys(sd)
    sd = read_state_dict(written["hf-safetensors"])
    sd["neck.something_new.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="no Depth Anything V2 counterpart"):
        to_official_keys(sd)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    _assert_clear(exc, path, "holds no state dict")


def test_bad_metadata_values(tmp_path, ref):
    path = tmp_path / "bad.safetensors"
    save_file(dict(ref), path, metadata={"dav2.kind": "metric", "dav2.max_depth": "deep"})
    with pytest.raises(CheckpointError, match="not a number"):
        load_checkpoint(path)
    assert load_checkpoint(path, max_depth=20.0)[1].max_depth == 20.0  # the override still rescues it
    save_file(dict(ref), path, metadata={"dav2.kind": "disparity"})
    with pytest.raises(CheckpointError, match="neither 'relative' nor 'metric'"):
        load_checkpoint(path)


# -------------------------------------------------------------------------------------------- saving
def test_save_checkpoint_is_atomic_and_validated(tmp_path, ref, monkeypatch):
    info = CheckpointInfo("vits", "metric", 20.0, "official-safetensors", torch.float32)
    out = save_checkpoint(ref, tmp_path / "sub" / "a.safetensors", info)
    meta = read_metadata(out)
    assert (meta["dav2.encoder"], meta["dav2.kind"], float(meta["dav2.max_depth"])) == ("vits", "metric", 20.0)

    with pytest.raises(ValueError, match="tensors are a vits model but info says vitb"):
        save_checkpoint(ref, tmp_path / "b.safetensors", CheckpointInfo("vitb", "relative", None, "x", torch.float32))
    with pytest.raises(ValueError, match=".safetensors extension"):
        save_checkpoint(ref, tmp_path / "b.pth", info)
    assert not (tmp_path / "b.safetensors").exists() and not (tmp_path / "b.pth").exists()

    before = out.read_bytes()

    def dies(*args, **kwargs):
        Path(args[1]).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.write, "save_file", dies)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(ref, out, CheckpointInfo("vits", "relative", None, "x", torch.float32))
    assert out.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.safetensors"]  # no temp file left


def test_make_random_checkpoint_tool(tmp_path, capsys, monkeypatch):
    import importlib.util
    import sys

    # it stands alone: neither tests/ nor the official package (which prints "xFormers not available") is needed
    for module in ("checkpoint_factory", "depth_anything_v2", "depth_anything_v2.dpt"):
        monkeypatch.setitem(sys.modules, module, None)  # importing any of them now fails
    spec = importlib.util.spec_from_file_location(
        "make_random_checkpoint", Path(__file__).parents[2] / "tools" / "make_random_checkpoint.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    default = tmp_path / "random_vits.safetensors"
    assert tool.main(["vits", str(default)]) == 0
    assert "official-safetensors" in capsys.readouterr().out  # the format follows the .safetensors extension
    out = tmp_path / "m.safetensors"
    assert (
        tool.main(["vits", str(out), "--format", "official-safetensors", "--kind", "metric", "--max-depth", "80"]) == 0
    )
    assert "vits, metric 80 m (metadata)" in capsys.readouterr().out
    _, info = load_checkpoint(out)
    assert (info.encoder, info.kind, info.max_depth) == ("vits", "metric", 80.0)
    with pytest.raises(SystemExit):
        tool.main(["vits", str(tmp_path / "n.pth"), "--kind", "metric"])
    assert "--max-depth" in capsys.readouterr().err and not (tmp_path / "n.pth").exists()
