"""Recipe loading: extends, overrides, resolution, and errors that name file, line and key."""
import json
import os
import textwrap

import pytest
import torch
import yaml

import sarzoo
from sarzoo.budget import BUDGET_ENV, parse_bytes
from sarzoo.config import source as _source
from sarzoo.errors import RecipeError, SarzooError
from sarzoo.plan import plan_recipe as check
from sarzoo.registry import get_registry
from tests.conftest import RECIPES, run_cli


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_extends_deep_merges(tmp_path):
    child = write(tmp_path, "child.yaml", f"""
        extends: {RECIPES / 'tiny.yaml'}
        name: child
        encoder:
          stage: {{depth: 2}}
    """)
    r = sarzoo.load_recipe(child)
    assert r["name"] == "child"
    assert r["encoder"]["stage"]["depth"] == 2
    assert r["encoder"]["stage"]["attention"]["type"] == "cbam"   # inherited through two levels
    assert r["encoder"]["stem"]["out_channels"] == 16


def test_decoder_mirrors_encoder():
    r = sarzoo.load_recipe(RECIPES / "res.yaml")
    assert [s["out_channels"] for s in r["decoder"]["stages"]] == [512, 256, 128, 64]
    assert all(s["depth"] == 2 and s["scale"] == 2 for s in r["decoder"]["stages"])
    assert all(s["upsample"]["type"] == "interp" for s in r["decoder"]["stages"])


@pytest.mark.parametrize("overrides", [
    {"encoder.stage.depth": 1, "encoder.stages.0.out_channels": 24},
    ["encoder.stage.depth=1", "encoder.stages.0.out_channels=24"],
])
def test_overrides_dict_and_list(overrides):
    r = sarzoo.load_recipe(RECIPES / "tiny.yaml", overrides)
    assert r["encoder"]["stage"]["depth"] == 1
    assert r["encoder"]["stages"][0]["out_channels"] == 24


def test_override_values_are_yaml():
    r = sarzoo.load_recipe(RECIPES / "tiny.yaml", ["input.size=[32, 48]", "encoder.stage.attention=null"])
    assert r["input"]["size"] == [32, 48]
    assert r["encoder"]["stages"][0]["attention"] is None


def test_override_option_of_string_component():
    r = sarzoo.load_recipe(RECIPES / "res.yaml", ["encoder.stage.block.shortcut=bn_relu_conv"])
    assert r["encoder"]["stage"]["block"] == {"type": "preact", "shortcut": "bn_relu_conv"}


@pytest.mark.parametrize("name, overrides", [("res", []), ("baseline", []),
                                             ("tiny", ["encoder.stage.attention=null"])])
def test_a_resolved_recipe_without_attention_resolves_again(name, overrides):
    """A checkpoint stores the resolved recipe and resolves it again when read: a stage whose attention
    resolved to null (the default of ``res``) must be accepted then, or no such model could be loaded."""
    r = sarzoo.load_recipe(name, overrides)
    assert r["encoder"]["stages"][0]["attention"] is None
    assert sarzoo.load_recipe(r) == r


def test_resolved_recipe_rebuilds_identically(tmp_path):
    r = sarzoo.load_recipe(RECIPES / "res_cbam.yaml")
    p = tmp_path / "resolved.yaml"
    p.write_text(yaml.safe_dump(r))
    assert sarzoo.load_recipe(p) == r
    a, b = sarzoo.build(RECIPES / "tiny.yaml"), sarzoo.build(sarzoo.load_recipe(RECIPES / "tiny.yaml"))
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]


def test_builtin_recipe_by_name():
    assert sarzoo.load_recipe("tiny")["name"] == "tiny"


def test_api_encode_decode():
    m = sarzoo.build("tiny").eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        x_hat, z = m(x)
        assert torch.equal(m.encode(x), z)
        assert torch.equal(m.decode(z), x_hat)
    assert m.recipe["name"] == "tiny"
    cbam = {"kind": "attention", "name": "cbam", "distribution": "sarzoo", "version": sarzoo.__version__}
    assert cbam in m.provenance()


# ---- errors -------------------------------------------------------------------------------

