"""The one table of Depth Anything V2 variants: architecture, checkpoint kind, Hub location, licence.

Two model families share the table: Depth Anything V2 (``family="dav2"``, per image) and Video Depth
Anything (``family="vda"``: the same DINOv2 encoder with a spatio-temporal DPT head over 32-frame windows).

Everything else (model construction, checkpoint detection, downloads, node combos, CLI choices,
tooltips) reads this module; nothing else hard-codes an encoder size or a repo name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DepthKind = Literal["relative", "metric"]
ModelFamily = Literal["dav2", "vda"]
#: Human names of the model families (messages, labels).
FAMILY_NAMES: dict[str, str] = {"dav2": "Depth Anything V2", "vda": "Video Depth Anything"}
#: Units of depth values for each kind: the one place they are derived from the kind.
UNITS_BY_KIND: dict[str, str] = {"relative": "relative", "metric": "m"}


def units_for(kind: str) -> str:
    """'m' for metric depth, 'relative' for relative (affine-invariant inverse) depth."""
    try:
        return UNITS_BY_KIND[kind]
    except KeyError:
        raise ValueError(f"depth kind must be 'relative' or 'metric', got {kind!r}") from None


PATCH_SIZE = 14
#: Side of the square position-embedding grid the checkpoints were trained with (518 / 14).
POS_EMBED_GRID = 37
#: The network input size (short side, px) the models were trained at: the default everywhere.
DEFAULT_INPUT_SIZE = POS_EMBED_GRID * PATCH_SIZE
#: Default cap of the longest network side in "native" resolution mode (px, a multiple of 14).
DEFAULT_MAX_SIDE = 138 * PATCH_SIZE
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

LICENCE_APACHE = "Apache-2.0"
LICENCE_NC = "CC-BY-NC-4.0 (non-commercial use only)"


@dataclass(frozen=True)
class EncoderSpec:
    """DINOv2 ViT backbone + DPT head sizes for one encoder (official table)."""

    name: str  # "vits" | "vitb" | "vitl" | "vitg"
    embed_dim: int
    depth: int  # transformer blocks
    num_heads: int
    ffn: Literal["mlp", "swiglu"]
    features: int  # DPT fusion width
    out_channels: tuple[int, int, int, int]  # DPT per-level projections
    layer_ids: tuple[int, int, int, int]  # blocks whose (normed) tokens feed the DPT head
    licence: str

    @property
    def mlp_hidden(self) -> int:
        """Hidden width of the feed-forward layer (SwiGLU packs 2/3 of 4x, rounded up to 8)."""
        hidden = 4 * self.embed_dim
        if self.ffn == "swiglu":
            hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
        return hidden


ENCODERS: dict[str, EncoderSpec] = {
    "vits": EncoderSpec("vits", 384, 12, 6, "mlp", 64, (48, 96, 192, 384), (2, 5, 8, 11), LICENCE_APACHE),
    "vitb": EncoderSpec("vitb", 768, 12, 12, "mlp", 128, (96, 192, 384, 768), (2, 5, 8, 11), LICENCE_NC),
    "vitl": EncoderSpec("vitl", 1024, 24, 16, "mlp", 256, (256, 512, 1024, 1024), (4, 11, 17, 23), LICENCE_NC),
    "vitg": EncoderSpec("vitg", 1536, 40, 24, "swiglu", 384, (1536, 1536, 1536, 1536), (9, 19, 29, 39), LICENCE_NC),
}


def encoder_spec(encoder: str) -> EncoderSpec:
    """The :class:`EncoderSpec` of ``encoder`` ("vits" ... "vitg"); ValueError naming the valid ones."""
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}; expected one of {', '.join(ENCODERS)}")
    return ENCODERS[encoder]


#: Max depth (m) of each metric training set (Hypersim indoor, VKITTI outdoor): the metric head's
#: sigmoid output is scaled by it. The one place these numbers live.
METRIC_MAX_DEPTH: dict[str, float] = {"hypersim": 20.0, "vkitti": 80.0}

_SIZE_WORD = {"vits": "Small", "vitb": "Base", "vitl": "Large", "vitg": "Giant"}


@dataclass(frozen=True)
class Variant:
    """A published checkpoint: which encoder, relative or metric, and where the official file lives."""

    name: str  # stable id used by the CLI, nodes and load_model(), e.g. "vits", "metric_hypersim_vitl"
    encoder: str
    kind: DepthKind
    max_depth: float | None  # metres, metric variants only (sigmoid output x max_depth)
    hf_repo: str | None  # None: not published (vitg)
    filename: str
    dataset: str | None = None  # metric training set: "hypersim" (indoor) | "vkitti" (outdoor)
    family: ModelFamily = "dav2"
    licence_note: str | None = None  # a licence stated by the variant's own model card (else the encoder's)

    @property
    def spec(self) -> EncoderSpec:
        return ENCODERS[self.encoder]

    @property
    def licence(self) -> str:
        return self.licence_note or self.spec.licence

    @property
    def is_video(self) -> bool:
        """True for Video Depth Anything (clips of frames in, temporally consistent depth out)."""
        return self.family == "vda"

    @property
    def units(self) -> str:
        return units_for(self.kind)

    @property
    def label(self) -> str:
        """Human-readable one-liner for combos and tooltips."""
        size = _SIZE_WORD[self.encoder]
        if self.family == "vda":
            what = "metric (metres)" if self.kind == "metric" else "relative"
            return f"Video Depth Anything {size} {what}, for clips - {self.licence}"
        if self.kind == "metric":
            scene = "indoor, Hypersim" if self.dataset == "hypersim" else "outdoor, VKITTI"
            return f"{size} metric ({scene}, up to {self.max_depth:g} m) - {self.licence}"
        return f"{size} relative - {self.licence}"


def _relative(encoder: str) -> Variant:
    repo = None if encoder == "vitg" else f"depth-anything/Depth-Anything-V2-{_SIZE_WORD[encoder]}"
    return Variant(encoder, encoder, "relative", None, repo, f"depth_anything_v2_{encoder}.pth")


def _metric(dataset: str, encoder: str) -> Variant:
    max_depth = METRIC_MAX_DEPTH[dataset]
    ds_title = "Hypersim" if dataset == "hypersim" else "VKITTI"
    return Variant(
        f"metric_{dataset}_{encoder}",
        encoder,
        "metric",
        max_depth,
        f"depth-anything/Depth-Anything-V2-Metric-{ds_title}-{_SIZE_WORD[encoder]}",
        f"depth_anything_v2_metric_{dataset}_{encoder}.pth",
        dataset,
    )


#: Video Depth Anything licences as the official model cards state them (Small Apache-2.0, Base/Large
#: CC-BY-NC-4.0); the metric repositories' own cards are the authority for those files.
_VDA_METRIC_NOTE = " (see the model card)"


def _video(encoder: str, metric: bool) -> Variant:
    size = _SIZE_WORD[encoder]
    licence = ENCODERS[encoder].licence + (_VDA_METRIC_NOTE if metric else "")
    return Variant(
        f"{'metric_' if metric else ''}vda_{encoder}",
        encoder,
        "metric" if metric else "relative",
        None,  # the metric VDA head outputs metres directly (ReLU), no max_depth scaling
        f"depth-anything/{'Metric-' if metric else ''}Video-Depth-Anything-{size}",
        f"{'metric_' if metric else ''}video_depth_anything_{encoder}.pth",
        family="vda",
        licence_note=licence,
    )


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        *(_relative(e) for e in ("vits", "vitb", "vitl", "vitg")),
        *(_metric(d, e) for d in ("hypersim", "vkitti") for e in ("vits", "vitb", "vitl")),
        *(_video(e, m) for m in (False, True) for e in ("vits", "vitb", "vitl")),
    ]
}
#: Number of frames in one Video Depth Anything window (its temporal position table).
VDA_WINDOW = 32

#: Variants whose official file can be downloaded from the Hub.
DOWNLOADABLE: tuple[str, ...] = tuple(n for n, v in VARIANTS.items() if v.hf_repo)


def get_variant(name: str) -> Variant:
    """Look a variant up by id, with an error that lists the valid ids."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"Unknown model variant {name!r}; choose one of: {', '.join(VARIANTS)}") from None
