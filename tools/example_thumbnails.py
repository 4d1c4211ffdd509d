"""Thumbnails of the example workflows (``example_workflows/<name>.jpg``) from real outputs.

:func:`render_thumbnails` starts ComfyUI (tests/support/comfy_harness.py), runs each workflow on a photo (by default
from ../shared/images) with the checkpoint found in ``models`` (a random-init test checkpoint if no real weights are
there), and puts input and output side by side. Run through ``tools/make_example_workflows.py --thumbnails``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tools.make_example_workflows import EXAMPLE_IMAGE, EXAMPLE_VIDEO, OFFICIAL_SMALL, OUT_DIR, ROOT, VDA_SMALL

if TYPE_CHECKING:
    import numpy as np

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
    from checkpoint_factory import write_checkpoint

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
            write_checkpoint(model_dir / OFFICIAL_SMALL, "vits", "official-pth")
        if (models / VDA_SMALL).is_file():
            shutil.copy2(models / VDA_SMALL, model_dir / VDA_SMALL)
        elif only is None or "video_depth_anything" in only:
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