def err(tmp_path, text, overrides=None) -> RecipeError:
    p = write(tmp_path, "bad.yaml", text)
    with pytest.raises(SarzooError) as info:
        check(p, overrides)
    return info.value


TINY = f"extends: {RECIPES / 'tiny.yaml'}\n"


def test_unknown_component_did_you_mean(tmp_path):
    e = err(tmp_path, TINY + "encoder:\n  stage:\n    block: preactt\n")
    msg = str(e)
    assert "bad.yaml:4" in msg and "encoder.stage.block" in msg and "Did you mean 'preact'" in msg


def test_unknown_key_did_you_mean(tmp_path):
    e = err(tmp_path, TINY + "encoder:\n  stage:\n    depht: 2\n")
    assert "bad.yaml:4" in str(e) and "'depth'" in str(e) and e.key == "encoder.stage.depht"


def test_unknown_option_did_you_mean(tmp_path):
    e = err(tmp_path, TINY + "encoder:\n  stage:\n    attention: {type: cbam, reductoin: 4}\n")
    assert "'reduction'" in str(e) and "encoder.stage.attention.reductoin" in str(e)


@pytest.mark.parametrize("text,needle", [
    ("encoder:\n  stage:\n    depth: two\n", "must be an integer"),
    ("encoder:\n  stage:\n    depth: 99\n", "<= 32"),
    ("encoder:\n  stage:\n    depth: -1\n", ">= 0"),
    ("input:\n  size: [60, 60]\n", "multiple of the encoder's total stride 8"),
    ("encoder:\n  stage:\n    block: {type: preact, shortcut: identity}\n", "shortcut 'identity'"),
    ("decoder:\n  head: null\n", "must output 1"),
    ("decoder:\n  stages: [{out_channels: 1}]\n", "enlarges by 2"),
    ("encoder:\n  stages: []\n", "1 to 12 items"),
    ("encoder:\n  stages: [{depth: 1}]\n", "required key 'out_channels'"),
    ("encoder:\n  stage:\n    attention: {type: cbam, kernel_size: 4}\n", "must be one of"),
    ("input: 5\n", "must be a mapping"),
])
def test_bad_values(tmp_path, text, needle):
    e = err(tmp_path, TINY + text)
    assert needle in str(e), str(e)
    assert "bad.yaml" in str(e) or "tiny.yaml" in str(e)


def test_yaml_syntax_error_line(tmp_path):
    e = err(tmp_path, "name: x\nencoder:\n  stages: [1, 2\n")
    assert "bad.yaml:" in str(e) and "invalid YAML" in str(e)


def test_extends_cycle_and_missing(tmp_path):
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(RecipeError, match="cycle"):
        check(tmp_path / "a.yaml")
    e = err(tmp_path, "extends: nowhere.yaml\n")
    assert "nowhere.yaml" in str(e) and "not found" in str(e)


def test_missing_file():
    with pytest.raises(RecipeError, match="not found"):
        check("/nonexistent/recipe.yaml")


def test_override_errors():
    with pytest.raises(RecipeError, match="out of range"):
        check(RECIPES / "tiny.yaml", ["encoder.stages.7.out_channels=3"])
    with pytest.raises(RecipeError, match="key.path=value"):
        check(RECIPES / "tiny.yaml", ["encoder.stage.depth"])


def test_cli_errors_exit_2_without_traceback(tmp_path):
    bad = write(tmp_path, "bad.yaml", TINY + "encoder:\n  stage:\n    block: preactt\n")
    for args in (["build", bad], ["build", tmp_path / "missing.yaml"],
                 ["build", RECIPES / "tiny.yaml", "--set", "encoder.stage.depth=abc"],
                 ["build", RECIPES / "tiny.yaml", "--input-size", "60", "60"]):
        res = run_cli(*args)
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and res.stderr.strip().startswith("sarzoo build: error:")
        assert len(res.stderr.strip().splitlines()) == 1


def test_yaml11_booleans_read_as_switch_words():
    """`amp: off` is how people write it; YAML 1.1 turns it into false before we see it."""
    from sarzoo.config import load_raw, resolve

    assert resolve(load_raw(RECIPES / "tiny.yaml", ["runtime.amp=off"]))["runtime"]["amp"] == "off"
    assert resolve(load_raw(RECIPES / "tiny.yaml", ["runtime.amp=on"]))["runtime"]["amp"] == "auto"


