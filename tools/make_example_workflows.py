#!/usr/bin/env python3
"""Write the example workflows (ComfyUI UI-format JSON) into ``example_workflows/``.

Each workflow is described once below as nodes + links; this script lays them out in the frontend's
workflow format (version 0.4). The tests convert the files to API format with ComfyUI's /object_info
and run them on a real server, so a wrong socket or widget here fails there.

``--thumbnails`` also renders the same-name ``.jpg`` thumbnails from real outputs: it starts ComfyUI
(tests/support/comfy_harness.py), runs each workflow on a photo from ../shared/images with the checkpoint found in
``--models`` (a random-init test checkpoint if no real weights are there), and puts input and output
side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "example_workflows"
EXAMPLE_IMAGE = "dav2_example.jpg"
EXAMPLE_VIDEO = "dav2_example.mp4"
OFFICIAL_SMALL = "depth_anything_v2_vits.pth"
#: Video Depth Anything Small (Apache-2.0), the video example's model.
VDA_SMALL = "video_depth_anything_vits.pth"

#: Socket inputs and outputs (name, type) of every node type used; widgets are given per node.
SOCKETS: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "SaveImage": ([("images", "IMAGE")], []),
    "PreviewImage": ([("images", "IMAGE")], []),
    "LoadVideo": ([], [("VIDEO", "VIDEO")]),
    "GetVideoComponents": ([("video", "VIDEO")], [("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")]),
    "CreateVideo": ([("images", "IMAGE"), ("audio", "AUDIO")], [("VIDEO", "VIDEO")]),
    "SaveVideo": ([("video", "VIDEO")], []),
    "CheckpointLoaderSimple": ([], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]),
    "CLIPTextEncode": ([("clip", "CLIP")], [("CONDITIONING", "CONDITIONING")]),
    "ControlNetLoader": ([], [("CONTROL_NET", "CONTROL_NET")]),
    "ControlNetApplyAdvanced": (
        [
            ("positive", "CONDITIONING"),
            ("negative", "CONDITIONING"),
            ("control_net", "CONTROL_NET"),
            ("image", "IMAGE"),
            ("vae", "VAE"),
        ],
        [("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
    ),
    "EmptyLatentImage": ([], [("LATENT", "LATENT")]),
    "KSampler": (
        [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent_image", "LATENT")],
        [("LATENT", "LATENT")],
    ),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")]),
    "DAV2ModelLoader": ([], [("model", "DAV2_MODEL")]),
    "DAV2EstimateDepth": (
        [("model", "DAV2_MODEL"), ("image", "IMAGE")],
        [("depth_image", "IMAGE"), ("depth", "DEPTH"), ("mask", "MASK")],
    ),
    "DAV2ColorizeDepth": ([("depth", "DEPTH,IMAGE")], [("image", "IMAGE")]),
    "DAV2DepthStats": ([("depth", "DEPTH")], [("stats", "STRING"), ("plot", "IMAGE")]),
    "DAV2DepthBokeh": ([("image", "IMAGE"), ("depth", "DEPTH")], [("image", "IMAGE"), ("coc", "MASK")]),
    "DAV2DepthParallax": ([("image", "IMAGE"), ("depth", "DEPTH")], [("frames", "IMAGE")]),
    "DAV2SaveDepth": ([("depth", "DEPTH")], []),
    "DAV2VideoDepth": ([("model", "DAV2_MODEL"), ("video", "VIDEO")], [("video", "VIDEO")]),
    "MaskToImage": ([("mask", "MASK")], [("IMAGE", "IMAGE")]),
}
#: Widget inputs that a workflow feeds from a link instead (the frontend keeps their widget value too).
WIDGET_SOCKETS = {("CreateVideo", "fps"): "FLOAT"}


#: Room (width, height below the title bar) each node type gets in the layout: at least what it takes on the
#: classic canvas and in Nodes 2.0 (Vue nodes, stock and newest tested frontend), after a run too (our depth
#: preview and stats table, core image/video previews). tests/browser/test_browser_frontends.py checks that no two nodes
#: overlap and nothing sticks out of its node, after load and after a run, in every tested frontend/renderer.
ROOM: dict[str, tuple[int, int]] = {
    "LoadImage": (320, 380),
    "SaveImage": (400, 380),
    "PreviewImage": (400, 380),
    "LoadVideo": (400, 420),
    "GetVideoComponents": (400, 140),
    "CreateVideo": (520, 220),
    "SaveVideo": (520, 480),
    "CheckpointLoaderSimple": (320, 140),
    "CLIPTextEncode": (400, 200),
    "ControlNetLoader": (320, 90),
    "ControlNetApplyAdvanced": (320, 250),
    "EmptyLatentImage": (320, 150),
    "KSampler": (320, 330),
    "VAEDecode": (240, 80),
    "MaskToImage": (240, 60),
    "DAV2ModelLoader": (340, 190),
    "DAV2EstimateDepth": (360, 800),
    "DAV2ColorizeDepth": (360, 580),
    "DAV2DepthStats": (420, 640),
    "DAV2DepthBokeh": (340, 320),
    "DAV2DepthParallax": (340, 190),
    "DAV2SaveDepth": (340, 160),
    "DAV2VideoDepth": (360, 600),
}
#: Height of a node's title bar (LiteGraph.NODE_TITLE_HEIGHT): ``pos`` is the top of the body, below it.
TITLE_HEIGHT = 30
#: Free space between two nodes, across and down.
GAP = 40
ORIGIN = (20, 20 + TITLE_HEIGHT)


@dataclass
class Node:
    id: int
    type: str
    widgets: list[Any]
    column: int
    size: tuple[int, int]
    title: str | None = None
    pos: tuple[int, int] = (0, 0)
    links_in: dict[str, int] = field(default_factory=dict)
    links_out: dict[int, list[int]] = field(default_factory=dict)


class Workflow:
    """Nodes and typed links, serialised in the ComfyUI frontend's workflow format.

    Nodes are laid out in columns (left to right) and stacked in each column in the order they are added,
    each with its :data:`ROOM`, so no two overlap whatever the renderer makes of them.
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.links: list[list[Any]] = []

    def add(self, type_: str, widgets: list[Any], column: int, title: str | None = None) -> Node:
        node = Node(len(self.nodes) + 1, type_, widgets, column, ROOM[type_], title)
        self.nodes.append(node)
        return node

    def connect(self, src: Node, output: str, dst: Node, input_: str) -> None:
        outputs = SOCKETS[src.type][1]
        slot = [name for name, _ in outputs].index(output)
        link_id = len(self.links) + 1
        self.links.append([link_id, src.id, slot, dst.id, self._input_slot(dst, input_), outputs[slot][1]])
        src.links_out.setdefault(slot, []).append(link_id)
        dst.links_in[input_] = link_id

    def layout(self) -> None:
        """Positions: columns side by side (each as wide as its widest node), nodes stacked in each column."""
        x = ORIGIN[0]
        for column in sorted({n.column for n in self.nodes}):
            members = [n for n in self.nodes if n.column == column]
            y = ORIGIN[1]
            for n in members:
                n.pos = (x, y)
                y += n.size[1] + GAP + TITLE_HEIGHT
            x += max(n.size[0] for n in members) + GAP

    def _inputs(self, node: Node) -> list[tuple[str, str, bool]]:
        sockets = [(name, type_, False) for name, type_ in SOCKETS[node.type][0]]
        for (type_, name), wtype in WIDGET_SOCKETS.items():
            if type_ == node.type and name in node.links_in and all(n != name for n, _, _ in sockets):
                sockets.append((name, wtype, True))
        return sockets

    def _input_slot(self, node: Node, input_: str) -> int:
        names = [n for n, _ in SOCKETS[node.type][0]]
        if input_ in names:
            return names.index(input_)
        if (node.type, input_) in WIDGET_SOCKETS:
            return len(names)
        raise KeyError(f"{node.type} has no input {input_!r}")

    def to_json(self) -> dict[str, Any]:
        self.layout()
        nodes = []
        for order, n in enumerate(self.nodes):
            inputs = []
            for name, type_, is_widget in self._inputs(n):
                entry = {"name": name, "type": type_, "link": n.links_in.get(name)}
                if is_widget:
                    entry["widget"] = {"name": name}
                inputs.append(entry)
            outputs = [
                {"name": name, "type": type_, "links": n.links_out.get(slot, []), "slot_index": slot}
                for slot, (name, type_) in enumerate(SOCKETS[n.type][1])
            ]
            node = {
                "id": n.id,
                "type": n.type,
                "pos": list(n.pos),
                "size": list(n.size),
                "flags": {},
                "order": order,
                "mode": 0,
                "inputs": inputs,
                "outputs": outputs,
                "properties": {"Node name for S&R": n.type},
                "widgets_values": n.widgets,
            }
            if n.title:
                node["title"] = n.title
            nodes.append(node)
        return {
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": nodes,
            "links": self.links,
            "groups": [],
            "config": {},
            "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
            "version": 0.4,
        }


