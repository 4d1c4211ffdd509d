#!/usr/bin/env python3
"""Start a local ComfyUI with this pack loaded, for trying it by hand (``make comfyui``).

Runs ``main.py --cpu --listen 127.0.0.1 --port PORT`` in ``COMFYUI_DIR`` (default
``<repo>/.comfyui/ComfyUI``, installed and linked by ``tools/setup_comfyui.py``). For another checkout
named by ``COMFYUI_DIR`` the pack is added through a generated ``extra_model_paths.yaml`` (a
``custom_nodes`` entry pointing at ``.comfyui/custom_nodes``), so nothing in that checkout changes.
Arguments after ``--`` go to main.py unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_comfyui import PACK_NAME, REPO, resolve_comfyui_dir  # noqa: E402


def external_pack_config() -> Path:
    """extra_model_paths.yaml that adds ``.comfyui/custom_nodes`` (holding a link to this repo)."""
    nodes_dir = REPO / ".comfyui" / "custom_nodes"
    nodes_dir.mkdir(parents=True, exist_ok=True)
    link = nodes_dir / PACK_NAME
    if not link.is_symlink():
        link.symlink_to(REPO, target_is_directory=True)
    config = REPO / ".comfyui" / "extra_model_paths.dav2.yaml"
    config.write_text(f"dav2_pack:\n    custom_nodes: {nodes_dir}\n", encoding="utf-8")
    return config


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--listen", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--gpu", action="store_true", help="let ComfyUI use the GPU (default: --cpu)")
    args = parser.parse_args(own)

    comfyui_dir, managed = resolve_comfyui_dir()
    main_py = comfyui_dir / "main.py"
    if not main_py.is_file():
        raise SystemExit(f"no ComfyUI at {comfyui_dir}: run `make comfyui-setup` (or tools/setup_comfyui.py) first")
    cmd = [sys.executable, str(main_py), "--listen", args.listen, "--port", str(args.port)]
    if not args.gpu:
        cmd.append("--cpu")
    if managed and not (comfyui_dir / "custom_nodes" / PACK_NAME).exists():
        raise SystemExit(f"the pack is not linked into {comfyui_dir / 'custom_nodes'}: run tools/setup_comfyui.py")
    if not managed and not (comfyui_dir / "custom_nodes" / PACK_NAME).exists():
        cmd += ["--extra-model-paths-config", str(external_pack_config())]
    cmd += extra
    print(f"[run_comfyui] {' '.join(cmd)}  (in {comfyui_dir})", flush=True)
    print(f"[run_comfyui] open http://{args.listen}:{args.port}", flush=True)
    os.chdir(comfyui_dir)
    os.execv(sys.executable, cmd)


if __name__ == "__main__":
    sys.exit(main())
