#!/usr/bin/env python3
"""Write the example workflows (ComfyUI UI-format JSON) into ``example_workflows/``.

Each workflow is described once below as nodes and links with the graph builder (``tools/graphs``): sockets and
widget defaults come from the nodes' own schemas (the pack's ``nodes/``, imported with the ComfyUI checkout in
``COMFYUI_DIR``, default ``.comfyui/ComfyUI``), and ``tools/graphs/layout.py`` lays them out in the frontend's
workflow format (version 0.4). The tests convert the files to API format with ComfyUI's /object_info and run them
on a real server, so a wrong socket or widget here fails there. The committed files are written on ComfyUI 0.3.75
(the default checkout): a newer ComfyUI types some sockets differently (core geometry inputs).

``--thumbnails`` also renders the same-name ``.jpg`` thumbnails from real outputs (tools/example_thumbnails.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.graphs import Node, Workflow  # noqa: E402 (needs the repository root on sys.path)

OUT_DIR = ROOT / "example_workflows"
EXAMPLE_IMAGE = "dav2_example.jpg"
EXAMPLE_VIDEO = "dav2_example.mp4"
OFFICIAL_SMALL = "depth_anything_v2_vits.pth"
#: Video Depth Anything Small (Apache-2.0), the video example's model.
VDA_SMALL = "video_depth_anything_vits.pth"
#: Estimate Depth's quality options (optional widgets) for an edge-refined depth.
REFINED = {"flip_tta": False, "refine": 0.5, "temporal_consistency": False, "temporal_smoothing": 1.0}


def _loader(wf: Workflow, column: int = 0) -> Node:
    return wf.place(column, "DAV2ModelLoader", model=OFFICIAL_SMALL)


def _photo_depth(wf: Workflow, column: int = 0, **estimate: Any) -> tuple[Node, Node]:
    """The example photo -> Load Depth Anything V2 -> Estimate Depth (next column) with the widgets ``estimate``;
    returns (LoadImage, Estimate Depth)."""
    image = wf.place(column, "LoadImage", image=EXAMPLE_IMAGE)
    loader = _loader(wf, column)
    est = wf.place(column + 1, "DAV2EstimateDepth", model=loader["model"], image=image["IMAGE"], **estimate)
    return image, est


def depth_colorize_save() -> Workflow:
    wf = Workflow()
    _, est = _photo_depth(wf)
    color = wf.place(2, "DAV2ColorizeDepth", depth=est["depth"])
    wf.place(
        3, "SaveImage", "Save depth (ControlNet-ready)", images=est["depth_image"], filename_prefix="depth/dav2_depth"
    )
    wf.place(3, "SaveImage", "Save colorized depth", images=color["image"], filename_prefix="depth/dav2_colorized")
    return wf


def depth_stats() -> Workflow:
    wf = Workflow()
    _, est = _photo_depth(wf)
    stats = wf.place(2, "DAV2DepthStats", depth=est["depth"])
    wf.place(3, "SaveImage", "Save analysis plot", images=stats["plot"], filename_prefix="depth/dav2_stats_plot")
    return wf


def controlnet_depth() -> Workflow:
    """SD1.5 + depth ControlNet: the depth image conditions generation (needs your own weights)."""
    wf = Workflow()
    ckpt = wf.place(0, "CheckpointLoaderSimple", ckpt_name="v1-5-pruned-emaonly-fp16.safetensors")
    _, est = _photo_depth(wf, column=0)
    wf.place(2, "PreviewImage", "Depth used as control", images=est["depth_image"])
    pos_text = wf.place(
        2,
        "CLIPTextEncode",
        "Positive prompt",
        clip=ckpt["CLIP"],
        text="a cosy reading corner, warm light, detailed, photo",
    )
    neg_text = wf.place(2, "CLIPTextEncode", "Negative prompt", clip=ckpt["CLIP"], text="blurry, lowres, watermark")
    cn = wf.place(3, "ControlNetLoader", control_net_name="control_v11f1p_sd15_depth_fp16.safetensors")
    apply = wf.place(
        3,
        "ControlNetApplyAdvanced",
        positive=pos_text["CONDITIONING"],
        negative=neg_text["CONDITIONING"],
        control_net=cn["CONTROL_NET"],
        image=est["depth_image"],
        vae=ckpt["VAE"],
        strength=0.8,
    )
    latent = wf.place(3, "EmptyLatentImage")
    sampler = wf.place(
        4,
        "KSampler",
        model=ckpt["MODEL"],
        positive=apply["positive"],
        negative=apply["negative"],
        latent_image=latent["LATENT"],
        seed=42,
        cfg=7.0,
        scheduler="normal",
    )
    decode = wf.place(4, "VAEDecode", samples=sampler["LATENT"], vae=ckpt["VAE"])
    wf.place(5, "SaveImage", images=decode["IMAGE"], filename_prefix="depth/dav2_controlnet")
    return wf


def _video_depth_graph(wf: Workflow, suffix: str, **estimate: Any) -> Node:
    """Load a video -> Estimate Depth -> grey (ControlNet-ready) and colourised depth videos; returns the
    Estimate Depth node. ``suffix`` goes into the saved videos' names."""
    video = wf.place(0, "LoadVideo", file=EXAMPLE_VIDEO)
    parts = wf.place(0, "GetVideoComponents", video=video["VIDEO"])
    loader = _loader(wf, 0)
    est = wf.place(1, "DAV2EstimateDepth", model=loader["model"], image=parts["images"], **estimate)
    color = wf.place(2, "DAV2ColorizeDepth", depth=est["depth"])
    grey = wf.place(3, "CreateVideo", "Depth video (ControlNet-ready)", images=est["depth_image"], fps=parts["fps"])
    colored = wf.place(3, "CreateVideo", "Colorized depth video", images=color["image"], fps=parts["fps"])
    wf.place(4, "SaveVideo", video=grey["VIDEO"], filename_prefix=f"video/dav2_depth{suffix}")
    wf.place(4, "SaveVideo", video=colored["VIDEO"], filename_prefix=f"video/dav2_colorized{suffix}")
    return est