def _loader(wf: Workflow, column: int = 0) -> Node:
    return wf.add("DAV2ModelLoader", [OFFICIAL_SMALL, "auto", "auto", "auto"], column)


def _estimate(wf: Workflow, normalization="per_image", column: int = 1, quality: list[Any] | None = None) -> Node:
    """Estimate Depth; ``quality`` = [flip_tta, refine, temporal_consistency, temporal_smoothing] (optional widgets)."""
    widgets = [518, "keep_aspect", 1932, normalization, False, 0] + list(quality or [])
    return wf.add("DAV2EstimateDepth", widgets, column)


def _photo_depth(wf: Workflow, column: int = 0, **estimate: Any) -> tuple[Node, Node]:
    """The example photo -> Load Depth Anything V2 -> Estimate Depth (next column); returns (LoadImage, Estimate Depth)."""
    image = wf.add("LoadImage", [EXAMPLE_IMAGE, "image"], column)
    loader = _loader(wf, column)
    est = _estimate(wf, column=column + 1, **estimate)
    wf.connect(loader, "model", est, "model")
    wf.connect(image, "IMAGE", est, "image")
    return image, est


def depth_colorize_save() -> Workflow:
    wf = Workflow()
    _, est = _photo_depth(wf)
    color = wf.add("DAV2ColorizeDepth", ["Spectral_r", False, "auto", 0.0, 1.0], 2)
    wf.connect(est, "depth", color, "depth")
    save_grey = wf.add("SaveImage", ["depth/dav2_depth"], 3, title="Save depth (ControlNet-ready)")
    wf.connect(est, "depth_image", save_grey, "images")
    save_color = wf.add("SaveImage", ["depth/dav2_colorized"], 3, title="Save colorized depth")
    wf.connect(color, "image", save_color, "images")
    return wf


