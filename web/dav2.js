// Depth Anything V2 pack: registers the frontend extension. A node whose UI output holds "dav2_depth"
// (nodes/preview.py) gets the interactive depth preview; "dav2_stats" gets the statistics table.
// The keys are ours alone, so the hook acts on any node type that sends them and ignores all others:
// no dependence on the folder name the pack was installed under.
import { app } from "../../scripts/app.js";
import { showDepthPreview } from "./depth_preview.js";
import { showDepthStats } from "./depth_stats.js";

function handleOutput(node, output) {
  if (!output) return;
  if (output.dav2_depth) {
    showDepthPreview(node, output.dav2_depth);
  }
  if (output.dav2_stats || (output.text && node.dav2Stats)) {
    showDepthStats(node, output.dav2_stats?.[0] ?? null, output.text?.[0] ?? null);
  }
}

app.registerExtension({
  name: "dav2.DepthAnythingV2",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      const r = onExecuted?.apply(this, arguments);
      try {
        handleOutput(this, output);
      } catch (err) {
        console.error(`[dav2] could not show the output of node ${this.id} (${nodeData.name}):`, err);
      }
      return r;
    };
  },
});