def test_train_amp_is_read_as_runtime_amp():
    """Recipes and checkpoints written before the runtime section say train.amp: still read, under its new
    name, which wins when both are given (--set runtime.amp over an old recipe)."""
    from sarzoo.config import load_raw, resolve

    r = resolve(load_raw(RECIPES / "tiny.yaml", ["train.amp=off"]))
    assert r["runtime"]["amp"] == "off" and "amp" not in r["train"]
    assert resolve(load_raw(RECIPES / "tiny.yaml", ["train.amp=bf16", "runtime.amp=off"]))["runtime"]["amp"] == "off"


# --- merging and value rules that once had several owners -------------------------------------

def test_exponent_floats_are_numbers_everywhere(tmp_path):
    """`2e-1` (no dot) is a string to PyYAML's YAML 1.1; a component option takes it like a key."""
    r = sarzoo.load_recipe(RECIPES / "tiny.yaml", ["encoder.stem.negative_slope=2e-1", "train.lr=3e-4"])
    assert r["encoder"]["stem"]["negative_slope"] == 0.2 and r["train"]["lr"] == 3e-4
    res = run_cli("build", RECIPES / "tiny.yaml", "--set", "encoder.stem.negative_slope=2e-1", "--print-recipe",
                  "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["encoder"]["stem"]["negative_slope"] == 0.2
    child = write(tmp_path, "child.yaml",
                  f"extends: {RECIPES / 'tiny.yaml'}\nencoder:\n  stem: {{negative_slope: 1e-1}}\n")
    assert sarzoo.load_recipe(child)["encoder"]["stem"]["negative_slope"] == 0.1
    # the dict API takes the same text, and a component option gets the same one checker
    assert sarzoo.load_recipe(RECIPES / "tiny.yaml", {"encoder.stem.negative_slope": "5e-2"})["encoder"]["stem"][
        "negative_slope"] == 0.05
    with pytest.raises(RecipeError, match="negative_slope"):
        sarzoo.load_recipe(RECIPES / "tiny.yaml", {"encoder.stem.negative_slope": "steep"})


def test_changing_a_component_type_replaces_its_options(tmp_path):
    parent = sarzoo.load_recipe(RECIPES / "tiny.yaml")
    assert parent["encoder"]["stage"]["attention"]["type"] == "cbam"
    child = write(tmp_path, "child.yaml",
                  f"extends: {RECIPES / 'tiny.yaml'}\nencoder:\n  stage:\n    attention: {{type: se}}\n")
    r = sarzoo.load_recipe(child)
    se_defaults = {k: o.default for k, o in get_registry().get("attention", "se").options.items()}
    assert r["encoder"]["stage"]["attention"] == {"type": "se", **se_defaults}
    assert r["decoder"]["stage"]["attention"]["type"] == "se"
    # the same through --set on the type alone
    r2 = sarzoo.load_recipe(RECIPES / "tiny.yaml", ["encoder.stage.attention.type=se"])
    assert r2["encoder"]["stage"]["attention"] == r["encoder"]["stage"]["attention"]
    # a step keeps its own out_channels/stride when its block type changes
    stem = parent["encoder"]["stem"]
    r3 = sarzoo.load_recipe(write(tmp_path, "stem.yaml", f"extends: {RECIPES / 'tiny.yaml'}\n"
                                  "encoder:\n  stem: {type: preact}\n"))
    assert r3["encoder"]["stem"]["type"] == "preact"
    assert r3["encoder"]["stem"]["out_channels"] == stem["out_channels"]
    # the same type merges option by option, as before
    r4 = sarzoo.load_recipe(write(tmp_path, "same.yaml", f"extends: {RECIPES / 'tiny.yaml'}\n"
                                  "encoder:\n  stage:\n    attention: {type: cbam, reduction: 2}\n"))
    assert r4["encoder"]["stage"]["attention"]["reduction"] == 2
    assert r4["encoder"]["stage"]["attention"]["kernel_size"] == parent["encoder"]["stage"]["attention"]["kernel_size"]


def test_delete_key_replaces_instead_of_merging(tmp_path):
    """MMEngine's `_delete_: true`: the mapping replaces the parent's (here: cbam back to its defaults)."""
    write(tmp_path, "base.yaml", f"extends: {RECIPES / 'tiny.yaml'}\n"
          "encoder:\n  stage:\n    attention: {type: cbam, reduction: 2}\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\n"
                  "encoder:\n  stage:\n    attention: {_delete_: true, type: cbam}\n")
    cbam_defaults = {k: o.default for k, o in get_registry().get("attention", "cbam").options.items()}
    assert sarzoo.load_recipe(child)["encoder"]["stage"]["attention"] == {"type": "cbam", **cbam_defaults}


def test_a_named_component_amended_by_options(tmp_path):
    """`block: preact` in the parent, `block: {shortcut: conv}` in the child: the child amends preact."""
    write(tmp_path, "base.yaml", f"extends: {RECIPES / 'tiny.yaml'}\nencoder:\n  stage:\n    block: preact\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nencoder:\n  stage:\n    block: {shortcut: conv}\n")
    block = sarzoo.load_recipe(child)["encoder"]["stage"]["block"]
    assert block["type"] == "preact" and block["shortcut"] == "conv"


def test_builtin_names_need_no_path(tmp_path, monkeypatch):
    """Built-in recipes are named, not located: from any directory, and in a user's ``extends:``."""
    monkeypatch.chdir(tmp_path)
    assert sarzoo.load_recipe("tiny") == sarzoo.load_recipe(RECIPES / "tiny.yaml")
    mine = write(tmp_path, "mine.yaml", "extends: tiny\nname: mine\nencoder:\n  stage: {depth: 2}\n")
    r = sarzoo.load_recipe(mine)
    assert r["name"] == "mine" and r["encoder"]["stage"]["depth"] == 2
    assert r["input"]["size"] == [64, 64]                            # from tiny
    assert r["encoder"]["stage"]["attention"]["type"] == "cbam"      # from res_cbam, through tiny
    assert sarzoo.load_recipe({"extends": "tiny"})["name"] == "tiny"
    # A file of that name next to the extending recipe wins over the built-in one.
    write(tmp_path, "tiny.yaml", f"extends: {RECIPES / 'tiny.yaml'}\ninput: {{size: [32, 32]}}\n")
    assert sarzoo.load_recipe(mine)["input"]["size"] == [32, 32]


def test_unknown_builtin_name_lists_the_builtins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RecipeError) as info:
        sarzoo.load_recipe("tinny")
    msg = str(info.value)
    assert "'tinny'" in msg and "res_cbam_dualpol, res_se" in msg and "Did you mean 'tiny'" in msg
    e = err(tmp_path, "extends: res_cbma\n")
    assert "bad.yaml:1" in str(e) and "not found" in str(e) and "Did you mean 'res_cbam'" in str(e)
    # With a suffix it is a path, never a built-in: `extends: res_cbam.yaml` copied out of a
    # built-in recipe is pointed at the name that works.
    e = err(tmp_path, "extends: res_cbam.yaml\n")
    assert "not found" in str(e) and "Did you mean 'res_cbam'" in str(e)
    with pytest.raises(RecipeError, match="not found; the built-in recipe is named without a path or suffix: 'tiny'"):
        sarzoo.load_recipe("recipes/tiny.yaml")