def depth_stats() -> Workflow:
    wf = Workflow()
    _, est = _photo_depth(wf)
    stats = wf.add("DAV2DepthStats", [0], 2)
    wf.connect(est, "depth", stats, "depth")
    save_plot = wf.add("SaveImage", ["depth/dav2_stats_plot"], 3, title="Save analysis plot")
    wf.connect(stats, "plot", save_plot, "images")
    return wf


def controlnet_depth() -> Workflow:
    """SD1.5 + depth ControlNet: the depth image conditions generation (needs your own weights)."""
    wf = Workflow()
    ckpt = wf.add("CheckpointLoaderSimple", ["v1-5-pruned-emaonly-fp16.safetensors"], 0)
    _, est = _photo_depth(wf, column=0)
    preview = wf.add("PreviewImage", [], 2, title="Depth used as control")
    wf.connect(est, "depth_image", preview, "images")
    pos_text = wf.add(
        "CLIPTextEncode", ["a cosy reading corner, warm light, detailed, photo"], 2, title="Positive prompt"
    )
    neg_text = wf.add("CLIPTextEncode", ["blurry, lowres, watermark"], 2, title="Negative prompt")
    wf.connect(ckpt, "CLIP", pos_text, "clip")
    wf.connect(ckpt, "CLIP", neg_text, "clip")
    cn = wf.add("ControlNetLoader", ["control_v11f1p_sd15_depth_fp16.safetensors"], 3)
    apply = wf.add("ControlNetApplyAdvanced", [0.8, 0.0, 1.0], 3)
    wf.connect(pos_text, "CONDITIONING", apply, "positive")
    wf.connect(neg_text, "CONDITIONING", apply, "negative")
    wf.connect(cn, "CONTROL_NET", apply, "control_net")
    wf.connect(est, "depth_image", apply, "image")
    wf.connect(ckpt, "VAE", apply, "vae")
    latent = wf.add("EmptyLatentImage", [512, 512, 1], 3)
    sampler = wf.add("KSampler", [42, "fixed", 20, 7.0, "euler", "normal", 1.0], 4)
    wf.connect(ckpt, "MODEL", sampler, "model")
    wf.connect(apply, "positive", sampler, "positive")
    wf.connect(apply, "negative", sampler, "negative")
    wf.connect(latent, "LATENT", sampler, "latent_image")
    decode = wf.add("VAEDecode", [], 4)
    wf.connect(sampler, "LATENT", decode, "samples")
    wf.connect(ckpt, "VAE", decode, "vae")
    save = wf.add("SaveImage", ["depth/dav2_controlnet"], 5)
    wf.connect(decode, "IMAGE", save, "images")
    return wf