def video_depth() -> Workflow:
    """Video frames -> depth with one batch-wide normalisation (no flicker) -> grey and colour videos."""
    wf = Workflow()
    _video_depth_graph(wf, "", normalization="batch")
    return wf


def depth_bokeh() -> Workflow:
    """Photo -> depth (edge-refined) -> lens blur focused on the image centre; the circle of confusion as a preview."""
    wf = Workflow()
    image, est = _photo_depth(wf, **REFINED)
    blur = wf.place(2, "DAV2DepthBokeh", image=image["IMAGE"], depth=est["depth"])
    coc = wf.place(2, "MaskToImage", mask=blur["coc"])
    wf.place(3, "SaveImage", "Save bokeh", images=blur["image"], filename_prefix="depth/dav2_bokeh")
    wf.place(3, "PreviewImage", "Circle of confusion (white = most blur)", images=coc["IMAGE"])
    return wf


def depth_parallax() -> Workflow:
    """Photo -> depth (edge-refined) -> 48 frames of a looping circular camera move -> video."""
    wf = Workflow()
    image, est = _photo_depth(wf, **REFINED)
    move = wf.place(2, "DAV2DepthParallax", image=image["IMAGE"], depth=est["depth"], frames=48)
    video = wf.place(2, "CreateVideo", "Parallax video", images=move["frames"], fps=24.0)
    wf.place(3, "SaveVideo", video=video["VIDEO"], filename_prefix="video/dav2_parallax")
    return wf


def video_depth_temporal() -> Workflow:
    """Video -> temporally consistent depth (frames aligned, one normalisation) -> grey and colour videos, plus the
    float depth of every frame as one .npy."""
    wf = Workflow()
    est = _video_depth_graph(wf, "_temporal", normalization="batch", temporal_consistency=True, temporal_smoothing=1.0)
    wf.place(
        2,
        "DAV2SaveDepth",
        "Save float depth of all frames",
        depth=est["depth"],
        filename_prefix="video/dav2_depth_frames",
        format="npy",
    )
    return wf


def video_depth_streaming() -> Workflow:
    """A whole video -> Video Depth (streamed chunk by chunk, clip-wide two-pass range) -> Save Video. Any length:
    the clip is never decoded into memory."""
    wf = Workflow()
    video = wf.place(0, "LoadVideo", file=EXAMPLE_VIDEO)
    loader = _loader(wf, 0)
    depth = wf.place(1, "DAV2VideoDepth", model=loader["model"], video=video["VIDEO"], temporal_smoothing=1.0)
    wf.place(2, "SaveVideo", video=depth["video"], filename_prefix="video/dav2_depth_streamed")
    return wf


def video_depth_anything() -> Workflow:
    """A whole video -> Video Depth with Video Depth Anything Small (32-frame temporal windows, streamed; no
    per-frame flicker) -> Save Video."""
    wf = Workflow()
    video = wf.place(0, "LoadVideo", file=EXAMPLE_VIDEO)
    loader = wf.place(0, "DAV2ModelLoader", "Load Video Depth Anything Small", model=VDA_SMALL)
    depth = wf.place(1, "DAV2VideoDepth", model=loader["model"], video=video["VIDEO"], vda_mode="offline")
    wf.place(2, "SaveVideo", video=depth["video"], filename_prefix="video/dav2_depth_vda")
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
        from tools.example_thumbnails import render_thumbnails

        for path in render_thumbnails(args.photo, args.models, only=set(args.only) if args.only else None):
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
