"""Real-ComfyUI test harness: locate ComfyUI, load this pack in-process, run a real server.

No fake ``comfy``/``folder_paths``/``comfy_api`` modules: everything goes through the ComfyUI checkout
in ``COMFYUI_DIR`` (default ``<repo>/.comfyui/ComfyUI``, installed by ``make comfyui-setup``), run by this
interpreter (in-process, and ``sys.executable`` for the servers). Two ComfyUI versions are tested, each with its
own environment: 0.3.75 in the project venv (the default) and 0.33.0 (``.comfyui/ComfyUI-0.33.0``, run by
``.comfyui/venv-0.33/bin/python`` with ``COMFYUI_DIR`` pointing at it: tools/run_tests.sh does both passes).
:func:`comfyui_dir` refuses a checkout whose pinned frontend is not the one this interpreter has (the wrong venv).

* :func:`comfyui_dir` finds the checkout (tests skip with the reason when it is missing).
* :func:`load_pack_inprocess` imports ComfyUI's own modules and loads the pack with ComfyUI's
  ``nodes.load_custom_node`` from a ``custom_nodes`` folder, exactly like ``main.py`` does.
* :class:`ComfyServer` starts ``main.py --cpu`` on a free 127.0.0.1 port with its own base directory
  (custom_nodes with the pack linked, models, input, output, temp, user), talks to its HTTP API and
  stops it by PID. The session fixture ``comfy_server`` (defined in ``tests/conftest.py`` over :func:`start_test_server`) shares
  one server between all server and browser tests.

Importing this module is cheap: ComfyUI is imported only when a fixture or helper needs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tools.graphs import Graph, Node, Output

ROOT = Path(__file__).resolve().parents[2]
PACK_NAME = "comfyui-depth-anything-v2-pro"
DEFAULT_COMFYUI_DIR = ROOT / ".comfyui" / "ComfyUI"
MODEL_FOLDER = "depthanything"
#: The pack's node ids (ComfyUI's NODE_CLASS_MAPPINGS keys) by display name.
NODE_IDS = {
    "Load Depth Anything V2": "DAV2ModelLoader",
    "Estimate Depth": "DAV2EstimateDepth",
    "Colorize Depth": "DAV2ColorizeDepth",
    "Depth Stats": "DAV2DepthStats",
    "Depth Bokeh": "DAV2DepthBokeh",
    "Depth Parallax": "DAV2DepthParallax",
    "Calibrate Depth to Metric": "DAV2CalibrateDepth",
    "Save Depth": "DAV2SaveDepth",
    "Depth to Normals": "DAV2DepthToNormals",
    "Evaluate Depth": "DAV2EvaluateDepth",
    "Video Depth": "DAV2VideoDepth",
    "Depth to Mesh": "DAV2DepthToMesh",
    "Camera from Photo EXIF": "DAV2CameraFromExif",
    "Core Geometry to Depth": "DAV2GeometryToDepth",
}
#: Nodes offered only where the running ComfyUI has what they need (nodes/api.py): core's MESH type, core's
#: DA3/MoGe geometry types. Tests take the others as always registered.
CONDITIONAL_NODES = {"Depth to Mesh", "Core Geometry to Depth"}


def offered_nodes(mappings: dict) -> dict[str, str]:
    """NODE_IDS entries the running ComfyUI registered, failing for a missing unconditional one."""
    missing = [d for d, i in NODE_IDS.items() if i not in mappings and d not in CONDITIONAL_NODES]
    assert not missing, f"not registered: {missing}"
    return {d: i for d, i in NODE_IDS.items() if i in mappings}


#: File name of the seeded random-init checkpoint the fixtures put in the model folder.
TEST_CHECKPOINT = "dav2_random_vits.safetensors"
#: The server fixture also links it under the official vits name, so the example workflows run as
#: shipped (they select the official file) without downloading anything.
OFFICIAL_VITS = "depth_anything_v2_vits.pth"
SERVER_START_TIMEOUT = float(os.environ.get("DAV2_COMFY_START_TIMEOUT", "300"))


# --------------------------------------------------------------------------- locating ComfyUI


def load_nodes_module(name: str) -> Any:
    """A module of the pack's ``nodes/`` (e.g. "preview"), loaded without ComfyUI: as a submodule of a
    stand-in package, because ``nodes`` must never be imported as a top-level package (ComfyUI owns the name)
    and the real package imports ComfyUI. Only for modules that need no ComfyUI import themselves."""
    import importlib.util
    import types

    package = "dav2_nodes_under_test"
    if package not in sys.modules:
        stub = types.ModuleType(package)
        stub.__path__ = [str(ROOT / "nodes")]
        sys.modules[package] = stub
    full = f"{package}.{name}"
    if full not in sys.modules:
        spec = importlib.util.spec_from_file_location(full, ROOT / "nodes" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        spec.loader.exec_module(module)
    return sys.modules[full]


def comfyui_dir() -> Path:
    """The ComfyUI checkout to test against, or ``pytest.skip`` saying how to install one (or which interpreter
    runs it)."""
    path = Path(os.environ.get("COMFYUI_DIR") or DEFAULT_COMFYUI_DIR).expanduser().resolve()
    if not (path / "main.py").is_file():
        pytest.skip(
            f"no ComfyUI checkout at {path} (main.py missing): run `make comfyui-setup` "
            "or set COMFYUI_DIR to a ComfyUI folder"
        )
    mismatch = environment_mismatch(path)
    if mismatch:
        pytest.skip(mismatch)
    return path


def comfyui_version(path: Path | None = None) -> tuple[int, ...]:
    """The version of a ComfyUI checkout (default: the one under test) from its ``comfyui_version.py``, e.g.
    (0, 3, 75); (0,) when the file does not say."""
    import re

    path = path or Path(os.environ.get("COMFYUI_DIR") or DEFAULT_COMFYUI_DIR).expanduser().resolve()
    try:
        text = (path / "comfyui_version.py").read_text(encoding="utf-8")
    except OSError:
        return (0,)
    found = re.search(r"__version__\s*=\s*[\"']([0-9.]+)", text)
    return tuple(int(x) for x in found.group(1).split(".")) if found else (0,)


def pinned_frontend(path: Path) -> str | None:
    """The ``comfyui-frontend-package`` version a checkout's requirements.txt pins (None when it pins none)."""
    import re

    try:
        text = (path / "requirements.txt").read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"^comfyui[-_]frontend[-_]package==([0-9.]+)", text, re.M | re.I)
    return found.group(1) if found else None