def test_catalog():
    from sarzoo.catalog import builtin_dir, builtin_recipes, find_builtin

    recipes = {r.name: r for r in builtin_recipes()}
    assert {"baseline", "resnet_lite", "res", "res_cbam", "res_se", "res_timm_cbam", "tiny"} <= set(recipes)
    assert recipes["tiny"].path == builtin_dir() / "tiny.yaml" == find_builtin("tiny")
    assert recipes["tiny"].description.startswith("Small pre-activation + CBAM autoencoder")
    assert all(r.description for r in recipes.values())
    for not_a_name in ("", "tiny.yaml", "../recipes/tiny", "recipes/tiny", ".tiny", "nope"):
        assert find_builtin(not_a_name) is None, not_a_name


def test_recipes_command():
    res = run_cli("recipes")
    assert res.returncode == 0, res.stderr
    line = next(x for x in res.stdout.splitlines() if x.startswith("tiny "))
    assert "Small pre-activation + CBAM autoencoder" in line and line.endswith("tiny.yaml")
    res = run_cli("recipes", "--json")
    assert res.returncode == 0, res.stderr
    items = {r["name"]: r for r in json.loads(res.stdout)}
    assert set(items["tiny"]) == {"name", "description", "path"}
    assert yaml.safe_load(open(items["res"]["path"]))["description"] == items["res"]["description"]


