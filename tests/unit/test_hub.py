"""resolve_checkpoint: local files first (official and kijai names), downloads via huggingface_hub, clear offline errors.

No test touches the network: hf_hub_download is replaced by a stub wherever it could be reached, or runs
over a fake in-process transport (``broken_hub_transport``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from huggingface_hub.errors import LocalEntryNotFoundError

from checkpoint_factory import write_checkpoint
from dav2_core import hub
from dav2_core.checkpoints import load_checkpoint
from dav2_core.hub import HubUnavailableError, local_filenames, resolve_checkpoint
from dav2_core.variants import VARIANTS


@pytest.fixture
def no_network(monkeypatch):
    """Any call into huggingface_hub's downloader fails the test."""

    def forbidden(*args, **kwargs):
        raise AssertionError(f"hf_hub_download must not be called here (args {args})")

    monkeypatch.setattr(hub, "hf_hub_download", forbidden)


@pytest.fixture
def resolvable_hub(monkeypatch):
    """Pretend huggingface.co resolves, so the (stubbed) downloader is reached."""
    monkeypatch.setattr(hub, "hub_unreachable_reason", lambda: None)


@pytest.fixture
def online(monkeypatch):
    """HF_HUB_OFFLINE unset, in the environment and in huggingface_hub's constants: downloads are allowed."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _unavailable_when_download_raises(
    error: BaseException, variant: str, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> HubUnavailableError:
    """Resolve ``variant`` into ``folder`` while every download raises ``error``; the HubUnavailableError that
    comes instead, checked to say where the file belongs."""

    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(hub, "hf_hub_download", fails)
    with pytest.raises(HubUnavailableError) as exc:
        resolve_checkpoint(variant, folder)
    _assert_tells_where(str(exc.value), variant, folder)
    return exc.value


@pytest.fixture
def offline(monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def _assert_tells_where(text: str, variant_name: str, models_dir: Path) -> None:
    variant = VARIANTS[variant_name]
    assert variant.filename in text, text
    assert str(models_dir.resolve() / variant.filename) in text, text
    assert f"https://huggingface.co/{variant.hf_repo}" in text, text


@pytest.mark.parametrize("name", ["vits", "vitl", "metric_hypersim_vitb", "metric_vkitti_vits"])
def test_offline_missing_file_says_what_where_and_from_where(tmp_path, offline, name):
    with pytest.raises(HubUnavailableError) as exc:
        resolve_checkpoint(name, tmp_path / "models")
    _assert_tells_where(str(exc.value), name, tmp_path / "models")
    assert "HF_HUB_OFFLINE" in str(exc.value)


def test_offline_env_set_after_import_is_honoured(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # huggingface_hub read the env before it was set
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE"):
        resolve_checkpoint("vits", tmp_path)


@pytest.mark.parametrize(
    "error",
    [
        LocalEntryNotFoundError("cannot find the requested files in the local cache"),
        ConnectionError("Name or service not known"),
    ],
)
def test_connection_errors_become_hub_unavailable(tmp_path, monkeypatch, online, resolvable_hub, error):
    failure = _unavailable_when_download_raises(error, "vitb", tmp_path, monkeypatch)
    assert type(error).__name__ in str(failure) and failure.__cause__ is error


def _transport():
    """The HTTP library huggingface_hub talks through (requests, httpx or httpx2, by its version)."""
    import importlib

    from huggingface_hub import errors

    return importlib.import_module(errors.HTTPError.__module__.split(".")[0])


def test_transport_errors_become_hub_unavailable(tmp_path, monkeypatch, online, resolvable_hub):
    """huggingface_hub >= 1 talks through httpx / httpx2, whose transport errors are not OSErrors."""
    error = _transport().ConnectError("connection refused")
    failure = _unavailable_when_download_raises(error, "metric_hypersim_vitl", tmp_path, monkeypatch)
    assert failure.__cause__ is error


@pytest.fixture
def broken_hub_transport(monkeypatch, online, resolvable_hub):
    """huggingface_hub's real downloader over a fake network: HEAD answers, the body stops after 100 of 1000
    bytes (a connection dropped mid-download). Nothing leaves this process."""
    import huggingface_hub
    from huggingface_hub.utils import _http

    if not hasattr(huggingface_hub, "set_client_factory") or _transport().__name__ == "requests":
        pytest.skip("this huggingface_hub has no httpx client factory to fake the network with")
    transport = _transport()

    def handler(request):
        if request.method == "HEAD":
            headers = {"X-Repo-Commit": "a" * 40, "ETag": '"e1"', "Content-Length": "1000"}
            return transport.Response(200, headers=headers, request=request)
        return transport.Response(200, headers={"Content-Length": "1000"}, content=b"x" * 100, request=request)

    previous = _http._GLOBAL_CLIENT_FACTORY
    huggingface_hub.set_client_factory(lambda: transport.Client(transport=transport.MockTransport(handler)))
    yield
    huggingface_hub.set_client_factory(previous)


@pytest.mark.parametrize("folder_exists", [True, False])
def test_failed_download_leaves_nothing_behind(tmp_path, broken_hub_transport, folder_exists):
    models = tmp_path / "models"
    if folder_exists:
        old = models / ".cache" / "huggingface" / "download" / "mine.txt"  # someone else's: must survive
        old.parent.mkdir(parents=True)
        old.write_text("keep")
        (models / "depth_anything_v2_vitb.pth").write_bytes(b"another variant's file")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(HubUnavailableError) as exc:
        resolve_checkpoint("vits", models)
    _assert_tells_where(str(exc.value), "vits", models)
    assert sorted(tmp_path.rglob("*")) == before  # no .lock, .metadata, .incomplete or folder left


def test_download_goes_to_models_dir(tmp_path, monkeypatch, online, resolvable_hub):
    calls = []

    def fake_download(repo_id, filename, local_dir):
        calls.append((repo_id, filename, Path(local_dir)))
        out = Path(local_dir) / filename
        out.write_bytes(b"weights")
        return str(out)

    monkeypatch.setattr(hub, "hf_hub_download", fake_download)
    models = tmp_path / "new" / "models"
    path = resolve_checkpoint("metric_vkitti_vitb", models)
    variant = VARIANTS["metric_vkitti_vitb"]
    assert calls == [(variant.hf_repo, variant.filename, models.resolve())]
    assert path == models.resolve() / variant.filename and path.read_bytes() == b"weights"


def test_present_file_is_returned_without_network(tmp_path, offline):
    (tmp_path / "depth_anything_v2_vitb.pth").write_bytes(b"x")
    assert resolve_checkpoint("vitb", tmp_path) == (tmp_path / "depth_anything_v2_vitb.pth").resolve()


def test_kijai_names_are_found_and_load(tmp_path, offline):
    kijai = write_checkpoint(tmp_path / "depth_anything_v2_vits_fp16.safetensors", "vits", "kijai-fp16")
    found = resolve_checkpoint("vits", tmp_path)
    assert found == kijai.resolve()
    _, info = load_checkpoint(found, expected_encoder="vits")
    assert info.dtype == torch.float16


def test_kijai_metric_name_and_preference_order(tmp_path, offline):
    metric = tmp_path / "depth_anything_v2_metric_hypersim_vitl_fp32.safetensors"
    metric.write_bytes(b"x")
    assert resolve_checkpoint("metric_hypersim_vitl", tmp_path) == metric.resolve()
    with pytest.raises(HubUnavailableError):  # the Hypersim file does not stand in for the VKITTI one
        resolve_checkpoint("metric_vkitti_vitl", tmp_path)
    (tmp_path / "depth_anything_v2_vitl_fp16.safetensors").write_bytes(b"x")
    (tmp_path / "depth_anything_v2_vitl_fp32.safetensors").write_bytes(b"x")
    assert resolve_checkpoint("vitl", tmp_path).name == "depth_anything_v2_vitl_fp32.safetensors"
    (tmp_path / "depth_anything_v2_vitl.pth").write_bytes(b"x")
    assert resolve_checkpoint("vitl", tmp_path).name == "depth_anything_v2_vitl.pth"
    assert local_filenames(VARIANTS["vits"]) == (
        "depth_anything_v2_vits.pth",
        "depth_anything_v2_vits_fp32.safetensors",
        "depth_anything_v2_vits_fp16.safetensors",
    )


def test_vitg_has_no_published_file(tmp_path, online, no_network):
    with pytest.raises(HubUnavailableError) as exc:
        resolve_checkpoint("vitg", tmp_path)
    text = str(exc.value)
    assert "no published checkpoint" in text and str(tmp_path.resolve() / "depth_anything_v2_vitg.pth") in text
    (tmp_path / "depth_anything_v2_vitg.pth").write_bytes(b"x")
    assert resolve_checkpoint("vitg", tmp_path).name == "depth_anything_v2_vitg.pth"


def test_unknown_variant_lists_the_valid_ones(tmp_path, offline):
    with pytest.raises(ValueError, match="metric_hypersim_vitl"):
        resolve_checkpoint("vitx", tmp_path)


def test_unresolvable_hub_fails_at_once_without_retries(tmp_path, monkeypatch, online, no_network):
    """No network at all (the host does not resolve): the error comes at once, the downloader is never called."""
    import socket

    def no_dns(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(HubUnavailableError, match="Hub is unreachable.*cannot resolve huggingface.co") as exc:
        resolve_checkpoint("vits", tmp_path / "models")
    _assert_tells_where(str(exc.value), "vits", tmp_path / "models")
