"""What the pack costs a ComfyUI server that has not used it yet: loading it imports none of the heavy optional
libraries (matplotlib, OpenCV, ONNX Runtime, ONNX); they load when a node first needs them (README, Security)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from comfy_harness import comfyui_dir

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("matplotlib", "cv2", "onnxruntime", "onnx", "openvino", "tensorrt", "ray")

PROBE = """
import json, sys
sys.path.insert(0, {support!r})
from pathlib import Path
import comfy_harness as ch
ch.import_comfyui(ch.comfyui_dir())
import comfy_api.latest  # noqa: F401  (ComfyUI's own imports, before the pack's)
before = set(sys.modules)
base = ch.make_base_dir(Path({base!r}))
pack = ch.load_pack_inprocess(base)
nodes = [k for k in pack.nodes.NODE_CLASS_MAPPINGS if k.startswith("DAV2")]
schemas = [pack.nodes.NODE_CLASS_MAPPINGS[k].GET_SCHEMA() for k in nodes]  # what /object_info builds
print(json.dumps({{"nodes": len(nodes), "new": sorted(m for m in sys.modules if m not in before)}}))
"""


def test_loading_the_pack_imports_no_heavy_library(tmp_path):
    comfyui_dir()  # skips without a ComfyUI checkout
    code = PROBE.format(support=str(ROOT / "tests" / "support"), base=str(tmp_path / "base"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["nodes"] >= 11
    loaded = {m.split(".")[0] for m in result["new"]}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