def environment_mismatch(path: Path) -> str | None:
    """Why this interpreter cannot run the checkout at ``path`` (its pinned frontend is not installed here: the
    checkout has its own venv), or None."""
    import importlib.metadata

    pinned = pinned_frontend(path)
    if pinned is None:
        return None
    try:
        installed = importlib.metadata.version("comfyui-frontend-package")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed == pinned:
        return None
    return (
        f"ComfyUI at {path} pins comfyui-frontend-package {pinned}, but {sys.executable} has {installed}: run "
        "its tests with its own environment (ComfyUI 0.33: COMFYUI_DIR=.comfyui/ComfyUI-0.33.0 "
        ".comfyui/venv-0.33/bin/python -m pytest ..., as tools/run_tests.sh does)"
    )


def make_base_dir(base: Path, checkpoint: Path | None = None) -> Path:
    """Lay out a ComfyUI base directory: custom_nodes/<pack> -> repo, models/depthanything, io folders.

    ``checkpoint`` (if given) is copied into ``models/depthanything``. Returns ``base``.
    """
    for sub in ("custom_nodes", f"models/{MODEL_FOLDER}", "input", "output", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_NAME
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    if checkpoint is not None:
        shutil.copy2(checkpoint, base / "models" / MODEL_FOLDER / checkpoint.name)
    return base


# --------------------------------------------------------------------------- in-process ComfyUI


@dataclass
class InProcessComfy:
    """ComfyUI's modules imported into this process, with the pack loaded from ``custom_nodes``."""

    comfyui_dir: Path
    base_dir: Path
    nodes: Any  # ComfyUI's top-level ``nodes`` module
    folder_paths: Any
    model_management: Any
    module: Any  # the pack's module object as ComfyUI imported it

    def node(self, display_name: str) -> Any:
        """The registered node class for a display name (e.g. "Estimate Depth")."""
        return self.nodes.NODE_CLASS_MAPPINGS[NODE_IDS[display_name]]

    @property
    def model_dir(self) -> Path:
        return self.base_dir / "models" / MODEL_FOLDER


def import_comfyui(path: Path) -> tuple[Any, Any, Any]:
    """Import ComfyUI's ``folder_paths``, ``nodes`` and ``comfy.model_management`` (CPU mode)."""
    path_str = str(path)
    if path_str in sys.path:
        sys.path.remove(path_str)
    sys.path.insert(0, path_str)  # before the repo root: ComfyUI's nodes.py, not the pack's nodes/
    existing = sys.modules.get("nodes")
    if existing is not None and not str(getattr(existing, "__file__", "")).startswith(path_str):
        raise RuntimeError(
            f"a different module named 'nodes' is already imported ({existing!r}); the pack's nodes/ "
            "package must only be imported through the pack (relative imports), never as top-level 'nodes'"
        )
    from comfy.cli_args import args  # parses no argv: comfy.options.args_parsing is False in-process

    args.cpu = True  # like main.py --cpu; must precede the first comfy.model_management import
    import folder_paths
    import nodes
    import comfy.model_management as model_management

    return folder_paths, nodes, model_management


def run_coroutine(coro: Any) -> Any:
    """``asyncio.run(coro)``, also from a thread whose event loop is running (Playwright's sync API keeps
    one running in the main thread while a browser is open): then the coroutine runs in a fresh thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def load_pack_inprocess(base_dir: Path) -> InProcessComfy:
    """Load the pack from ``base_dir/custom_nodes`` with ComfyUI's own ``nodes.load_custom_node``."""
    root = comfyui_dir()
    folder_paths, nodes, model_management = import_comfyui(root)
    folder_paths.set_output_directory(str(base_dir / "output"))
    folder_paths.set_input_directory(str(base_dir / "input"))
    folder_paths.set_temp_directory(str(base_dir / "temp"))
    module_path = os.path.join(str(base_dir / "custom_nodes"), PACK_NAME)
    ok = run_coroutine(nodes.load_custom_node(module_path, module_parent="custom_nodes"))
    if not ok:
        raise RuntimeError(f"ComfyUI failed to load the pack from {module_path} (see the log above)")
    # The pack registered models/depthanything under ComfyUI's own models dir at import; the test
    # folder goes first so downloads and listings use it.
    folder_paths.add_model_folder_path(MODEL_FOLDER, str(base_dir / "models" / MODEL_FOLDER), is_default=True)
    module = sys.modules[module_path.replace(".", "_x_")]
    return InProcessComfy(root, base_dir, nodes, folder_paths, model_management, module)


@pytest.fixture(scope="session")
def comfy_inprocess(tmp_path_factory: pytest.TempPathFactory) -> InProcessComfy:
    """ComfyUI imported in this process with the pack loaded and a random-init vits checkpoint in
    ``models/depthanything`` (:data:`TEST_CHECKPOINT`)."""
    from checkpoint_factory import write_checkpoint

    comfyui_dir()
    base = tmp_path_factory.mktemp("comfy_inprocess")
    ckpt = write_checkpoint(tmp_path_factory.mktemp("ckpt") / TEST_CHECKPOINT, "vits")
    make_base_dir(base, ckpt)
    return load_pack_inprocess(base)


# --------------------------------------------------------------------------- real server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PromptError(RuntimeError):
    """/prompt refused the graph (validation error); ``.body`` is ComfyUI's JSON answer."""

    def __init__(self, body: dict):
        super().__init__(json.dumps(body)[:4000])
        self.body = body


@dataclass
class ComfyServer:
    """A running ``main.py --cpu`` with its own base directory; HTTP helpers; stop by PID."""

    comfyui_dir: Path
    base_dir: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)  # more main.py options, e.g. --front-end-root DIR
    process: subprocess.Popen | None = None
    client_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _object_info: dict | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def models_dir(self) -> Path:
        """``models/depthanything`` of this server."""
        return self.base_dir / "models" / MODEL_FOLDER

    @property
    def log_path(self) -> Path:
        return self.base_dir / "comfyui.log"

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    # ---- lifecycle
    def start(self, timeout: float = SERVER_START_TIMEOUT) -> ComfyServer:
        cmd = [
            sys.executable,
            str(self.comfyui_dir / "main.py"),
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--base-directory",
            str(self.base_dir),
            "--database-url",
            "sqlite:///:memory:",
            "--disable-auto-launch",
            "--disable-api-nodes",
            *self.extra_args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            cmd, cwd=self.comfyui_dir, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ComfyUI exited with code {self.process.returncode} while starting:\n{self.log_tail()}"
                )
            try:
                info = self.get(f"/object_info/{NODE_IDS['Estimate Depth']}", timeout=5)
            except OSError:
                info = None
            if info is not None:
                if not info:
                    self.stop()
                    raise RuntimeError(f"ComfyUI started without the pack's nodes:\n{self.log_tail()}")
                return self
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer /object_info within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Terminate the server by its PID (SIGTERM, then SIGKILL after 15 s)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # ---- HTTP
    def get(self, route: str, timeout: float = 30) -> Any:
        import requests

        r = requests.get(self.url + route, timeout=timeout)
        r.raise_for_status()
        return r.json()

    def post(self, route: str, payload: Any = None, timeout: float = 30):
        import requests

        return requests.post(self.url + route, json=payload, timeout=timeout)

    def object_info(self, node_id: str | None = None) -> dict:
        info = self.get("/object_info" + (f"/{node_id}" if node_id else ""))
        return info[node_id] if node_id else info

    def for_this_comfyui(self, graph: dict) -> dict:
        """``graph`` with the flat inputs of a DynamicCombo option (``manual_min``, written for ComfyUI 0.3.75)
        moved to the ``<combo>.<input>`` keys ComfyUI 0.33 reads (:func:`nest_dynamic_inputs`), so a test's graph
        runs on both; a copy, unchanged where the server has no DynamicCombo."""
        if self._object_info is None:
            self._object_info = self.object_info()
        return nest_dynamic_inputs(graph, self._object_info)

    def queue_prompt(self, graph: dict) -> str:
        """POST an API-format graph to /prompt; returns the prompt id or raises :class:`PromptError`."""
        graph = self.for_this_comfyui(graph)
        r = self.post("/prompt", {"prompt": graph, "client_id": self.client_id})
        body = r.json()
        if r.status_code != 200 or body.get("node_errors"):
            raise PromptError(body)
        return body["prompt_id"]

    def wait_history(self, prompt_id: str, timeout: float = 300) -> dict:
        """Poll /history until the prompt finished (success or error); returns its history entry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"ComfyUI died while running {prompt_id}:\n{self.log_tail()}")
            hist = self.get(f"/history/{prompt_id}")
            entry = hist.get(prompt_id)
            if entry:  # ComfyUI writes history when a prompt ends: success, error or interrupted
                return entry
            time.sleep(0.5)
        raise TimeoutError(f"prompt {prompt_id} not finished after {timeout:.0f}s:\n{self.log_tail()}")

    def run(self, graph: dict, timeout: float = 300) -> dict:
        """Queue a graph and wait for its history entry."""
        return self.wait_history(self.queue_prompt(graph), timeout)

    def upload_image(self, image: Any, name: str) -> str:
        """Upload a uint8 RGB array [H,W,3] through ComfyUI's own /upload/image as a PNG; returns the name
        LoadImage uses."""
        import io

        import requests
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG", compress_level=1)
        r = requests.post(
            self.url + "/upload/image",
            files={"image": (name, buf.getvalue(), "image/png")},
            data={"overwrite": "true", "type": "input"},
            timeout=120,
        )
        r.raise_for_status()
        body = r.json()
        return f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else body["name"]

    def interrupt(self) -> None:
        self.post("/interrupt", {}).raise_for_status()

    def queue_running(self) -> bool:
        q = self.get("/queue")
        return bool(q.get("queue_running") or q.get("queue_pending"))

    def run_and_interrupt(self, graph: dict, node_id: str, after: int, timeout: float = 300) -> dict:
        """Queue ``graph``, POST /interrupt once node ``node_id`` reports progress ``after``, and
        collect what happened from the websocket.

        Returns ``{"prompt_id", "progress": [values of node_id in order], "at_interrupt": value,
        "end": "execution_interrupted" | "execution_success" | "execution_error"}``.
        """
        return run_coroutine(asyncio.wait_for(self._run_and_interrupt(graph, node_id, after), timeout))

    async def _run_and_interrupt(self, graph: dict, node_id: str, after: int) -> dict:
        import aiohttp

        result: dict[str, Any] = {"progress": [], "at_interrupt": None, "end": None}
        graph = await asyncio.to_thread(self.for_this_comfyui, graph)
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"ws://127.0.0.1:{self.port}/ws?clientId={self.client_id}") as ws:
                async with session.post(self.url + "/prompt", json={"prompt": graph, "client_id": self.client_id}) as r:
                    body = await r.json()
                    if r.status != 200 or body.get("node_errors"):
                        raise PromptError(body)
                result["prompt_id"] = prompt_id = body["prompt_id"]
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    data = json.loads(msg.data)
                    kind, payload = data.get("type"), data.get("data", {})
                    if payload.get("prompt_id") != prompt_id:
                        continue
                    if kind == "progress" and str(payload.get("node")) == node_id:
                        result["progress"].append(payload["value"])
                        if payload["value"] >= after and result["at_interrupt"] is None:
                            result["at_interrupt"] = payload["value"]
                            async with session.post(self.url + "/interrupt", json={}) as ir:
                                ir.raise_for_status()
                    if kind in ("execution_interrupted", "execution_success", "execution_error"):
                        result["end"] = kind
                        break
        return result

    def output_files(self, entry: dict, node_id: str, key: str = "images") -> list[Path]:
        """Paths of the files a node saved (from its history ``outputs``), checked to exist."""
        items = entry["outputs"][node_id][key]
        root = {"output": self.output_dir, "temp": self.base_dir / "temp", "input": self.input_dir}
        paths = [root[i.get("type", "output")] / i.get("subfolder", "") / i["filename"] for i in items]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise AssertionError(f"files reported in history but missing on disk: {missing}")
        return paths


def has_message(entry: dict, kind: str) -> bool:
    """Whether a history entry's status messages include ``kind`` (e.g. "execution_interrupted")."""
    return any(m[0] == kind for m in entry.get("status", {}).get("messages", []))