def test_option_of_a_plugins_own_type_is_checked_by_isinstance():
    """The one checker knows YAML's types by name; any other type a plugin declares is isinstance."""
    from sarzoo.interfaces import Option

    opt = Option(tuple, (1, 2), "a pair")
    assert opt.parse((3, 4)) == (3, 4) and opt.check((3, 4)) is None
    assert "must be tuple" in opt.check([3, 4])
    assert Option(float, 0.1).parse("2e-1") == 0.2  # the same rule as a recipe's float keys


def test_dict_recipe_errors_name_the_dict_not_its_parent():
    with pytest.raises(RecipeError) as exc:
        sarzoo.load_recipe({"extends": "tiny", "train": {"lr": -1}})
    assert exc.value.file == "<dict>" and exc.value.key == "train.lr"
    with pytest.raises(RecipeError, match="'extends' must be a path or a list of paths"):
        sarzoo.load_recipe({"extends": 3})
    with pytest.raises(RecipeError, match="not valid YAML") as exc:
        sarzoo.load_recipe("tiny", ["train.lr=[1,"])
    assert "\n" not in str(exc.value)


# --- resource limits: YAML bounds (sarzoo.config.source) and the memory budget (sarzoo.plan) ---

TINY_TEXT = (RECIPES / "tiny.yaml").read_text()


def laughs(levels: int, width: int = 10) -> str:
    """A "billion laughs" document: each anchor is a list of `width` aliases of the previous one."""
    out = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    out += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("text, needle, line", [
    (laughs(9), "more than 10,000 YAML nodes", 4),   # l3 is the first anchor over the budget
    (TINY_TEXT + "description: &r [*r]\n", "recursive alias", None),
    (TINY_TEXT + "description: &r {a: {b: *r}}\n", "recursive alias", None),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 64", 1),
    ("".join(" " * i + f"k{i}:\n" for i in range(200)), "nested deeper than 64", 64),
    ("a: &a {x: 1}\n" + "".join(f"m{i}: &m{i} {{<<: *{'a' if i == 0 else f'm{i - 1}'}}}\n" for i in range(80)),
     "once aliases are expanded", None),
    ("a: [" + ", ".join(["1"] * 20_000) + "]\n", "more than 10,000 YAML nodes", 1),
])
def test_hostile_yaml_is_refused_with_file_and_line(tmp_path, text, needle, line):
    p = write(tmp_path, "bomb.yaml", "")
    p.write_text(text)
    with pytest.raises(RecipeError) as info:
        check(p)
    assert needle in str(info.value) and info.value.file == str(p.resolve())
    if line is not None:
        assert info.value.line == line


