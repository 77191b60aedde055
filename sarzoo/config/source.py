"""Reading recipes: YAML (safe loading only) with line tracking, ``extends:`` and ``--set``.

Every key of the merged recipe remembers where it came from (file and line, or the ``--set``
that wrote it), so validation errors can send the user to the exact spot.

Merging (``extends:`` and overrides) follows MMEngine's config rules where they apply: mappings
merge key by key, anything else is replaced; a mapping with ``_delete_: true`` replaces the
parent's instead of merging into it; and a component mapping whose ``type`` changes replaces the
parent's (the old component's options mean nothing to the new one), keeping only a step's own
``out_channels``/``stride``, which are not options of the component.
"""
from __future__ import annotations

import copy
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

import yaml

from sarzoo import catalog
from sarzoo.config.bounded_yaml import LimitError, compose, parse_yaml
from sarzoo.errors import RecipeError, did_you_mean, first_line

PathKey = tuple[Union[str, int], ...]
#: Keys of a step (stem/head) that belong to the step, not to the component it names.
STEP_KEYS = ("out_channels", "stride")
DELETE_KEY = "_delete_"


#: Bounds on what reading one recipe may cost, checked before the cost is paid (docs/recipes.md);
#: the YAML nodes' bounds (depth, count after aliases) are ``sarzoo.config.bounded_yaml``'s.
MAX_FILE_BYTES = 256 * 1024    # a recipe file is read only when it is a regular file at most this big
MAX_FILES = 64                 # recipe files one recipe may read through `extends:` (diamonds included)
MAX_KEY_PARTS = 64             # parts of one `--set` key path


def keypath(path: Iterable[str | int]) -> str:
    """``("encoder", "stages", 1, "block")`` → ``encoder.stages[1].block``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


@dataclass
class Origin:
    file: str | None
    line: int | None = None

    def error(self, message: str, path: PathKey) -> RecipeError:
        return RecipeError(message, file=self.file, line=self.line, key=keypath(path) or None)


@dataclass
class RawRecipe:
    """A merged but not yet validated recipe, with where each key came from."""

    data: dict[str, Any]
    origins: dict[PathKey, Origin] = field(default_factory=dict)
    source: str | None = None

    def origin(self, path: PathKey) -> Origin:
        """The origin of ``path`` or of its closest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.origins:
                return self.origins[p]
            p = p[:-1]
        return self.origins.get((), Origin(self.source))

    def error(self, message: str, path: PathKey) -> RecipeError:
        return self.origin(path).error(message, path)


def _record_lines(root: yaml.Node, file: str, out: dict[PathKey, Origin]) -> None:
    """Every key path's line, iteratively (the graph is already bounded by ``bounded_yaml.check_node_graph``).
    A key's own line wins over the line of its value."""
    stack: list[tuple[yaml.Node, PathKey, bool]] = [(root, (), True)]
    while stack:
        node, path, own = stack.pop()
        if own:
            out[path] = Origin(file, node.start_mark.line + 1)
        children: list[tuple[yaml.Node, PathKey, bool]] = []
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                out[path + (key,)] = Origin(file, key_node.start_mark.line + 1)
                children.append((value_node, path + (key,), False))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, path + (i,), True) for i, item in enumerate(node.value)]
        stack.extend(reversed(children))


def _read_bounded(path: Path) -> str:
    """The text of a recipe file, refusing anything but a regular file of at most
    ``MAX_FILE_BYTES`` before opening it (a FIFO or a device would block or never end)."""
    name = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise RecipeError("recipe file not found", file=name) from None
    except (OSError, ValueError) as exc:
        raise RecipeError(f"cannot read recipe: {exc}", file=name) from None
    if stat.S_ISDIR(st.st_mode):
        raise RecipeError("is a directory, not a recipe file", file=name)
    if not stat.S_ISREG(st.st_mode):
        raise RecipeError("is not a regular file (a FIFO, socket or device?); a recipe must be a file",
                          file=name)
    if st.st_size > MAX_FILE_BYTES:
        raise RecipeError(f"recipe file is {st.st_size:,} bytes; the limit is {MAX_FILE_BYTES:,} "
                          f"(recipes are a few kB)", file=name)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RecipeError(f"cannot read recipe: {exc}", file=name) from None
    if len(data) > MAX_FILE_BYTES:  # it grew between stat and read
        raise RecipeError(f"recipe file is larger than the limit of {MAX_FILE_BYTES:,} bytes", file=name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"cannot read recipe: {exc}", file=name) from None


