"""The one rule for user-supplied paths: confined to the allowed folders, no existence oracle.

A node input or an HTTP route that names a file takes text from whoever can reach the server. That text is
resolved here, against root folders the caller passes in (ComfyUI's input/output/temp folders; this module
imports no ComfyUI), and refused unless it lands strictly inside one of them:

- relative names only (subfolders with ``/``; ``\\`` counts as a separator too, so a Windows-style
  ``..\\x`` is caught on every system), at most :data:`MAX_CHARS` characters, each part at most
  :data:`MAX_PART_BYTES` bytes;
- ComfyUI's annotated forms pick the root: ``name [input]``, ``name [output]``, ``name [temp]`` (core's
  ``folder_paths.annotated_filepath``: the annotation at the very end; the space before it is part of it),
  only for the roots the caller allows; a name without one uses the caller's default root;
- refused: empty names, absolute paths (``/x``, ``C:\\x``, ``C:x``, ``\\\\server\\share``), any ``..`` part,
  ``:`` (drive letters, Windows alternate data streams), NUL and other control characters, and a name that
  leaves its root once links are resolved (a symbolic link inside the folder pointing elsewhere).

Every refusal raises :class:`PathRefused` with one message per input (:func:`refusal`) that never depends
on the disk: a file outside that exists, one that does not, a folder and a link all read the same, so a
remote user learns nothing about files outside. The checks are lexical plus ``os.path.realpath``, which
needs no existence. Whether a confined file exists, and what it holds, is for the reader to say (those
files are the user's own: ComfyUI serves them through ``/view`` anyway); readers never quote file contents.

Output prefixes (Save Depth, image sequences, PLY files) follow the same rule inside the output folder:
:func:`confine_prefix` refuses instead of writing elsewhere, before ComfyUI's ``get_save_image_path``
creates any folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

#: Longest accepted user path text (characters), well below every system's PATH_MAX.
MAX_CHARS = 1024
#: Longest accepted path part (bytes, UTF-8), the NAME_MAX of common file systems.
MAX_PART_BYTES = 255
#: ComfyUI's annotations (``name [input]``...) and the root each names.
ANNOTATIONS = ("input", "output", "temp")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHOWN_CHARS = 80


class PathRefused(ValueError):
    """A user-supplied path that is not strictly inside an allowed folder; the message is :func:`refusal`'s."""


def refusal(what: str, text: object, roots: Mapping[str, object], default: str) -> str:
    """The one refusal message for ``text`` given as ``what`` (e.g. "gt_file"): the same whatever the
    reason, so it reveals nothing about the disk. Quotes at most the first 80 characters of the text."""
    shown = repr(text if not isinstance(text, str) or len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...")
    others = [f"'name [{k}]'" for k in ANNOTATIONS if k in roots and k != default]
    forms = f", or {' / '.join(others)} for those folders" if others else ""
    return (
        f"{what} {shown} is refused: use a name relative to ComfyUI's {default} folder (subfolders with '/')"
        f"{forms}; absolute paths, '..', ':', control characters, over-long names and links leading out of "
        "the folders are not allowed"
    )


def split_annotation(text: str) -> tuple[str, str | None]:
    """``(name, root key)`` of ComfyUI's annotated form ``name [output]`` (key None without one).

    Core strips the annotation and the one character before it (the space); so does this, but only when
    that character is a space, so ``x.png[output]`` keeps its last letter (core would read ``x.pn``)."""
    for key in ANNOTATIONS:
        tag = f"[{key}]"
        if text.endswith(tag):
            name = text[: -len(tag)]
            return (name[:-1] if name.endswith(" ") else name), key
    return text, None


def relative_parts(text: str) -> list[str] | None:
    """The parts of a relative name, or None when the name breaks the lexical rule (module docstring).
    Empty parts and ``.`` are dropped (``a//./b`` = ``a/b``)."""
    if not text or len(text) > MAX_CHARS or _CONTROL.search(text) or ":" in text:
        return None
    unified = text.replace("\\", "/")
    if unified.startswith("/") or os.path.isabs(text):
        return None
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." or len(p.encode("utf-8", "surrogatepass")) > MAX_PART_BYTES for p in parts):
        return None
    return parts


def _inside(path: str, root: str) -> bool:
    return path != root and os.path.commonpath((path, root)) == root


def confine(
    text: object, roots: Mapping[str, str | os.PathLike[str]], default: str = "input", what: str = "path"
) -> Path:
    """The absolute path ``text`` names strictly inside one of ``roots`` (``{"input": dir, ...}``, keys from
    :data:`ANNOTATIONS`); a name without annotation is looked up in ``roots[default]``. Links are resolved
    before the containment check. Raises :class:`PathRefused` (message :func:`refusal`) otherwise; touches
    nothing but the folder names' links, so the answer never says whether a file exists."""
    if default not in roots:
        raise ValueError(f"default root {default!r} is not one of the allowed roots {sorted(roots)}")
    if not isinstance(text, str):
        raise PathRefused(refusal(what, text, roots, default))
    name, key = split_annotation(text.strip())
    key = key or default
    parts = relative_parts(name.strip())
    if parts is None or key not in roots:
        raise PathRefused(refusal(what, text, roots, default))
    root = os.path.realpath(os.fspath(roots[key]))
    resolved = os.path.realpath(os.path.join(root, *parts))
    if not _inside(resolved, root):
        raise PathRefused(refusal(what, text, roots, default))
    return Path(resolved)


def confine_prefix(prefix: object, output_dir: str | os.PathLike[str], what: str = "filename_prefix") -> str:
    """``prefix`` (a Save-Image-style file name start, ``subfolder/name``, ``%date%``-style variables
    allowed) checked to write strictly inside ``output_dir``: the same lexical rule as :func:`confine` (no
    annotations), its folder resolved through links, and a file name part that is not empty. Returns the
    prefix with separators unified to ``/``; raises :class:`PathRefused` otherwise."""
    roots = {"output": output_dir}
    if not isinstance(prefix, str):
        raise PathRefused(refusal(what, prefix, roots, "output"))
    parts = relative_parts(prefix.strip())
    if parts is None:
        raise PathRefused(refusal(what, prefix, roots, "output"))
    root = os.path.realpath(os.fspath(output_dir))
    target = os.path.realpath(os.path.join(root, *parts))
    folder = os.path.realpath(os.path.join(root, *parts[:-1]))
    if not _inside(target, root) or not (folder == root or _inside(folder, root)):
        raise PathRefused(refusal(what, prefix, roots, "output"))
    return "/".join(parts)