def test_big_files_fifos_and_directories_are_refused_before_reading(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(TINY_TEXT + "#" * _source.MAX_FILE_BYTES)
    with pytest.raises(RecipeError, match="the limit is 262,144"):
        check(big)
    with pytest.raises(RecipeError, match="is a directory"):
        check(tmp_path)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    res = run_cli("build", fifo, timeout=120)   # reading a FIFO would block forever
    assert res.returncode == 2 and "not a regular file" in res.stderr and "Traceback" not in res.stderr


def test_extends_diamond_is_bounded(tmp_path):
    write(tmp_path, "p0.yaml", "extends: tiny\n")
    for i in range(1, 30):   # 2**29 reads without a bound
        write(tmp_path, f"p{i}.yaml", f"extends: [p{i - 1}.yaml, p{i - 1}.yaml]\n")
    with pytest.raises(RecipeError, match="more than 64 recipe files"):
        check(tmp_path / "p29.yaml")


def test_override_values_are_bounded_too():
    with pytest.raises(RecipeError, match="more than 10,000 YAML nodes"):
        bomb = "[" + ",".join(["&a [1,1,1,1,1,1,1,1,1,1]"] + ["*a"] * 2000) + "]"
        check(RECIPES / "tiny.yaml", ["description=" + bomb])
    with pytest.raises(RecipeError, match="recursive alias"):
        check(RECIPES / "tiny.yaml", ["description=&r [*r]"])
    with pytest.raises(RecipeError, match="the limit is 64"):
        check(RECIPES / "tiny.yaml", [".".join(["a"] * 100) + "=1"])


def test_lines_are_still_recorded_after_aliases(tmp_path):
    p = write(tmp_path, "alias.yaml", """
        extends: tiny
        encoder:
          stage:
            block: &o {type: preact}
        decoder:
          stage:
            block: *o
            depth: "x"
    """)
    with pytest.raises(RecipeError) as info:
        check(p)
    assert info.value.line == 9 and info.value.key == "decoder.stage.depth"


@pytest.mark.parametrize("text, expected", [("8GB", 8 * 1024**3), ("512 MiB", 512 * 1024**2),
                                            ("1.5g", 3 * 1024**3 // 2), ("1000000", 1_000_000), ("2k", 2048)])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "x", "8XB", "-1GB", "0", "1e999GB"])
def test_parse_bytes_refuses(text):
    with pytest.raises(ValueError):
        parse_bytes(text)


def test_memory_budget_refuses_before_allocating(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "100MB")
    with pytest.raises(RecipeError) as info:   # activations alone: refused by the planner
        check("res_cbam")
    msg = str(info.value)
    assert "58,343,424 activation values" in msg and "100.0 MiB" in msg and BUDGET_ENV in msg
    assert info.value.file.endswith("res_cbam.yaml") and info.value.key.startswith(("encoder.", "decoder."))
    monkeypatch.setenv(BUDGET_ENV, "500MB")    # activations fit, weights + Adam do not
    plan = check("res_cbam")
    with pytest.raises(RecipeError, match=r"24,009,025 parameters × 16 B"):
        sarzoo.build("res_cbam")
    from sarzoo.model import count_parameters
    assert sum(count_parameters(plan).values()) == 24_009_025 == plan.parameters
    monkeypatch.setenv(BUDGET_ENV, "unlimited")
    check("res_cbam", ["input.size=[8192,8192]"])
    monkeypatch.setenv(BUDGET_ENV, "lots")
    with pytest.raises(SarzooError, match="is not a size"):
        check("tiny")


def test_huge_models_are_refused_quickly_by_default():
    import time
    t0 = time.monotonic()
    stages = "[" + ", ".join(["{out_channels: 4096, stride: 1}"] * 12) + "]"
    with pytest.raises(RecipeError, match="parameters × 16 B") as info:
        sarzoo.build("tiny", [f"encoder.stages={stages}", "encoder.stage.depth=32", "input.size=[8,8]"])
    assert time.monotonic() - t0 < 15 and info.value.key.startswith("encoder.stages[")
    with pytest.raises(RecipeError, match="activation values"):
        check("tiny", ["input.size=[16384,16384]"])


def test_checkpoint_loading_goes_through_the_budget(tmp_path, monkeypatch):
    out = tmp_path / "m.pt"
    assert run_cli("build", "tiny", "--output", out).returncode == 0
    monkeypatch.setenv(BUDGET_ENV, "1MB")
    with pytest.raises(SarzooError, match="memory budget of 1.0 MiB") as exc:
        sarzoo.load(out)
    assert str(out) in str(exc.value)  # the checkpoint whose stored recipe is too big is named
    res = run_cli("build", "tiny", "--json", env={BUDGET_ENV: "1GB"})
    mem = json.loads(res.stdout)["memory"]
    assert mem["budget_bytes"] == 1024**3 and mem["parameters"] == 124_877 and mem["estimate_bytes"] > 0