def execution_error(entry: dict) -> dict | None:
    """The ``execution_error`` message data of a history entry (exception_message, node_type...)."""
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return data
    return None


# --------------------------------------------------------------------------- workflows and media

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow (what the frontend saves) to the API format /prompt takes.

    Uses the node definitions from ``/object_info`` the way the frontend does: inputs in
    ``input_order``; a widget input consumes the next ``widgets_values`` entry (plus one for a
    ``control_after_generate`` or upload widget), and a linked input becomes ``[source_id, slot]``.
    Optional widgets past the end of ``widgets_values`` (added to a node after the workflow was saved)
    take their defaults, as the frontend does. A DynamicCombo (ComfyUI 0.33+) consumes its value, then the
    widgets of the selected option (sent as ``<combo>.<input>``); values a saved flat layout still holds for
    the other options' inputs (a workflow saved on 0.3.75) are left over and dropped, as the frontend drops them.
    Raises ValueError on unknown node types or when the widget values do not line up.
    """
    links = {link[0]: link for link in workflow["links"]}
    graph = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) in (2, 4):  # muted / bypassed
            continue
        info = object_info.get(node["type"])
        if info is None:
            raise ValueError(f"node {node['id']}: unknown node type {node['type']!r}")
        linked = {i["name"]: i.get("link") for i in node.get("inputs", [])}
        values = list(node.get("widgets_values") or [])
        inputs: dict[str, Any] = {}
        where = f"node {node['id']} ({node['type']})"
        specs = [
            (section, name, info["input"][section][name])
            for section in ("required", "optional")
            for name in info["input_order"].get(section, [])
        ]
        dynamic = _consume_widgets(specs, values, inputs, linked, links, where, prefix="")
        if values and not dynamic:
            raise ValueError(f"{where}: widget values left over: {values}")
        graph[str(node["id"])] = {
            "class_type": node["type"],
            "inputs": inputs,
            "_meta": {"title": node.get("title") or info["display_name"]},
        }
    return graph


def _consume_widgets(
    specs: list[tuple[str, str, list]],
    values: list,
    inputs: dict[str, Any],
    linked: dict,
    links: dict,
    where: str,
    prefix: str,
) -> bool:
    """Fill ``inputs`` from ``values`` (consumed from the front) for ``specs`` [(section, name, spec)]; returns
    whether a DynamicCombo was among them."""
    dynamic = False
    for section, name, spec in specs:
        type_, options = spec[0], (spec[1] if len(spec) > 1 else {})
        key = prefix + name
        is_widget = (isinstance(type_, list) or type_ in WIDGET_TYPES or type_ == DYNAMIC_COMBO) and not options.get(
            "forceInput"
        )
        if is_widget and options.get("hidden"):
            continue  # no widget on the node (ComfyUI 0.33's SaveVideo keeps its old codec input so)
        if is_widget and not values and section == "optional" and _default(type_, options) is not None:
            inputs[key] = _default(type_, options)  # a widget added after the workflow was saved
        elif is_widget:
            if not values:
                raise ValueError(f"{where}: no widget value left for {key!r}")
            inputs[key] = values.pop(0)
            if options.get("control_after_generate") or options.get("image_upload") or options.get("video_upload"):
                values.pop(0)
        if type_ == DYNAMIC_COMBO:
            dynamic = True
            chosen = [o for o in options.get("options", []) if o["key"] == inputs.get(key)]
            if not chosen:
                raise ValueError(f"{where}: {inputs.get(key)!r} is not an option of {key!r}")
            sub = [(s, n, d) for s in ("required", "optional") for n, d in chosen[0]["inputs"].get(s, {}).items()]
            _consume_widgets(sub, values, inputs, linked, links, where, prefix=key + ".")
        link_id = linked.get(key)
        if link_id is not None:
            _, src, slot, *_ = links[link_id]
            inputs[key] = [str(src), slot]
    return dynamic


def _default(kind: Any, opts: dict) -> Any:
    if "default" in opts:
        return opts["default"]
    if isinstance(kind, list) and kind:
        return kind[0]
    if kind == "COMBO" and opts.get("options"):
        return opts["options"][0]
    if kind == DYNAMIC_COMBO and opts.get("options"):
        return opts["options"][0]["key"]
    return None


def nest_dynamic_inputs(graph: dict, object_info: dict) -> dict:
    """A copy of an API graph where a node's flat input named like an input of its DynamicCombo's selected option
    moves to ``<combo>.<input>`` (ComfyUI 0.33's form); other inputs and ComfyUI versions without DynamicCombo are
    left as they are."""
    import copy

    graph = copy.deepcopy(graph)
    for node in graph.values():
        spec = object_info.get(node.get("class_type"), {}).get("input", {})
        inputs = node.get("inputs", {})
        for section in ("required", "optional"):
            for name, definition in spec.get(section, {}).items():
                if definition[0] != DYNAMIC_COMBO or len(definition) < 2:
                    continue
                chosen = [o for o in definition[1].get("options", []) if o["key"] == inputs.get(name)]
                for sub_section in ("required", "optional"):
                    for sub in chosen[0]["inputs"].get(sub_section, {}) if chosen else {}:
                        if sub in inputs and f"{name}.{sub}" not in inputs:
                            inputs[f"{name}.{sub}"] = inputs.pop(sub)
    return graph


def set_node_inputs(node: dict, **values: Any) -> dict:
    """Set inputs of one API-format node; a plain name that the node only has as a DynamicCombo's
    ``<combo>.<name>`` goes there. Returns the node."""
    for name, value in values.items():
        if name not in node["inputs"]:
            dotted = [k for k in node["inputs"] if k.endswith("." + name)]
            if len(dotted) == 1:
                name = dotted[0]
        node["inputs"][name] = value
    return node


def depth_graph(
    image_name: str,
    model_file: str,
    input_size: int,
    colorize: bool = True,
    stats: bool = True,
    save_npy: str | None = None,
) -> tuple[dict, dict[str, int]]:
    """LoadImage -> Load Depth Anything V2 (fp32) -> Estimate Depth (-> Colorize Depth (Spectral_r) -> PreviewImage;
    -> Depth Stats; -> Save Depth as .npy under the prefix ``save_npy``), numbered in that order; without Colorize
    and Stats, PreviewImage shows Estimate Depth's depth image. Returns the API graph and its nodes' ids (keys:
    estimate, colorize, stats, preview, save; only those in the graph)."""
    graph, _, estimate = estimate_graph(
        image_name, model_file, input_size=input_size, resolution="keep_aspect", chunk_size=0
    )
    shown = estimate["depth_image"]
    colorized = None
    if colorize:
        colorized = graph.add(
            "DAV2ColorizeDepth", depth=estimate["depth"], colormap="Spectral_r", invert=False, range_mode="min_max"
        )
        shown = colorized["image"]
    table = graph.add("DAV2DepthStats", depth=estimate["depth"]) if stats else None
    preview = graph.add("PreviewImage", images=shown) if colorize or not stats else None
    save = (
        graph.add("DAV2SaveDepth", depth=estimate["depth"], filename_prefix=save_npy, format="npy")
        if save_npy
        else None
    )
    nodes = {"estimate": estimate, "colorize": colorized, "stats": table, "preview": preview, "save": save}
    return graph.to_api(), {name: node.id for name, node in nodes.items() if node is not None}


def estimate_graph(
    image: str,
    model: str = TEST_CHECKPOINT,
    precision: str = "fp32",
    repeat: int | None = None,
    backend: str | None = None,
    **estimate: Any,
) -> tuple[Graph, Node, Node]:
    """A graph (tools/graphs) to build on: LoadImage (1) [-> RepeatImageBatch of ``repeat`` copies] -> Load Depth
    Anything V2 (``model`` at ``precision``, on ``backend`` if given) -> Estimate Depth (network input 28 unless
    ``estimate`` says otherwise), numbered in that order; returns (graph, LoadImage, Estimate Depth)."""
    graph = Graph()
    photo = graph.add("LoadImage", image=image)
    frames = graph.add("RepeatImageBatch", image=photo["IMAGE"], amount=repeat) if repeat else photo
    loader = graph.add("DAV2ModelLoader", model=model, precision=precision, **({"backend": backend} if backend else {}))
    estimate = {"input_size": 28, **estimate}
    return graph, photo, graph.add("DAV2EstimateDepth", model=loader["model"], image=frames["IMAGE"], **estimate)


def point_cloud_nodes(graph: Graph, depth: Output, image: Output, prefix: str) -> tuple[Node, Node]:
    """Add Depth to Normals (``depth``, colours from ``image``, a PLY of every 2nd pixel under ``prefix``) ->
    core's Preview 3D to ``graph``; returns (Depth to Normals, Preview 3D)."""
    normals = graph.add(
        "DAV2DepthToNormals", depth=depth, save_ply=True, filename_prefix=prefix, ply_stride=2, image=image
    )
    return normals, graph.add("Preview3D", model_file=normals["ply_file"])


def video_depth_graph(clip: str, model: str, save_prefix: str, **video_depth: Any) -> dict:
    """API graph: LoadVideo (1) of ``clip`` -> Load Depth Anything V2 (2, ``model`` in fp32) -> Video Depth (3; network
    input 28 and chunks of 4 frames unless ``video_depth`` says otherwise) -> Save Video (4, under ``save_prefix``)."""
    graph = Graph()
    video = graph.add("LoadVideo", file=clip)
    loader = graph.add("DAV2ModelLoader", model=model, precision="fp32")
    settings = {"input_size": 28, "chunk_size": 4, **video_depth}
    depth = graph.add("DAV2VideoDepth", model=loader["model"], video=video["VIDEO"], **settings)
    graph.add("SaveVideo", video=depth["video"], filename_prefix=save_prefix)
    return graph.to_api()


def example_video_graph(server: ComfyServer, name: str, clip: str) -> dict:
    """The example workflow ``example_workflows/<name>.json`` in API format for ``server``, reading ``clip`` at
    network input 28."""
    workflow = json.loads((ROOT / "example_workflows" / f"{name}.json").read_text(encoding="utf-8"))
    graph = ui_to_api(workflow, server.object_info())
    set_inputs(graph, "LoadVideo", file=clip)
    return set_inputs(graph, "DAV2VideoDepth", input_size=28)


def assert_success(server: ComfyServer, entry: dict) -> None:
    """The history entry finished without error (else: the error and the end of the server's log)."""
    assert entry["status"]["status_str"] == "success", json.dumps(execution_error(entry))[:3000] + server.log_tail(3000)


def set_inputs(graph: dict, class_type: str, **values: Any) -> dict:
    """Set widget values on every node of ``class_type`` in an API graph (in place; returns the graph)."""
    hits = [n for n in graph.values() if n["class_type"] == class_type]
    if not hits:
        raise KeyError(f"no {class_type} node in the graph")
    for node in hits:
        set_node_inputs(node, **values)
    return graph


def node_id_of(graph: dict, class_type: str) -> str:
    """The id of the only ``class_type`` node of an API graph."""
    ids = [i for i, n in graph.items() if n["class_type"] == class_type]
    if len(ids) != 1:
        raise KeyError(f"expected one {class_type} node, found {len(ids)}")
    return ids[0]


def write_test_video(path: Path, frames: Any, fps: int = 8) -> Path:
    """Write frames [N,H,W,3] uint8 (H, W even) as an H.264 mp4 with PyAV (a ComfyUI dependency)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_video(path: Path) -> Any:
    """Decoded frames of a video file as [N,H,W,3] uint8 (PyAV)."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def start_server(base_dir: Path, env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> ComfyServer:
    return ComfyServer(comfyui_dir(), base_dir, env=dict(env or {}), extra_args=list(extra_args or [])).start()


def _test_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, extra_args: list[str] | None = None
) -> ComfyServer:
    """A started server with its own base directory, :data:`TEST_CHECKPOINT` (also linked as
    :data:`OFFICIAL_VITS`) in models/depthanything, Hugging Face forced offline."""
    from checkpoint_factory import write_checkpoint

    base = tmp_path_factory.mktemp(name)
    ckpt = write_checkpoint(tmp_path_factory.mktemp(f"ckpt_{name}") / TEST_CHECKPOINT, "vits")
    make_base_dir(base, ckpt)
    (base / "models" / MODEL_FOLDER / OFFICIAL_VITS).symlink_to(TEST_CHECKPOINT)
    return start_server(base, env={"HF_HUB_OFFLINE": "1"}, extra_args=extra_args)


