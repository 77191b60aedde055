"""YAML parsed safely and within bounds: PyYAML's safe loader, YAML 1.2 floats, and refusal of input
whose nesting or node count (aliases expanded, "billion laughs") would cost more than a recipe can.

Why apart from ``source`` (extends, merging, ``--set``): hostile-input bounds are one concern,
checked at the door before any recipe logic sees the data; ``source`` turns ``LimitError`` into a
``RecipeError`` naming the file and line.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

#: Bounds on what parsing one recipe may cost, checked before the cost is paid (docs/recipes.md).
#: A recipe is a few kB and ~100 nodes; pure-Python PyYAML parses ~10k nodes a second on a busy core.
MAX_DEPTH = 64                 # mappings and lists nested deeper than this are refused
MAX_NODES = 10_000             # YAML nodes, also after alias expansion ("billion laughs" stops here)


class LimitError(Exception):
    """A bound of this module was exceeded; turned into a RecipeError by whoever knows the file."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but ``1e-4`` is a float as in YAML 1.2 (PyYAML 1.1 makes it a string),
    and composing stops at nesting deeper than ``MAX_DEPTH`` (before PyYAML's recursive composer
    could exhaust the Python stack) and at more than ``MAX_NODES`` nodes (before parsing the rest)."""

    _depth = 0
    _nodes = 0

    def compose_node(self, parent, index):  # noqa: D102 - PyYAML's hook
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise LimitError(f"nested deeper than {MAX_DEPTH} levels", mark.line + 1)
            if self._nodes > MAX_NODES:
                mark = self.peek_event().start_mark
                raise LimitError(f"more than {MAX_NODES:,} YAML nodes (a recipe has about a hundred)",
                                  mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+][0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_node_graph(root: yaml.Node) -> int:
    """The number of nodes ``root`` stands for once every alias is expanded, computed without
    expanding anything (each distinct node is visited once, iteratively). Refuses a recursive
    alias (a node that contains itself), more than ``MAX_NODES`` expanded nodes and an expanded
    depth beyond ``MAX_DEPTH`` with ``LimitError``."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            on_path.discard(key)
            if size[key] > MAX_NODES:
                raise LimitError(f"expands to more than {MAX_NODES:,} YAML nodes (aliases of aliases?)",
                                  node.start_mark.line + 1)
            if depth[key] > MAX_DEPTH:
                raise LimitError(f"nested deeper than {MAX_DEPTH} levels once aliases are expanded",
                                  node.start_mark.line + 1)
            continue
        if key in size:
            continue
        if key in on_path:
            raise LimitError("a recursive alias: the anchored node contains an alias of itself",
                              node.start_mark.line + 1)
        on_path.add(key)
        stack.append((node, True))
        for kid in reversed(_children(node)):
            if id(kid) in on_path:
                raise LimitError("a recursive alias: the anchored node contains an alias of itself",
                                  kid.start_mark.line + 1)
            if id(kid) not in size:
                stack.append((kid, False))
    return size[id(root)]


def compose(text: str) -> tuple[yaml.Node | None, Any]:
    """Compose once, check the node graph, then construct from the same nodes."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        check_node_graph(node)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def parse_yaml(text: str):
    """Parse one YAML value with the recipe loader's bounds; a bound exceeded raises ``LimitError``."""
    return compose(text)[1]
