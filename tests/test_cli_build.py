"""``sarzoo build``, ``sarzoo list`` and the speed of ``sarzoo --help``, through real subprocesses."""
import json
import subprocess
import sys

import torch
import yaml

from tests.conftest import RECIPES, run_cli


def test_help_does_not_import_torch():
    code = ("import sys; from sarzoo.cli import make_parser; make_parser().format_help(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    res = run_cli("--help")
    assert res.returncode == 0 and "build" in res.stdout and "list" in res.stdout


def test_build_json_report(tmp_path):
    res = run_cli("build", RECIPES / "tiny.yaml", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    for key in ("name", "params", "latent_shape", "input_shape", "compression_ratio", "flops_per_image"):
        assert key in r
    assert r["name"] == "tiny" and r["input_shape"] == [1, 64, 64] and r["latent_shape"] == [4, 8, 8]
    assert r["compression_ratio"] == 16.0
    assert r["params"]["total"] == r["params"]["encoder"] + r["params"]["decoder"]
    assert sum(s["params"] for s in r["stages"]) == r["params"]["total"]
    assert r["flops_per_image"] > 0


def test_build_table_input_size_and_set():
    res = run_cli("build", RECIPES / "tiny.yaml", "--input-size", "32", "48", "--set", "encoder.stage.depth=2")
    assert res.returncode == 0, res.stderr
    assert "4×4×6" in res.stdout and "FLOPs/image" in res.stdout and "16× fewer numbers than the input" in res.stdout
    assert "bits/pixel as float32" in res.stdout
    assert "preact×2 + cbam×2" in res.stdout


def test_build_output_is_weights_only_loadable(tmp_path):
    out = tmp_path / "model.pt"
    res = run_cli("build", RECIPES / "tiny.yaml", "--output", out)
    assert res.returncode == 0, res.stderr
    payload = torch.load(out, weights_only=True)
    assert payload["recipe"]["name"] == "tiny"
    assert payload["format"] == "sarzoo.checkpoint/1" and payload["kind"] == "model"
    import sarzoo
    model = sarzoo.build(payload["recipe"])
    model.load_state_dict(payload["model"])
    # the same format as a training checkpoint: sarzoo.load opens it, with the recipe's fixed clip
    loaded, prep = sarzoo.load(out)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert (prep.vmin, prep.vmax) == (payload["recipe"]["data"]["clip"]["vmin"],
                                      payload["recipe"]["data"]["clip"]["vmax"])
    # but there is no run to resume from it
    res = run_cli("train", RECIPES / "tiny.yaml", "--resume", out)
    assert res.returncode == 2 and "untrained model file" in res.stderr and "Traceback" not in res.stderr


def test_print_recipe_is_resolved_yaml():
    res = run_cli("build", RECIPES / "res_cbam.yaml", "--print-recipe")
    assert res.returncode == 0, res.stderr
    r = yaml.safe_load(res.stdout)
    assert "extends" not in r
    assert len(r["decoder"]["stages"]) == 4
    assert r["encoder"]["stage"]["attention"] == {"type": "cbam", "reduction": 16, "kernel_size": 7}
    assert "&id" not in res.stdout and "*id" not in res.stdout, "shared dicts must be written out, not aliased"


def test_list_json_has_provenance():
    res = run_cli("list", "--json")
    assert res.returncode == 0, res.stderr
    items = json.loads(res.stdout)
    names = {(i["kind"], i["name"]) for i in items}
    for expected in [("block", "preact"), ("block", "postact"), ("block", "bottleneck"), ("block", "conv"),
                     ("attention", "cbam"), ("attention", "se"), ("attention", "timm_cbam"),
                     ("attention", "timm_light_cbam"), ("upsample", "interp"), ("upsample", "transposed"),
                     ("upsample", "pixel_shuffle"), ("upsample", "deconv"), ("upsample", "postact_up"),
                     ("stage", "standard")]:
        assert expected in names
    for i in items:
        assert i["distribution"] and i["version"] and i["description"]
    res = run_cli("list", "attention")
    assert res.returncode == 0 and "cbam" in res.stdout and "preact" not in res.stdout


def test_core_imports_no_component():
    """sarzoo/ holds no block: components only arrive through entry points."""
    from pathlib import Path
    for f in (Path(__file__).resolve().parent.parent / "sarzoo").rglob("*.py"):
        text = f.read_text()
        assert "sarzoo_resnet" not in text and "sarzoo_attention" not in text, f


def test_build_output_to_an_unwritable_place_is_a_clean_error(tmp_path):
    res = run_cli("build", RECIPES / "tiny.yaml", "--output", tmp_path)  # a directory
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "cannot write the checkpoint" in res.stderr and str(tmp_path) in res.stderr
