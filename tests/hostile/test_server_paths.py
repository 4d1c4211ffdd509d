"""The path rule through a real ComfyUI server, as a remote user meets it: Evaluate Depth's gt_file refuses
files outside ComfyUI's folders with one message (the same for a file that exists and one that does not), the
browser never sees file contents, Save Depth cannot write outside, the preview_files route answers nothing
about files outside, and the server keeps running."""

from __future__ import annotations

import json

import numpy as np
import pytest

from comfy_harness import PromptError, estimate_graph, execution_error
from test_node_paths import SECRET, H, W, pfm

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def setup(comfy_server) -> dict:
    """A 32x24 photo in the input folder; a valid 32x24 disparity PFM outside (beside the server's base folder
    and beside its input folder) that code reading outside would score, and one in the input folder."""
    rng = np.random.default_rng(0)
    image = comfy_server.upload_image(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), "hostile_photo.png")
    disparity = 1.0 + np.arange(H * W, dtype=np.float32).reshape(H, W) / 100.0
    outside = comfy_server.base_dir.parent / "hostile_server_outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.pfm").write_bytes(pfm(disparity))
    (comfy_server.base_dir / "secret.pfm").write_bytes(pfm(disparity))
    (comfy_server.input_dir / "hostile_gt.pfm").write_bytes(pfm(disparity))
    (comfy_server.input_dir / "hostile_header.pfm").write_bytes(SECRET.encode() + b"\n32 24\n-1\n")
    return {"image": image, "outside": outside}


def evaluate_graph(image: str, gt_file: str) -> dict:
    """LoadImage (1) -> Load Depth Anything V2 (2) -> Estimate Depth (3) -> Evaluate Depth (4) of ``gt_file``."""
    graph, _, estimate = estimate_graph(image)
    graph.add("DAV2EvaluateDepth", depth=estimate["depth"], gt_file=gt_file)
    return graph.to_api()


def error_of(server, g: dict) -> str:
    entry = server.run(g)
    error = execution_error(entry)
    assert error is not None, json.dumps(entry.get("outputs"))[:2000]
    assert "Traceback" not in error["exception_message"]
    return error["exception_message"]


def refusal_of(server, g: dict, node: str = "4") -> str:
    """The validation message /prompt answers for node ``node``: path refusals stop the graph when queued."""
    with pytest.raises(PromptError) as err:
        server.queue_prompt(g)
    errors = err.value.body["node_errors"][node]["errors"]
    assert errors and all(e["type"] == "custom_validation_failed" for e in errors), errors  # one per input checked
    return errors[0]["details"]


def test_evaluate_depth_on_a_server_reads_only_inside(comfy_server, setup):
    ok = comfy_server.run(evaluate_graph(setup["image"], "hostile_gt.pfm"))
    assert ok["status"]["status_str"] == "success", json.dumps(execution_error(ok))[:2000]
    assert "hostile_gt.pfm" in ok["outputs"]["4"]["text"][0]  # a file in the input folder is scored
    messages = {}
    for text in (str(setup["outside"] / "secret.pfm"), "../secret.pfm", "../../hostile_server_outside/secret.pfm"):
        message = refusal_of(comfy_server, evaluate_graph(setup["image"], text))
        assert f"gt_file {text!r} is refused" in message, message
        messages[text] = message
    # one message: an existing file outside and a missing one (or another type) read the same
    for exists, other in (
        (str(setup["outside"] / "secret.pfm"), str(setup["outside"] / "missing.pfm")),
        ("../secret.pfm", "../missing.jpg"),
    ):
        a = messages[exists].replace(repr(exists), "<name>")
        b = refusal_of(comfy_server, evaluate_graph(setup["image"], other)).replace(repr(other), "<name>")
        assert a == b
    message = error_of(comfy_server, evaluate_graph(setup["image"], "hostile_header.pfm"))
    assert message.startswith("hostile_header.pfm: not a PFM file") and "TOPSEC" not in message
    assert str(comfy_server.base_dir) not in message
    assert comfy_server.alive()


def test_save_depth_prefix_on_a_server_cannot_leave_the_output_folder(comfy_server, setup):
    escape = comfy_server.base_dir.parent / "hostile_server_escape"
    for prefix in ("../../hostile_server_escape/x", str(escape / "x"), "../hostile_server_escape"):
        graph, _, estimate = estimate_graph(setup["image"])
        graph.add("DAV2SaveDepth", depth=estimate["depth"], filename_prefix=prefix, format="npy")
        message = refusal_of(comfy_server, graph.to_api())
        assert f"filename_prefix {prefix!r} is refused" in message, message
    assert not escape.exists() and not (comfy_server.base_dir / "hostile_server_escape").exists()
    assert comfy_server.alive()


def test_preview_files_route_with_traversal(comfy_server, setup):
    names = ["../../secret.pfm", "..%2F..%2Fsecret.pfm", str(setup["outside"] / "secret.pfm"), "dav2_depth_zz_00.png"]
    import requests

    r = requests.get(comfy_server.url + "/dav2/preview_files", params={"names": "/".join(names)}, timeout=30)
    assert r.status_code == 200
    assert not any(r.json().values())  # every answer False: nothing about files outside
