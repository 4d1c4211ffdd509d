"""Depth Stats: per-image and batch statistics of a DEPTH as text, UI data and an analysis plot."""

from __future__ import annotations

from dav2_core.plots import as_image, plot_depth_analysis
from dav2_core.stats import depth_stats, format_stats

from .api import image_output, io, ui
from .types import SEARCH_ALIASES, batch_index_input, check_batch_index, depth_input, require_depth, schema


class DepthStats(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="DAV2DepthStats",
            display_name="Depth Stats",
            description=(
                "Statistics of a depth map per image and for the whole batch (min, max, range, mean, median, "
                "std, p1/p5/p95/p99, valid pixels, units), shown on the node after it runs, plus an analysis "
                "plot: histogram with mean/median, middle row and column profiles, and a 3D surface."
            ),
            search_aliases=SEARCH_ALIASES + ["depth statistics", "histogram", "depth analysis"],
            is_output_node=True,
            inputs=[
                depth_input("depth", tooltip="DEPTH from Estimate Depth (metres for metric models)"),
                batch_index_input(
                    "plot_index", tooltip="Which image of the batch the plot shows (0 = first); the stats cover all"
                ),
            ],
            outputs=[
                io.String.Output(
                    display_name="stats",
                    tooltip="Readable statistics: the batch first, then each image, in the depth's units",
                ),
                io.Image.Output(
                    display_name="plot",
                    tooltip="Analysis plot [1,900,1200,3] of the chosen image: histogram, "
                    "middle row/column profiles, 3D surface",
                ),
            ],
        )

    @classmethod
    def execute(cls, depth: object, plot_index: int) -> io.NodeOutput:
        depth_map = require_depth(depth)
        check_batch_index("plot_index", plot_index, depth_map.batch, "image(s)")
        stats = depth_stats(depth_map)
        text = format_stats(stats)
        title = f"Image {plot_index + 1} of {depth_map.batch}" + (f" - {depth_map.model}" if depth_map.model else "")
        plot = as_image(plot_depth_analysis(depth_map.values[plot_index], depth_map.units, title=title))
        plot_preview = ui.PreviewImage(plot, cls=cls).as_dict()  # the plot shown on the node
        return io.NodeOutput(text, image_output(plot), ui={"text": [text], "dav2_stats": [stats], **plot_preview})