def start_test_server(tmp_path_factory: pytest.TempPathFactory, name: str = "comfy_server"):
    """Generator behind the session fixture ``comfy_server`` (tests/conftest.py): one real ComfyUI server for
    the whole session (node e2e and browser tests share it), serving the frontend that ships with the test ComfyUI.

    Attributes: ``url``, ``input_dir``, ``output_dir``, ``models_dir`` (models/depthanything holding
    :data:`TEST_CHECKPOINT`, also linked as :data:`OFFICIAL_VITS`), plus the HTTP helpers of :class:`ComfyServer`.
    Hugging Face is forced offline (``HF_HUB_OFFLINE=1``) so a missing official file fails fast with dav2_core's message.
    """
    comfyui_dir()
    server = _test_server(tmp_path_factory, name)
    try:
        yield server
    finally:
        server.stop()


def newest_frontend_root() -> Path:
    """``static/`` of the newest tested ``comfyui-frontend-package`` (pinned in tools/setup_comfyui.py and
    installed beside ComfyUI by it), or skip (fail under CI) saying how to install it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dav2_setup_comfyui", ROOT / "tools" / "setup_comfyui.py")
    setup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup)
    root = Path(os.environ.get("DAV2_NEWEST_FRONTEND_ROOT") or setup.newest_frontend_static())
    if not (root / "index.html").is_file():
        message = (
            f"no comfyui-frontend-package {setup.NEWEST_FRONTEND_VERSION} at {root}: run "
            "`make comfyui-setup` (tools/setup_comfyui.py installs it)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


def start_test_server_newest_frontend(tmp_path_factory: pytest.TempPathFactory):
    """Generator behind ``comfy_server_newest_frontend``: like :func:`start_test_server`, but serving the newest tested frontend (``--front-end-root``)."""
    comfyui_dir()
    root = newest_frontend_root()
    server = _test_server(tmp_path_factory, "comfy_server_newest", ["--front-end-root", str(root)])
    try:
        yield server
    finally:
        server.stop()
