"""Hostile checkpoints: a pickle that would run code is refused as such (never "corrupted", never torch's
``weights_only=False`` advice) and nothing in it runs, whatever the pickle protocol or container; broken
pickles stay "corrupted". Through the engine and through the ``dav2`` CLI (exit 2, one line, no traceback).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from dav2_core import cli
from dav2_core.checkpoints import CheckpointError, load_checkpoint
from dav2_core.checkpoints.read import CheckpointFile, code_globals


class _Touch:
    """Unpickling this calls ``os.system('touch MARKER')``: live code (os/posix is on torch's blocklist)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Open:
    """Unpickling this calls ``open(MARKER, 'w')`` (builtins: not blocklisted, merely not allowed)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil(path: Path, how: str, payload: object) -> Path:
    state = {"pretrained.cls_token": torch.zeros(1, 1, 384), "hook": payload}
    if how == "torch.save":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state, protocol=int(how.removeprefix("protocol-"))))
    return path


def _assert_refused_as_code(text: str, path: Path) -> None:
    assert str(path) in text
    assert "wants to run code" in text and "nothing was executed" in text, text
    assert "weights_only" not in text and "Re-running" not in text, text  # torch's advice is never relayed
    assert "corrupted" not in text, text


@pytest.mark.parametrize("how", ["torch.save", "protocol-2", "protocol-4", "protocol-5"])
@pytest.mark.parametrize("payload", [_Touch, _Open])
def test_pickle_that_runs_code_is_refused_as_such_and_never_runs(tmp_path, how, payload):
    marker = tmp_path / "PWNED"
    path = _evil(tmp_path / "depth_anything_v2_vits.pth", how, payload(marker))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    _assert_refused_as_code(str(exc.value), path)
    called = ".system" if payload is _Touch else ".open"  # posix/nt.system; builtins/io.open by protocol
    assert "its pickle calls " in str(exc.value) and called in str(exc.value)
    assert not marker.exists()


def test_payload_really_is_live(tmp_path):
    """Guards the test above: unpickled without the weights-only guard, the payload does create its marker."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Touch(marker), protocol=4))
    assert marker.exists()


def test_detection_does_not_depend_on_torchs_wording(tmp_path, monkeypatch):
    """The verdict comes from the pickle's opcodes: torch saying something else entirely changes nothing."""
    path = _evil(tmp_path / "evil.pth", "torch.save", _Touch(tmp_path / "PWNED"))

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError("some future wording, with no known keyword")

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    _assert_refused_as_code(str(exc.value), path)


def test_clean_checkpoint_names_no_code(tmp_path):
    """A genuine torch.save of tensors imports only allowed globals: the scanner finds nothing."""
    path = tmp_path / "clean.pth"
    torch.save({"a": torch.zeros(3), "b": torch.ones(2, dtype=torch.float16)}, path)
    assert code_globals(CheckpointFile.open(path)) == []


@pytest.mark.parametrize("cut", [0.3, 0.7])
def test_truncated_and_garbage_pickles_are_corrupted_not_code(tmp_path, cut):
    good = tmp_path / "good.pth"
    torch.save({"a": torch.zeros(64)}, good)
    legacy = tmp_path / "legacy.pth"
    torch.save({"a": torch.zeros(64)}, legacy, _use_new_zipfile_serialization=False)
    data = legacy.read_bytes()
    broken = tmp_path / "depth_anything_v2_vits.pth"
    broken.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(broken)
    text = str(exc.value)
    assert "truncated or corrupted" in text and "run code" not in text and "weights_only" not in text, text


def test_cli_refuses_a_code_pickle_with_one_line_and_exit_2(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    path = _evil(tmp_path / "evil.pth", "protocol-2", _Touch(marker))
    image = tmp_path / "in.png"
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    status = cli.main([str(image), "-o", str(tmp_path / "out"), "--checkpoint", str(path), "--device", "cpu", "-q"])
    err = capsys.readouterr().err
    assert status == 2
    assert "Traceback" not in err and err.startswith("dav2: error: ")
    _assert_refused_as_code(err, path)
    assert not marker.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
