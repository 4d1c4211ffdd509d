"""Video Depth: VIDEO -> depth VIDEO, streamed chunk by chunk (dav2_core.video), never the whole clip in memory."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import comfy.model_management as mm
import comfy.utils
import folder_paths

from dav2_core.colormaps import COLORMAPS
from dav2_core.inference import MAX_CHUNK
from dav2_core.pipeline import EstimateOptions
from dav2_core.ranges import VIDEO_SCOPES, VIDEO_STATISTICS, canonical, statistic_mode
from dav2_core.tiling import DEFAULT_MAX_TILES, DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE
from dav2_core.video import SEQUENCE_FORMATS, VDA_MODE_HELP, FrameRange, VideoOptions, depth_video
from dav2_core.variants import DEFAULT_INPUT_SIZE, DEFAULT_MAX_SIDE
from dav2_core.video.sequence import check_formats

from . import model_patcher
from .api import InputImpl, advanced, io, ui
from .effect_io import output_target, path_problem
from .estimate_quality import chunk_size_input, quality_inputs, size_inputs, tile_inputs, tta_input
from .preview import report_ui
from .types import SEARCH_ALIASES, DepthModel, DepthModelIO, help_text, range_combo, schema

log = logging.getLogger(__name__)

#: Sub-folder of ComfyUI's temp folder holding the encoded depth videos (cleared when ComfyUI starts).
TEMP_SUBFOLDER = "dav2_video"


def _frame_inputs() -> list[io.Input]:
    return [
        io.Int.Input(
            "start_frame",
            default=0,
            min=0,
            max=10_000_000,
            tooltip="First source frame to process (0-based). Past the end of the video: an error",
        ),
        io.Int.Input(
            "frame_count", default=0, min=0, max=10_000_000, tooltip="How many frames to process; 0 = to the end"
        ),
        io.Int.Input(
            "frame_stride",
            default=1,
            min=1,
            max=1000,
            tooltip="Process every N-th frame (the depth video keeps the source timing, so it plays at "
            "the source speed with 1/N of the frames)",
        ),
    ]


def video_options(
    input_size: int = DEFAULT_INPUT_SIZE,
    resolution: str = "keep_aspect",
    max_side: int = DEFAULT_MAX_SIDE,
    normalization: str = "clip",
    range_statistic: str = "min_max",
    invert: bool = False,
    colormap: str = "gray",
    start_frame: int = 0,
    frame_count: int = 0,
    frame_stride: int = 1,
    chunk_size: int = 0,
    image_sequence: str = "none",
    flip_tta: bool = False,
    refine: float = 0.0,
    temporal_consistency: bool = True,
    temporal_smoothing: float = 1.0,
    tile_size: int = DEFAULT_TILE_SIZE,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
    max_tiles: int = DEFAULT_MAX_TILES,
    vda_mode: str = "offline",
    tta: str = "none",
) -> VideoOptions:
    """The core's options for the node's widget values (the defaults are the node's, which are
    ``VideoOptions()``'s); ValueError / RuntimeError names a bad value."""
    if range_statistic not in VIDEO_STATISTICS:
        raise ValueError(f"unknown range_statistic {range_statistic!r}; choose one of {', '.join(VIDEO_STATISTICS)}")
    estimate = EstimateOptions(
        input_size=input_size,
        resolution=resolution,
        max_side=max_side,
        chunk_size=chunk_size or None,
        flip_tta=flip_tta,
        refine=refine,
        temporal_consistency=temporal_consistency,
        temporal_smoothing=temporal_smoothing,
        normalization=statistic_mode(VIDEO_STATISTICS[range_statistic].statistic),
        invert=invert,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        max_tiles=max_tiles,
        tta=tta,
    )
    sequence = () if image_sequence == "none" else (image_sequence,)
    return VideoOptions(
        estimate=estimate,
        range_mode=normalization,
        colormap=colormap,
        sequence=sequence,
        frames=FrameRange(start_frame, frame_count, frame_stride),
        vda_mode=vda_mode,
    )


class VideoDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2VideoDepth",
            display_name="Video Depth",
            description=(
                "Depth video of a whole VIDEO (from Load Video) without running out of memory: frames are decoded, "
                "estimated and encoded a chunk at a time, however long the clip. Flicker-free over the whole clip "
                "(temporal alignment and one normalisation range), keeps the source's timing, frame rate and audio. "
                "Connect the output to Save Video. Optionally also writes every frame as 16-bit PNG, EXR or .npy. "
                "With a Video Depth Anything model the clip runs through its temporal windows (temporally "
                "consistent depth), still streamed."
            ),
            search_aliases=SEARCH_ALIASES + ["video depth", "depth video", "long video", "streaming"],
            is_output_node=True,
            inputs=[
                DepthModelIO.Input(
                    "model",
                    tooltip="Depth model from Load Depth Anything V2 (a Video Depth Anything file gives temporally "
                    "consistent video depth)",
                ),
                io.Video.Input("video", tooltip="The video (from Load Video); read as a stream, never decoded whole"),
                *size_inputs(),
                range_combo("normalization", VIDEO_SCOPES, "How depth becomes the 0..1 picture over the clip:"),
                advanced(range_combo("range_statistic", VIDEO_STATISTICS, "What a frame's range is:")),
                io.Boolean.Input("invert", default=False, tooltip="near = black instead of white"),
                io.Combo.Input(
                    "colormap",
                    options=list(COLORMAPS),
                    default="gray",
                    tooltip="gray: ControlNet-ready grey depth, near = white; the others colour it",
                ),
                *_frame_inputs(),
                chunk_size_input(
                    "Frames per chunk; 0 = automatic from free GPU memory and a 256 MB host budget. "
                    "Progress advances and Cancel takes effect between chunks"
                ),
                io.Combo.Input(
                    "image_sequence",
                    options=["none", *SEQUENCE_FORMATS],
                    default="none",
                    tooltip="Also write every frame to the output folder:\nnone\n" + help_text(SEQUENCE_FORMATS),
                ),
                io.String.Input(
                    "filename_prefix",
                    default="video/dav2_depth",
                    tooltip="image_sequence only: folder name start in the output folder "
                    "(<prefix>_00001_frames/000000.png ...)",
                ),
                *quality_inputs(video=True),
                *tile_inputs(),
                io.Combo.Input(
                    "vda_mode",
                    options=list(VDA_MODE_HELP),
                    default="offline",
                    optional=True,
                    tooltip="Video Depth Anything models only (video_depth_anything_*.pth): how the clip runs.\n"
                    + help_text(VDA_MODE_HELP)
                    + "\nThey bring their own temporal consistency; tiles, flip TTA and refine do not apply.",
                ),
                tta_input(),
            ],
            outputs=[
                io.Video.Output(
                    display_name="video",
                    tooltip="The depth video (H.264 mp4 in ComfyUI's temp "
                    "folder, with the source's audio): connect Save Video to keep it",
                )
            ],
        )

    @classmethod
    def validate_inputs(
        cls, image_sequence: str | None = None, filename_prefix: str | None = None, normalization: str | None = None
    ) -> bool | str:
        """Refuse an EXR sequence when the graph is queued if this Python cannot write EXR, and a sequence
        prefix that would write outside the output folder. Declaring ``normalization`` makes this ComfyUI's check
        of it: the older names of ``ranges.LEGACY_NAMES`` pass, an unknown name is refused naming the choices."""
        if normalization is not None:
            try:
                canonical(normalization, "video", "normalization")
            except ValueError as exc:
                return str(exc)
        problem = None if image_sequence in (None, "none") else path_problem(filename_prefix, output_prefix=True)
        if problem:
            return problem
        try:
            check_formats(() if image_sequence in (None, "none") else (image_sequence,))
        except (ValueError, RuntimeError) as exc:
            return str(exc)
        return True

    @classmethod
    def execute(
        cls, model: DepthModel, video: InputImpl.VideoFromFile, filename_prefix: str, **settings
    ) -> io.NodeOutput:
        if not isinstance(model, DepthModel):
            raise ValueError(f"'model' must come from Load Depth Anything V2, got {type(model).__name__}")
        options = video_options(**settings)  # validates every option before anything runs
        source = video.get_stream_source()  # a path, or a BytesIO for videos made in memory
        name = Path(source).name if isinstance(source, str) else "video"
        out = (
            Path(folder_paths.get_temp_directory())
            / TEMP_SUBFOLDER
            / f"{Path(name).stem}_depth_{uuid.uuid4().hex[:8]}.mp4"
        )
        width, height = video.get_dimensions()
        sequence_dir = None
        if options.sequence:
            folder, prefix, counter, _ = output_target(filename_prefix, width, height)
            sequence_dir = folder / f"{prefix}_{counter:05}_frames"
        # like Estimate Depth: ComfyUI frees room for a chunk's activations too, not only the weights
        need = options.estimate.memory_required(model.patcher.model, options.frames.count or MAX_CHUNK, height, width)
        network = model_patcher.load(model.patcher, memory_required=need)
        bar = comfy.utils.ProgressBar(max(1, options.frames.count))
        report = depth_video(
            network,
            source,
            out,
            options,
            sequence_dir=sequence_dir,
            name=name,
            progress=lambda done, total: bar.update_absolute(done, total),
            check_cancel=mm.throw_exception_if_processing_interrupted,
            on_warning=log.warning,
            work_device=model.patcher.load_device,
            model_name=model.name,
        )
        log.info(
            "Video Depth: %d frames of %s -> %s (%.1f s%s)",
            report.frames,
            name,
            report.output,
            report.seconds,
            f", image sequence {report.sequence}" if report.sequence else "",
        )
        preview = ui.PreviewVideo([ui.SavedResult(out.name, TEMP_SUBFOLDER, io.FolderType.temp)])
        if report.problem:  # a damaged or cut file: say so on the node, not only in the server log
            log.warning("Video Depth: %s: %s", name, report.problem)
            warning = f"warning: {name}: {report.problem}"
            return io.NodeOutput(
                InputImpl.VideoFromFile(str(report.output)), ui={**preview.as_dict(), **report_ui(warning)}
            )
        return io.NodeOutput(InputImpl.VideoFromFile(str(report.output)), ui=preview)
