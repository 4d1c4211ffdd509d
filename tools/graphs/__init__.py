"""One graph builder for the tests, the example workflows and their thumbnails.

It lives here, under ``tools/``, as the package ``tools.graphs`` (imported from the repository root, which the test
runs and ``tools/`` scripts have on ``sys.path``): it imports nothing from ``tests/`` nor from the ``tools/`` scripts,
so both can use it without importing each other.

* :mod:`~tools.graphs.specs`: node types' sockets and widget defaults, from the pack's own V3 schemas (``nodes/``)
  and a small declared table of the core nodes used.
* :mod:`~tools.graphs.graph`: :class:`Graph`, nodes and links, written in ComfyUI's API format (``/prompt``).
* :mod:`~tools.graphs.layout`: :class:`Workflow`, a graph laid out in columns and written in the frontend's
  workflow format (``example_workflows/*.json``).
"""

from .graph import Graph, Node, Output
from .layout import Workflow
from .specs import CORE_NODES, NodeSpec, node_spec, specs_of

__all__ = ["CORE_NODES", "Graph", "Node", "NodeSpec", "Output", "Workflow", "node_spec", "specs_of"]
