"""tools/setup_comfyui.py's second ComfyUI (0.33 from the shared vendor folder): skipped with a message when the
folder is absent, and a wrong or hostile tarball is refused without leaving a half-extracted tree."""

from __future__ import annotations

import importlib.util
import io
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def setup_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("dav2_setup_comfyui_test", ROOT / "tools" / "setup_comfyui.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "VENDORED_DIR", tmp_path / "comfy" / "ComfyUI-0.33.0")
    monkeypatch.setattr(module, "VENDORED_VENV", tmp_path / "comfy" / "venv-0.33")
    monkeypatch.setenv("DAV2_SHARED_DIR", str(tmp_path / "shared"))
    return module


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_absent_vendor_folder_is_skipped_with_a_message(setup_module, capsys) -> None:
    assert setup_module.install_vendored_comfyui() is None
    out = capsys.readouterr().out
    assert "skipping ComfyUI 0.33.0" in out and "is absent" in out
    assert not setup_module.VENDORED_DIR.exists() and not setup_module.VENDORED_VENV.exists()


def test_a_tarball_of_another_version_is_refused(setup_module, tmp_path: Path) -> None:
    tarball = _tarball(
        tmp_path / "shared" / "vendor" / setup_module.VENDORED_TARBALL,
        {"ComfyUI/main.py": b"", "ComfyUI/comfyui_version.py": b'__version__ = "0.3.60"\n'},
    )
    with pytest.raises(SystemExit, match="does not hold ComfyUI 0.33.0"):
        setup_module.extract_vendored_comfyui(tarball, setup_module.VENDORED_DIR)
    assert not setup_module.VENDORED_DIR.exists()
    assert not [p for p in setup_module.VENDORED_DIR.parent.iterdir() if p.name.startswith(".extract-")]


def test_a_member_escaping_the_folder_is_refused(setup_module, tmp_path: Path) -> None:
    tarball = _tarball(
        tmp_path / "shared" / "vendor" / setup_module.VENDORED_TARBALL,
        {"ComfyUI/comfyui_version.py": b'__version__ = "0.33.0"\n', "../../escaped.txt": b"x"},
    )
    with pytest.raises(tarfile.OutsideDestinationError):
        setup_module.extract_vendored_comfyui(tarball, setup_module.VENDORED_DIR)
    assert not list(tmp_path.rglob("escaped.txt")) and not setup_module.VENDORED_DIR.exists()


def test_the_vendored_tree_extracts_whole(setup_module, tmp_path: Path) -> None:
    tarball = _tarball(
        tmp_path / "shared" / "vendor" / setup_module.VENDORED_TARBALL,
        {"ComfyUI/main.py": b"print()\n", "ComfyUI/comfyui_version.py": b'__version__ = "0.33.0"\n'},
    )
    setup_module.extract_vendored_comfyui(tarball, setup_module.VENDORED_DIR)
    assert (setup_module.VENDORED_DIR / "main.py").read_text() == "print()\n"


def test_a_checkout_run_by_the_wrong_interpreter_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness refuses (skips with the fix) a ComfyUI whose pinned frontend this interpreter lacks, e.g. 0.33
    run by the project venv."""
    import comfy_harness

    checkout = tmp_path / "ComfyUI"
    checkout.mkdir()
    (checkout / "main.py").write_text("")
    (checkout / "requirements.txt").write_text("comfyui-frontend-package==0.0.1\ntorch\n")
    message = comfy_harness.environment_mismatch(checkout)
    assert message and "0.0.1" in message and "venv-0.33" in message
    monkeypatch.setenv("COMFYUI_DIR", str(checkout))
    with pytest.raises(pytest.skip.Exception, match="own environment"):
        comfy_harness.comfyui_dir()
    (checkout / "requirements.txt").write_text("torch\n")  # pins no frontend: nothing to check
    assert comfy_harness.environment_mismatch(checkout) is None