def _video_depth_graph(wf: Workflow, suffix: str, **estimate: Any) -> Node:
    """Load a video -> Estimate Depth -> grey (ControlNet-ready) and colourised depth videos; returns the
    Estimate Depth node. ``suffix`` goes into the saved videos' names."""
    video = wf.add("LoadVideo", [EXAMPLE_VIDEO, "image"], 0)
    parts = wf.add("GetVideoComponents", [], 0)
    wf.connect(video, "VIDEO", parts, "video")
    loader = _loader(wf, 0)
    est = _estimate(wf, column=1, **estimate)
    wf.connect(loader, "model", est, "model")
    wf.connect(parts, "images", est, "image")
    color = wf.add("DAV2ColorizeDepth", ["Spectral_r", False, "auto", 0.0, 1.0], 2)
    wf.connect(est, "depth", color, "depth")
    grey = wf.add("CreateVideo", [30.0], 3, title="Depth video (ControlNet-ready)")
    wf.connect(est, "depth_image", grey, "images")
    wf.connect(parts, "fps", grey, "fps")
    colored = wf.add("CreateVideo", [30.0], 3, title="Colorized depth video")
    wf.connect(color, "image", colored, "images")
    wf.connect(parts, "fps", colored, "fps")
    save_grey = wf.add("SaveVideo", [f"video/dav2_depth{suffix}", "auto", "auto"], 4)
    wf.connect(grey, "VIDEO", save_grey, "video")
    save_color = wf.add("SaveVideo", [f"video/dav2_colorized{suffix}", "auto", "auto"], 4)
    wf.connect(colored, "VIDEO", save_color, "video")
    return est


def video_depth() -> Workflow:
    """Video frames -> depth with one batch-wide normalisation (no flicker) -> grey and colour videos."""
    wf = Workflow()
    _video_depth_graph(wf, "", normalization="batch")
    return wf