def _parse_file(path: Path) -> tuple[dict[str, Any], dict[PathKey, Origin]]:
    name = str(path)
    text = _read_bounded(path)
    try:
        node, data = compose(text)
    except LimitError as exc:
        raise RecipeError(f"YAML refused: {exc}", file=name, line=exc.line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise RecipeError(f"invalid YAML: {problem}", file=name,
                          line=mark.line + 1 if mark else None) from None
    except RecursionError:  # a last resort: the bounds above should make this unreachable
        raise RecipeError("YAML refused: nested too deeply", file=name) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"a recipe must be a YAML mapping of keys, got {type(data).__name__}",
                          file=name, line=1)
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise RecipeError(f"keys must be strings, got {bad[0]!r}", file=name)
    origins: dict[PathKey, Origin] = {(): Origin(name, 1)}
    if node is not None:
        _record_lines(node, name, origins)
    return data, origins


def deep_merge(base: Any, override: Any) -> Any:
    """``override`` merged into ``base`` by the rules in the module docstring."""
    if isinstance(override, dict):
        if override.get(DELETE_KEY) is True:
            return {k: copy.deepcopy(v) for k, v in override.items() if k != DELETE_KEY}
        if isinstance(base, str) and "type" not in override:
            base = {"type": base}  # `block: preact` amended by `block: {act: relu}`
        if base is None:
            base = {}
        if isinstance(base, dict):
            if "type" in override and "type" in base and override["type"] != base["type"]:
                base = {k: v for k, v in base.items() if k in STEP_KEYS}
            out = dict(base)
            for k, v in override.items():
                if k != DELETE_KEY:
                    out[k] = deep_merge(base[k], v) if k in base else deep_merge(None, v)
            return out
    return copy.deepcopy(override)


def _resolve_path(ref: str, relative_to: Path | None) -> Path:
    p = Path(ref).expanduser()
    if not p.is_absolute() and relative_to is not None:
        p = relative_to / p
    if not p.exists() and p.suffix == "" and p.with_suffix(".yaml").exists():
        p = p.with_suffix(".yaml")
    return p


def _builtin_hint(name: str) -> str:
    names = catalog.builtin_names()
    return f"built-in recipes: {', '.join(names) or '(none)'}.{did_you_mean(name, names)}"


def find_recipe(ref: str | Path) -> Path:
    """A path as given, or the name of a built-in recipe (``res_cbam``; see ``sarzoo recipes``).

    Anything that exists or has a suffix is a path; the rest is a built-in name, so a typo there
    is answered with the names that do exist instead of a bare "file not found".
    """
    p = Path(ref)
    if p.exists():
        return p
    if p.suffix:
        if catalog.find_builtin(p.stem) is not None:  # e.g. the old `recipes/tiny.yaml` from a checkout
            raise RecipeError(f"recipe file not found; the built-in recipe is named without a path or "
                              f"suffix: '{p.stem}'", file=str(p))
        return p
    builtin = catalog.find_builtin(str(ref))
    if builtin is None:
        raise RecipeError(f"no recipe file or built-in recipe named '{ref}'; {_builtin_hint(str(ref))}")
    return builtin


def _resolve_parent(ref: str, relative_to: Path | None) -> Path:
    """A file relative to the extending recipe wins; failing that a bare name is a built-in one,
    so a user's own recipe can say ``extends: tiny`` without knowing where sarzoo is installed."""
    p = _resolve_path(ref, relative_to)
    if not p.exists() and not Path(ref).suffix:
        return catalog.find_builtin(ref) or p
    return p


def _load_with_extends(path: Path, stack: tuple[Path, ...], files: list[int] | None = None) -> RawRecipe:
    """``files``: a one-item counter of the files read so far for this recipe, shared by every
    branch of ``extends:`` so that a diamond of parents cannot multiply the work."""
    files = [0] if files is None else files
    path = path.resolve() if path.exists() else path
    if path in stack:
        chain = " → ".join(str(p) for p in stack + (path,))
        raise RecipeError(f"'extends' cycle: {chain}", file=str(stack[-1]), key="extends")
    files[0] += 1
    if files[0] > MAX_FILES:
        raise RecipeError(f"reading this recipe would read more than {MAX_FILES} recipe files through "
                          f"'extends'", file=str(stack[-1]) if stack else str(path), key="extends")
    data, origins = _parse_file(path)
    parents = data.pop("extends", None)
    if parents is None:
        return RawRecipe(data, origins, str(path))
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise origins[("extends",)].error("'extends' must be a path or a list of paths", ("extends",))
    merged = RawRecipe({}, {}, str(path))
    for i, parent in enumerate(parents):
        ppath = _resolve_parent(parent, path.parent)
        if not ppath.exists():
            line_key = ("extends", i) if ("extends", i) in origins else ("extends",)
            raise origins[line_key].error(f"extended recipe '{parent}' not found (looked for {ppath}); "
                                          + _builtin_hint(parent), ("extends",))
        base = _load_with_extends(ppath, stack + (path,), files)
        merged.data = deep_merge(merged.data, base.data)
        merged.origins.update(base.origins)
    merged.data = deep_merge(merged.data, data)
    merged.origins.update({k: v for k, v in origins.items() if k[:1] != ("extends",)})
    return merged


