"""Test-only ComfyUI custom node: DA3_GEOMETRY / MOGE_GEOMETRY packets built exactly as ComfyUI 0.33's core nodes
build them (comfy_extras/nodes_depth_anything_3.py DA3Inference._execute_mono, nodes_moge.py MoGeInference), with a
known synthetic depth instead of a model (no real weights here): depth = 1 + 2 x (1 - luminance) metres, so
bright pixels are near. Loaded only by tests/comfy/test_server_geometry.py's own server."""

from __future__ import annotations

import math

import torch
from comfy_api.latest import ComfyExtension, io


def synthetic_depth(image: torch.Tensor) -> torch.Tensor:
    """[B,H,W] depth in metres from IMAGE [B,H,W,C]: 1 (white) .. 3 (black)."""
    luminance = image[..., :3].float().mean(dim=-1)
    return 1.0 + 2.0 * (1.0 - luminance)


def geometry_schema(model: str, inputs: list[io.Input]) -> io.Schema:
    """A test node "Test <model> Geometry" (category testing) with one <MODEL>_GEOMETRY output."""
    return io.Schema(
        node_id=f"DAV2Test{model}Geometry",
        display_name=f"Test {model} Geometry",
        category="testing",
        inputs=inputs,
        outputs=[io.Custom(f"{model.upper()}_GEOMETRY").Output(f"{model.lower()}_geometry")],
    )


class TestDA3Geometry(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return geometry_schema("DA3", [io.Image.Input("image")])

    @classmethod
    def execute(cls, image) -> io.NodeOutput:
        depth = synthetic_depth(image)
        b, h, w = depth.shape
        geometry = {"depth": depth.contiguous(), "image": image[..., :3].cpu(), "mode": "mono"}
        geometry["confidence"] = torch.ones(b, h, w).contiguous()  # a Small/Base model
        return io.NodeOutput(geometry)


class TestMoGeGeometry(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return geometry_schema("MoGe", [io.Image.Input("image"), io.Float.Input("fov_x_degrees", default=60.0)])

    @classmethod
    def execute(cls, image, fov_x_degrees) -> io.NodeOutput:
        depth = synthetic_depth(image)
        b, h, w = depth.shape
        aspect = w / h
        diag = (1 + aspect**2) ** 0.5
        focal = aspect / diag / math.tan(math.radians(fov_x_degrees / 2))  # MoGeModel.infer with fov_x
        f_diag = focal / 2 * diag
        k = torch.tensor([[f_diag / aspect, 0.0, 0.5], [0.0, f_diag, 0.5], [0.0, 0.0, 1.0]]).expand(b, 3, 3)
        u = (torch.arange(w) + 0.5) / w
        v = (torch.arange(h) + 0.5) / h
        grid_v, grid_u = torch.meshgrid(v, u, indexing="ij")
        pix = torch.stack([grid_u, grid_v, torch.ones_like(grid_u)], dim=-1)
        rays = torch.einsum("...ij,hwj->...hwi", torch.linalg.inv(k), pix)  # depth_map_to_point_map
        points = rays * depth.unsqueeze(-1)
        mask = torch.ones(b, h, w, dtype=torch.bool)
        normal = torch.nn.functional.normalize(torch.ones(b, h, w, 3), dim=-1)  # a MoGe-2 normal checkpoint
        geometry = {"image": image[..., :3].cpu(), "points": points, "depth": depth, "intrinsics": k.clone()}
        geometry |= {"mask": mask, "normal": normal}
        return io.NodeOutput(geometry)


class Extension(ComfyExtension):
    async def get_node_list(self):
        return [TestDA3Geometry, TestMoGeGeometry]


async def comfy_entrypoint() -> Extension:
    return Extension()