def depth_bokeh() -> Workflow:
    """Photo -> depth (edge-refined) -> lens blur focused on the image centre; the circle of confusion as a preview."""
    wf = Workflow()
    image, est = _photo_depth(wf, quality=[False, 0.5, False, 1.0])
    blur = wf.add("DAV2DepthBokeh", ["point", 0.5, 0.5, 1.0, 12.0, 0.1, 16], 2)
    wf.connect(image, "IMAGE", blur, "image")
    wf.connect(est, "depth", blur, "depth")
    coc = wf.add("MaskToImage", [], 2)
    wf.connect(blur, "coc", coc, "mask")
    save = wf.add("SaveImage", ["depth/dav2_bokeh"], 3, title="Save bokeh")
    wf.connect(blur, "image", save, "images")
    preview = wf.add("PreviewImage", [], 3, title="Circle of confusion (white = most blur)")
    wf.connect(coc, "IMAGE", preview, "images")
    return wf


def depth_parallax() -> Workflow:
    """Photo -> depth (edge-refined) -> 48 frames of a looping circular camera move -> video."""
    wf = Workflow()
    image, est = _photo_depth(wf, quality=[False, 0.5, False, 1.0])
    move = wf.add("DAV2DepthParallax", [48, "circle", 0.03], 2)
    wf.connect(image, "IMAGE", move, "image")
    wf.connect(est, "depth", move, "depth")
    video = wf.add("CreateVideo", [24.0], 2, title="Parallax video")
    wf.connect(move, "frames", video, "images")
    save = wf.add("SaveVideo", ["video/dav2_parallax", "auto", "auto"], 3)
    wf.connect(video, "VIDEO", save, "video")
    return wf


def video_depth_temporal() -> Workflow:
    """Video -> temporally consistent depth (frames aligned, one normalisation) -> grey and colour videos, plus the
    float depth of every frame as one .npy."""
    wf = Workflow()
    est = _video_depth_graph(wf, "_temporal", normalization="batch", quality=[False, 0.0, True, 1.0])
    save_depth = wf.add("DAV2SaveDepth", ["video/dav2_depth_frames", "npy"], 2, title="Save float depth of all frames")
    wf.connect(est, "depth", save_depth, "depth")
    return wf


def video_depth_streaming() -> Workflow:
    """A whole video -> Video Depth (streamed chunk by chunk, clip-wide two-pass range) -> Save Video. Any length:
    the clip is never decoded into memory."""
    wf = Workflow()
    video = wf.add("LoadVideo", [EXAMPLE_VIDEO, "image"], 0)
    loader = _loader(wf, 0)
    widgets = [
        518,
        "keep_aspect",
        1932,
        "two_pass",
        "min_max",
        False,
        "gray",
        0,
        0,
        1,
        0,
        "none",
        "video/dav2_depth",
        False,
        0.0,
        True,
        1.0,
    ]
    depth = wf.add("DAV2VideoDepth", widgets, 1)
    wf.connect(loader, "model", depth, "model")
    wf.connect(video, "VIDEO", depth, "video")
    save = wf.add("SaveVideo", ["video/dav2_depth_streamed", "auto", "auto"], 2)
    wf.connect(depth, "video", save, "video")
    return wf


def video_depth_anything() -> Workflow:
    """A whole video -> Video Depth with Video Depth Anything Small (32-frame temporal windows, streamed; no
    per-frame flicker) -> Save Video."""
    from dav2_core.tiling import DEFAULT_MAX_TILES, DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE

    wf = Workflow()
    video = wf.add("LoadVideo", [EXAMPLE_VIDEO, "image"], 0)
    loader = wf.add("DAV2ModelLoader", [VDA_SMALL, "auto", "auto", "auto"], 0, title="Load Video Depth Anything Small")
    widgets = [518, "keep_aspect", 1932, "two_pass", "min_max", False, "gray", 0, 0, 1, 0, "none", "video/dav2_depth"]
    widgets += [False, 0.0, True, 1.0, DEFAULT_TILE_SIZE, DEFAULT_TILE_OVERLAP, DEFAULT_MAX_TILES, "offline"]
    depth = wf.add("DAV2VideoDepth", widgets, 1)
    wf.connect(loader, "model", depth, "model")
    wf.connect(video, "VIDEO", depth, "video")
    save = wf.add("SaveVideo", ["video/dav2_depth_vda", "auto", "auto"], 2)
    wf.connect(depth, "video", save, "video")
    return wf