def _key_paths(d: Any, prefix: PathKey = ()) -> list[PathKey]:
    out: list[PathKey] = []
    if isinstance(d, dict):
        for k, v in d.items():
            out.append(prefix + (k,))
            out += _key_paths(v, prefix + (k,))
    return out


def parse_override(item: str) -> tuple[str, Any]:
    """``"a.b.c=value"`` → (``"a.b.c"``, value parsed as YAML)."""
    if "=" not in item:
        raise RecipeError(f"override '{item}' must look like key.path=value", file="--set")
    key, text = item.split("=", 1)
    try:
        value = parse_yaml(text) if text.strip() else ""
    except LimitError as exc:
        raise RecipeError(f"value of override '{key}' refused: {exc}", file="--set", key=key) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise RecipeError(f"value of override '{item}' is not valid YAML: {problem}", file="--set",
                          key=key) from None
    return key.strip(), value


def normalise_overrides(overrides: Mapping[str, Any] | Iterable[str] | None) -> list[tuple[str, Any]]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [(str(k), v) for k, v in overrides.items()]
    if isinstance(overrides, str):
        overrides = [overrides]
    return [parse_override(o) for o in overrides]


def apply_override(raw: RawRecipe, key: str, value: Any) -> None:
    parts: list[str | int] = [p for p in key.split(".")]
    if not key or any(p == "" for p in parts):
        raise RecipeError(f"override key '{key}' is not a valid key path", file="--set")
    if len(parts) > MAX_KEY_PARTS:
        raise RecipeError(f"override key path has {len(parts)} parts; the limit is {MAX_KEY_PARTS}",
                          file="--set")
    origin = Origin(f"--set {key}")
    node: Any = raw.data
    path: list[str | int] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not str(part).lstrip("-").isdigit():
                raise origin.error(f"'{keypath(path)}' is a list: index it with a number, got '{part}'", tuple(path))
            idx = int(part)
            if not -len(node) <= idx < len(node):
                raise origin.error(f"index {idx} is out of range: '{keypath(path)}' has {len(node)} items",
                                   tuple(path))
            part = idx % len(node)
        elif not isinstance(node, dict):
            raise origin.error(f"'{keypath(path)}' is a {type(node).__name__}, not a mapping", tuple(path))
        path.append(part)
        if not last and isinstance(node, dict) and isinstance(node.get(part), str):
            # A component named by a bare string: setting one of its options turns it into
            # the equivalent mapping, so `--set encoder.stage.block.shortcut=conv` just works.
            node[part] = {"type": node[part]}
        if last:
            if (part == "type" and isinstance(node, dict) and "type" in node and node["type"] != value):
                # a new component: the old one's options do not apply to it
                for k in [k for k in node if k not in STEP_KEYS and k != "type"]:
                    del node[k]
            node[part] = deep_merge(None, value)
        else:
            if isinstance(node, dict) and (part not in node or node[part] is None):
                node[part] = {}
            node = node[part]
    raw.origins[tuple(path)] = origin
    for k in [k for k in raw.origins if k[:len(path)] == tuple(path) and len(k) > len(path)]:
        raw.origins[k] = origin


def load_raw(recipe: str | Path | Mapping[str, Any], overrides=None, source: str = "<dict>") -> RawRecipe:
    """Read a recipe file (or take a dict, named ``source`` in errors), follow ``extends:``, apply
    overrides."""
    if isinstance(recipe, Mapping):
        data = copy.deepcopy(dict(recipe))
        parents = data.pop("extends", None)
        raw = RawRecipe({}, {(): Origin(source)}, source)
        if isinstance(parents, str):
            parents = [parents]
        if parents is not None and (not isinstance(parents, list)
                                    or not all(isinstance(p, str) for p in parents)):
            raise Origin(source).error("'extends' must be a path or a list of paths", ("extends",))
        files = [0]
        for parent in parents or []:
            base = _load_with_extends(_resolve_parent(parent, None), (), files)
            raw.data = deep_merge(raw.data, base.data)
            raw.origins.update(base.origins)
        raw.data = deep_merge(raw.data, data)
        # the dict's own keys come from the dict, not from the parent that first had them
        for key in _key_paths(data):
            raw.origins[key] = Origin(source)
    else:
        raw = _load_with_extends(find_recipe(recipe), ())
    for key, value in normalise_overrides(overrides):
        apply_override(raw, key, value)
    return raw


class _PlainDumper(yaml.SafeDumper):
    """Resolved stages share option dicts; anchors (&id001) would make the printed recipe harder
    to read and to edit by hand, so every value is written out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(recipe: Mapping[str, Any]) -> str:
    return yaml.dump(dict(recipe), Dumper=_PlainDumper, sort_keys=False, default_flow_style=None, width=100)
