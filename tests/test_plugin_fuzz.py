"""A fuzzer of hostile plugins: whatever a third-party distribution declares or returns, sarzoo
answers with exit status 0 or 2 and never a traceback, and commands that do not use it keep working.

Each example is a real distribution (``*.dist-info`` written by ``sarzoo.testing.dists``) with a
mutated ``Component``/``Option`` declaration, hostile factories and contracts, and sometimes
corrupt metadata. For each, in-process through ``sarzoo.cli.main`` (a traceback would be an
exception escaping ``main``): ``sarzoo build tiny`` and ``sarzoo list --json`` succeed with valid
JSON, ``sarzoo plugins --json`` succeeds, and ``sarzoo build tiny`` with the hostile component in
the recipe exits 0 or 2 and, on 2, names the distribution.

CI runs 200 examples; ``--hypothesis-profile=deep`` runs 2000. In-process means torch is already
imported: a malformed ``entry_points.txt`` also breaks ``import torch`` in a fresh process (torch
reads every distribution's entry points); the CLI turns that into one clear error, which
``tests/test_plugins.py`` checks in subprocesses.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sarzoo.cli import main
from sarzoo.registry import normalize
from sarzoo.testing.dists import installed, write_distribution

# Python source snippets for each field of the declaration: (valid values, hostile values). Each
# example mutates a few fields and keeps the others valid, so that the hostile value is the one
# that counts (and hypothesis shrinks towards the all-valid plugin, which must build).
FIELDS = {
    "option_name": (["'size'", "'gain'"], ["'in_channels'", "'type'", "'a b'", "3", "''",
                                           "'channels'", "'stride'"]),
    "type": (["int", "(int, float)"], ["'int'", "3", "None", "()", "[int]", "'nonsense'",
                                        "(lambda: 1)", "(int, 3)", "str", "bool", "Odd()"]),
    "default": (["1"], ["0.5", "'a'", "None", "True", "[1, 2]", "{'k': 1}", "object()", "(lambda: 1)",
                        "float('nan')", "{1: object()}", "b'x'", "10 ** 400", "[float('inf')]",
                        "Odd()", "-1"]),
    "choices": (["None", "(1, 2, 3)", "[1, 5]"], ["3", "'abc'", "[]", "(object(),)", "{1, 2}",
                                                 "range(3)", "[float('nan')]", "Odd()", "(2, 3)",
                                                 "(1, object())"]),
    "min": (["None", "0"], ["'a'", "float('inf')", "float('nan')", "True", "[1]", "5", "Odd()"]),
    "max": (["None", "100"], ["'a'", "float('-inf')", "float('nan')", "[1]", "-5", "Odd()"]),
    "nullable": (["False", "True"], ["1", "'yes'", "None", "Odd()"]),
    "doc": (["'a doc'"], ["3", "None", "b'doc'", "Odd()"]),
    "description": (["'a hostile component'"], ["3", "None", "['x']", "Odd()"]),
    "factory": (["make_ok"], ["lambda *a, **k: None", "lambda *a, **k: 3", "lambda *a, **k: print",
                              "make_raises", "make_wrong_channels", "make_bad_forward",
                              "make_uninitialised", "make_exits", "3", "'make_ok'", "make_odd"]),
    "output_shape": (["None", "good_shape"], [
        "lambda s, a: (1, 2)", "lambda s, a: None", "lambda s, a: (0, 1, 1)",
        "lambda s, a: ('a', 1, 1)", "lambda s, a: (1.5, 2, 2)", "lambda s, a: 1 / 0",
        "lambda s, a: (True, 1, 1)", "lambda s, a: (-1, 4, 4)", "lambda s, a: 'abc'",
        "lambda s, a: (s[0] + 1, s[1], s[2])", "lambda s, a: Odd()", "lambda s, a: sys.exit(3)",
        "lambda s, a: (10 ** 30, s[1], s[2])", "3"]),
    "input_multiple": (["None", "lambda a: 1"], [
        "lambda a: 0", "lambda a: 'x'", "lambda a: 2.5", "lambda a: -1", "lambda a: True",
        "lambda a: None", "lambda a: 10 ** 30", "lambda a: Odd()", "lambda a: {}['k']", "'x'",
        "lambda a: 3"]),
    "check": (["None", "lambda a: None"], [
        "lambda a: 3", "lambda a: 'not with these arguments'", "lambda a: [1]", "lambda a: b'x'",
        "lambda a: Odd()", "lambda a: 1 / 0", "lambda a: sys.exit(3)", "lambda a: a.clear()"]),
}
METADATA = (["ok"], ["undecodable_metadata", "malformed_entry_points", "no_version", "no_name",
                     "bad_entry_point_value", "undecodable_entry_points", "empty_metadata"])

SOURCE = '''
import sys
from sarzoo import hookimpl
from sarzoo.interfaces import Component, Option


class Odd:
    """A value whose every method misbehaves."""
    def __repr__(self): raise RuntimeError("repr")
    def __eq__(self, other): raise RuntimeError("eq")
    def __hash__(self): raise RuntimeError("hash")
    def __index__(self): raise RuntimeError("index")
    def __len__(self): raise RuntimeError("len")
    def __iter__(self): raise RuntimeError("iter")
    def __bool__(self): raise RuntimeError("bool")


def _module(kwargs, kind):
    from torch import nn
    if kind == "block":
        return nn.Conv2d(kwargs["in_channels"], kwargs["out_channels"], 3,
                         stride=kwargs["stride"], padding=1)
    return nn.Identity()


def make_ok(*args, **kwargs):
    names = {{"block": ("in_channels", "out_channels", "stride"), "attention": ("channels",)}}[KIND]
    kwargs.update(zip(names, args))
    return _module(kwargs, KIND)


def make_raises(*args, **kwargs):
    raise RuntimeError("factory exploded")


def make_wrong_channels(*args, **kwargs):
    from torch import nn
    return nn.Conv2d(1, 1, 1) if KIND == "attention" else nn.Identity()


def make_bad_forward(*args, **kwargs):
    from torch import nn

    class Bad(nn.Module):
        def forward(self, x):
            return None
    return Bad()


def make_uninitialised(*args, **kwargs):
    from torch import nn

    class Lazy(nn.Module):
        def __init__(self):
            pass
    return Lazy()


def make_exits(*args, **kwargs):
    sys.exit(3)


def make_odd(*args, **kwargs):
    return Odd()


def good_shape(s, a):
    if KIND == "block":
        return (a["out_channels"], -(-s[1] // a["stride"]), -(-s[2] // a["stride"]))
    return tuple(s)


KIND = {kind!r}


@hookimpl
def sarzoo_components():
    return [Component({kind!r}, {name!r}, {factory}, {description},
                      options={{{option_name}: Option({type}, {default}, doc={doc}, choices={choices},
                                                     min={min}, max={max}, nullable={nullable})}},
                      output_shape={output_shape}, input_multiple={input_multiple}, check={check})]
'''

_counter = itertools.count()


@st.composite
def hostile_plugins(draw):
    """(distribution name, component kind, component name, module source, metadata mutation)."""
    n = next(_counter)
    kind = draw(st.sampled_from(["attention", "block"]))
    hostile = draw(st.sets(st.sampled_from([*FIELDS, "metadata"]), max_size=3))
    values = {field: draw(st.sampled_from(choices[field in hostile]))
              for field, choices in {**FIELDS, "metadata": METADATA}.items()}
    name = f"hostile{n}"
    source = SOURCE.format(kind=kind, name=name, **{k: v for k, v in values.items() if k != "metadata"})
    if draw(st.booleans()):  # no option at all
        source = source.replace("options={", "options={} and {")
    return f"sarzoo-fz-{n}", kind, name, source, values["metadata"]


def _write(site: Path, dist: str, kind: str, name: str, source: str, meta: str) -> None:
    module = dist.replace("-", "_")
    info = write_distribution(site, dist, "0.3", modules={module: source}, plugins={"fz": module},
                              components={f"{kind}.{name}": module})
    if meta == "undecodable_metadata":
        (info / "METADATA").write_bytes(b"Metadata-Version: 2.1\nName: \xff\xfe\x80" + dist.encode()
                                        + b"\nVersion: 0.3\n")
    elif meta == "malformed_entry_points":
        (info / "entry_points.txt").write_text(f"[sarzoo.plugins]\nthis line has no equals sign\n"
                                               f"fz = {module}\n")
    elif meta == "no_version":
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\n")
    elif meta == "no_name":
        (info / "METADATA").write_text("Metadata-Version: 2.1\nVersion: 0.3\n")
    elif meta == "bad_entry_point_value":
        (info / "entry_points.txt").write_text(f"[sarzoo.plugins]\nfz = {module}:::not valid[[\n")
    elif meta == "undecodable_entry_points":
        (info / "entry_points.txt").write_bytes(b"[sarzoo.plugins]\nfz = \xff\xfe" + module.encode()
                                                + b"\n")
    elif meta == "empty_metadata":
        (info / "METADATA").write_text("")


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    log = logging.getLogger("sarzoo.plugins")
    level = log.level   # `sarzoo plugins` quiets the logger: a process-wide change, undone here
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))   # an exception escaping here is the traceback a user would see
    finally:
        log.setLevel(level)
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return code, out.getvalue(), err.getvalue()


ENV = {"SARZOO_STRICT_PLUGINS": None, "SARZOO_DISABLE_PLUGINS": None, "SARZOO_TRACE_PLUGINS": None}


#: a couple of hundred in CI; the ``deep`` profile (tests/conftest.py) raises it
EXAMPLES = 200 if settings.default.max_examples <= 100 else settings.default.max_examples


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate],   # no shrinking: each example prints in full
          suppress_health_check=[HealthCheck.too_slow])
@given(plugin=hostile_plugins())
def test_a_hostile_plugin_never_causes_a_traceback_nor_breaks_other_commands(plugin):
    dist, kind, name, source, meta = plugin
    site = Path(tempfile.mkdtemp(prefix="sarzoo-fuzz-"))
    try:
        _write(site, dist, kind, name, source, meta)
        with installed(site, env=ENV):
            code, out, err = _run("list", "--json")
            assert code == 0, err
            assert {c["name"] for c in json.loads(out)} >= {"preact", "cbam", "conv"}
            code, out, err = _run("plugins", "--json")
            assert code == 0, err
            records = json.loads(out)
            assert any(r["distribution"] == "sarzoo" and r["status"] == "ok" for r in records)
            code, out, err = _run("build", "tiny", "--json")
            assert code == 0, err
            json.loads(out)
            where = "encoder.stage.block" if kind == "block" else "encoder.stage.attention"
            code, out, err = _run("build", "tiny", "--json", "--set", f"{where}={name}")
            assert code in (0, 2), (code, err)
            if code == 2:   # the plugin's fault, naming it; or its own check() refusing the recipe
                assert (normalize(dist) in normalize(err)
                        or f"{kind} '{name}': not with these arguments" in err), err
            else:
                json.loads(out)
    finally:
        shutil.rmtree(site, ignore_errors=True)