WORKFLOWS = {
    "depth_colorize_save": depth_colorize_save,
    "depth_stats": depth_stats,
    "controlnet_depth": controlnet_depth,
    "video_batch_depth": video_depth,
    "depth_bokeh": depth_bokeh,
    "depth_parallax": depth_parallax,
    "video_depth_temporal": video_depth_temporal,
    "video_depth_streaming": video_depth_streaming,
    "video_depth_anything": video_depth_anything,
}


def write_workflows(out_dir: Path = OUT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build in WORKFLOWS.items():
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(build().to_json(), indent=1) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


THUMB_HEIGHT = 300


def _fit_height(rgb: np.ndarray, height: int = THUMB_HEIGHT) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def _save_jpg(path: Path, panels: list[np.ndarray]) -> Path:
    import cv2
    import numpy as np

    strip = np.concatenate([_fit_height(p) for p in panels], axis=1)
    if not cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88]):
        raise OSError(f"could not write {path}")
    return path


def render_thumbnails(photo: Path, models: Path, out_dir: Path = OUT_DIR, only: set[str] | None = None) -> list[Path]:
    """Run the workflows on a real ComfyUI and write ``<name>.jpg`` (input | outputs) for each (or those in ``only``)."""
    import shutil
    import tempfile

    import cv2
    import numpy as np

    sys.path.insert(0, str(ROOT / "tests" / "support"))
    import comfy_harness as h

    bgr = cv2.imread(str(photo))
    if bgr is None:
        raise SystemExit(f"cannot read the photo {photo}; pass --photo")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    scale = 512 / max(rgb.shape[:2])
    rgb = cv2.resize(
        rgb, (round(rgb.shape[1] * scale) // 2 * 2, round(rgb.shape[0] * scale) // 2 * 2), interpolation=cv2.INTER_AREA
    )
    with tempfile.TemporaryDirectory() as tmp:
        base = h.make_base_dir(Path(tmp) / "comfy")
        model_dir = base / "models" / h.MODEL_FOLDER
        if (models / OFFICIAL_SMALL).is_file():
            shutil.copy2(models / OFFICIAL_SMALL, model_dir / OFFICIAL_SMALL)
        else:
            print(f"no {OFFICIAL_SMALL} in {models}: thumbnails use a random-init checkpoint (noise depth)")
            h.write_test_checkpoint(model_dir / OFFICIAL_SMALL, fmt="official-pth")
        if (models / VDA_SMALL).is_file():
            shutil.copy2(models / VDA_SMALL, model_dir / VDA_SMALL)
        elif only is None or "video_depth_anything" in only:
            from checkpoint_factory import write_checkpoint

            print(f"no {VDA_SMALL} in {models}: its thumbnail uses a random-init checkpoint (noise depth)")
            write_checkpoint(model_dir / VDA_SMALL, "vits", "official-pth", family="vda")
        cv2.imwrite(str(base / "input" / EXAMPLE_IMAGE), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        crop_w = rgb.shape[1] * 3 // 4 // 2 * 2
        frames = np.stack([rgb[:, i * (rgb.shape[1] - crop_w) // 5 :][:, :crop_w] for i in range(6)])
        h.write_test_video(base / "input" / EXAMPLE_VIDEO, frames)
        server = h.start_server(base, env={"HF_HUB_OFFLINE": "1"})
        try:
            info = server.object_info()

            def run(name: str) -> tuple[dict, dict]:
                graph = h.ui_to_api(json.loads((out_dir / f"{name}.json").read_text(encoding="utf-8")), info)
                entry = server.run(graph, timeout=900)
                if entry["status"]["status_str"] != "success":
                    raise SystemExit(f"{name} failed: {h.execution_error(entry)}")
                return graph, entry

            def image_of(graph: dict, entry: dict, title: str) -> np.ndarray:
                node = next(i for i, n in graph.items() if n["_meta"]["title"] == title)
                return cv2.cvtColor(cv2.imread(str(server.output_files(entry, node)[0])), cv2.COLOR_BGR2RGB)

            def wanted(*names: str) -> bool:
                return only is None or any(n in only for n in names)

            def videos_of(graph: dict, entry: dict) -> list[np.ndarray]:
                return [
                    h.read_video(server.output_files(entry, i)[0])
                    for i, n in graph.items()
                    if n["class_type"] == "SaveVideo"
                ]

            written = []
            if wanted("depth_colorize_save", "controlnet_depth"):
                graph, entry = run("depth_colorize_save")
                grey = image_of(graph, entry, "Save depth (ControlNet-ready)")
                color = image_of(graph, entry, "Save colorized depth")
                written += [
                    _save_jpg(out_dir / "depth_colorize_save.jpg", [rgb, grey, color]),
                    _save_jpg(out_dir / "controlnet_depth.jpg", [rgb, grey]),
                ]
            if wanted("depth_stats"):
                graph, entry = run("depth_stats")
                written.append(
                    _save_jpg(out_dir / "depth_stats.jpg", [rgb, image_of(graph, entry, "Save analysis plot")])
                )
            if wanted("video_batch_depth"):
                graph, entry = run("video_batch_depth")
                videos = videos_of(graph, entry)
                written.append(
                    _save_jpg(out_dir / "video_batch_depth.jpg", [frames[0], videos[1][0], frames[-1], videos[1][-1]])
                )
            if wanted("depth_bokeh"):
                graph, entry = run("depth_bokeh")
                preview = next(i for i, n in graph.items() if n["class_type"] == "PreviewImage")
                coc = cv2.cvtColor(cv2.imread(str(server.output_files(entry, preview)[0])), cv2.COLOR_BGR2RGB)
                written.append(_save_jpg(out_dir / "depth_bokeh.jpg", [rgb, image_of(graph, entry, "Save bokeh"), coc]))
            if wanted("depth_parallax"):
                graph, entry = run("depth_parallax")
                (clip,) = videos_of(graph, entry)
                written.append(
                    _save_jpg(out_dir / "depth_parallax.jpg", [clip[0], clip[len(clip) // 4], clip[len(clip) // 2]])
                )
            if wanted("video_depth_temporal"):
                graph, entry = run("video_depth_temporal")
                videos = videos_of(graph, entry)
                written.append(
                    _save_jpg(
                        out_dir / "video_depth_temporal.jpg", [frames[0], videos[1][0], frames[-1], videos[1][-1]]
                    )
                )
            if wanted("video_depth_streaming"):
                graph, entry = run("video_depth_streaming")
                (clip,) = videos_of(graph, entry)
                written.append(
                    _save_jpg(out_dir / "video_depth_streaming.jpg", [frames[0], clip[0], frames[-1], clip[-1]])
                )
            if wanted("video_depth_anything"):
                graph, entry = run("video_depth_anything")
                (clip,) = videos_of(graph, entry)
                written.append(
                    _save_jpg(out_dir / "video_depth_anything.jpg", [frames[0], clip[0], frames[-1], clip[-1]])
                )
        finally:
            server.stop()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thumbnails", action="store_true", help="also render the .jpg thumbnails on a real ComfyUI")
    parser.add_argument("--photo", type=Path, default=ROOT.parent / "shared" / "images" / "demo01.jpg")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=sorted(WORKFLOWS),
        metavar="NAME",
        help="render only these thumbnails (the JSON files are always all written)",
    )
    parser.add_argument(
        "--models",
        type=Path,
        default=ROOT / "models",
        help=f"folder with {OFFICIAL_SMALL} (real weights); a random-init one is made if absent",
    )
    args = parser.parse_args(argv)
    for path in write_workflows():
        print(f"wrote {path.relative_to(ROOT)}")
    if args.thumbnails:
        for path in render_thumbnails(args.photo, args.models, only=set(args.only) if args.only else None):
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
