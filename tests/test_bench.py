"""``sarzoo bench``: the report's structure through a real subprocess, its refusals, the numerics
check, and the pieces that carry its claims (modes, memory method, loader, data residency).

No timing is asserted: the machines that run the tests are shared and their clocks noisy; only
that every figure is there, positive and finite, and in a plausible range (utilisation below
1.5). ``torch.compile`` is not run by default (about a minute per compilation on 2 cores, and
``slow`` tests still run in CI): ``SARZOO_TEST_COMPILE=1`` runs the compile modes' test.
"""
import json
import math
import os

import pytest
import torch

from sarzoo.bench.modes import mode_table, select
from sarzoo.errors import SarzooError
from tests.conftest import run_cli

MODES = ["eager-fp32", "fast", "checkpoint"]
ORDER = ["eager-fp32", "checkpoint", "fast"]   # the report's: the mode table's order


@pytest.fixture(scope="module")
def report():
    res = run_cli("bench", "tiny", "--size", "32", "32", "--batch", "2", "--steps", "1", "--repeats", "1",
                  "--modes", *MODES, "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout), res.stderr


def _positive(v):
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def test_json_report(report):
    r, _ = report
    assert r["recipe"] == "tiny" and r["batch"] == 2 and r["size"] == [32, 32] and r["steps"] == 1
    assert r["repeats"] == 1 and r["torch"] == torch.__version__
    assert "cpu" in r["device"] and r["device_info"]["threads"] >= 1
    assert list(r["modes"]) == ORDER   # the table's order, whatever order --modes gave
    assert r["flops_per_image"] > 0 and r["infer_flops_per_image"] > 0
    assert r["flops_per_image"] > 2 * r["infer_flops_per_image"]   # backward costs about twice forward
    peaks = r["gemm_peak_gflops"]
    assert _positive(peaks["fp32"]) and _positive(peaks["bf16"])
    assert set(peaks) <= {"fp32", "bf16", "fp16", "tf32"}
    for name, m in r["modes"].items():
        assert "error" not in m, (name, m)
        for key in ("train_images_per_s", "infer_images_per_s", "peak_memory_mb", "train_s_per_step",
                    "peak_memory_abs_mb", "baseline_memory_mb", "warmup_s"):
            assert _positive(m[key]), (name, key, m[key])
        assert 0 < m["flop_utilization"] < 1.5 and 0 < m["infer_flop_utilization"] < 1.5, (name, m)
        assert m["peak_memory_abs_mb"] >= m["peak_memory_mb"]
        assert "VmHWM" in m["memory_method"] and m["describe"].startswith("cpu")
        assert m["compile_s"] is None and m["compile_fallback"] is None and m["nonfinite_steps"] == 0
    fast, eager, ckpt = (r["modes"][n] for n in ("fast", "eager-fp32", "checkpoint"))
    assert eager["describe"].endswith("fp32, NCHW") and eager["peak_dtype"] == "fp32"
    assert "activation checkpointing" in ckpt["describe"]
    # fast is what `sarzoo train` runs: the recipe's automatic runtime section, unchanged
    assert fast["runtime"]["channels_last"] is None and fast["runtime"]["amp"] == "auto"
    assert fast["peak_dtype"] == ("bf16" if fast["amp"] == "bf16" else "fp32")
    assert _positive(r["summary"]["fast_vs_eager_fp32_train"]) and r["summary"]["failed_modes"] == []


def test_loader_part_of_the_report(report):
    r, _ = report
    ld = r["loader"]
    assert ld["source"] == "synthetic" and ld["patch_size"] == 32 and ld["workers"] == 0
    assert [run["workers"] for run in ld["runs"]] == [0, 2]     # the runtime's choice, and 2
    assert all(_positive(run["images_per_s"]) for run in ld["runs"])
    assert ld["residency"]["in_memory"] == ld["residency"]["scenes"] > 0   # synthetic: generated in memory
    files = ld["files"]["residency"]
    assert files["memory_mapped"] == files["scenes"] > 0 and files["never_fully_loaded"]
    assert _positive(ld["files"]["images_per_s"]) and _positive(r["summary"]["loader_vs_fast_train"])


def test_progress_on_stderr(report):
    _, err = report
    for i, name in enumerate(ORDER, 1):
        assert f"bench [{i}/3] {name}:" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("args, words", [
    (["--modes", "eager-fp32", "turbo"], ["unknown mode", "eager-fp32, channels_last"]),
    (["--size", "33", "33"], ["--size 33 33", "multiple", "stride"]),
    (["--device", "cuda"], ["CUDA is not available"]),
    (["--batch", "0"], ["--batch must be at least 1"]),
])
def test_bad_input_is_one_paragraph_and_exit_2(args, words):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = run_cli("bench", "tiny", *args, "--json")
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sarzoo bench: error: "), res.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_text_report(report):
    """The table is printed from the same dict --json prints (here after a JSON round trip)."""
    import io

    from sarzoo.commands.bench import print_report

    r, _ = report
    out = io.StringIO()
    print_report(r, out)
    text = out.getvalue()
    for word in ("train img/s", "peak MB", "util", "eager-fp32", "checkpoint", "fast vs eager-fp32:",
                 "GEMM GFLOP/s", "VmHWM", "loader", "memory-mapped", "× the fast training rate"):
        assert word in text, word
    r = {**r, "modes": {**r["modes"], "fast": {"runtime": {}, "error": "the measuring process was killed"}},
         "loader": None}
    out = io.StringIO()
    print_report(r, out)
    assert "failed" in out.getvalue() and "note      fast: the measuring process was killed" in out.getvalue()


def test_mode_table_differs_from_the_reference_in_one_thing_only():
    cpu = torch.device("cpu")
    recipe_runtime = {"amp": "auto", "channels_last": None, "compile": None, "compile_mode": "default",
                      "cudnn_benchmark": None, "checkpoint": False}
    t = mode_table(recipe_runtime, cpu)
    assert list(t) == ["eager-fp32", "channels_last", "amp", "compile", "checkpoint", "fast", "fast+checkpoint",
                       "fast+compile"]   # fast does not compile on a CPU, so fast+compile is measured
    eager = t["eager-fp32"]
    assert eager["amp"] == "off" and eager["channels_last"] is False and eager["compile"] is False
    for name, key, value in (("channels_last", "channels_last", True), ("amp", "amp", "bf16"),
                             ("compile", "compile", True), ("checkpoint", "checkpoint", True)):
        assert {k for k in eager if eager[k] != t[name][k]} == {key} and t[name][key] == value
    assert t["fast"] == recipe_runtime and t["fast+checkpoint"] == {**recipe_runtime, "checkpoint": True}
    # a recipe that compiles already has no fast+compile
    assert "fast+compile" not in mode_table({**recipe_runtime, "compile": True}, cpu)
    assert list(select(t, ["fast", "eager-fp32"], cpu)) == ["eager-fp32", "fast"]
    with pytest.raises(SarzooError, match="CUDA only"):
        select(t, ["cudnn_benchmark"], cpu)


def test_numerics_fast_trains_like_fp32():
    """10 steps of 4: the shortest run that is stable; 20 steps (or 100 of 16) are as close, but take
    twice as long here (eager fp32 NCHW is the slow half). Measured over seeds 0-3: 0.04-0.6 %
    apart at 10 steps, 0.3-0.6 % at 20; PSNR 56-70 dB."""
    from sarzoo.bench.numerics import numerics

    n = numerics("tiny", steps=10, batch=4)
    assert n["steps"] == 10 and len(n["losses"]["eager-fp32"]) == len(n["losses"]["fast"]) == 10
    assert n["nonfinite_steps"] == {"eager-fp32": 0, "fast": 0}
    assert "fp32" in n["describe"]["eager-fp32"] and n["describe"]["eager-fp32"] != n["describe"]["fast"]
    assert n["loss_rel_diff"] < 0.03, n["final_loss"]
    assert n["psnr_db"] > 40, n["psnr_db"]
    # the two runs really started from the same weights on the same batches: the first losses agree closely
    first = [n["losses"][m][0] for m in ("eager-fp32", "fast")]
    assert abs(first[0] - first[1]) / first[0] < 0.02, first


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SARZOO_TEST_COMPILE") != "1",
                    reason="torch.compile takes about a minute per mode on 2 cores: set SARZOO_TEST_COMPILE=1")
def test_compile_modes_compile_or_fall_back_cleanly():
    """``compile`` (fp32) compiles; ``fast+compile`` may fall back (inductor has given NaN gradients
    for tiny under bf16 autocast, which ``compile_now`` detects): either way the mode is measured,
    and a fallback says why."""
    res = run_cli("bench", "tiny", "--size", "32", "32", "--batch", "2", "--steps", "1", "--repeats", "1",
                  "--modes", "compile", "fast+compile", "--no-loader", "--json", timeout=1200)
    assert res.returncode == 0, res.stderr
    modes = json.loads(res.stdout)["modes"]
    for name, m in modes.items():
        assert _positive(m["train_images_per_s"]) and _positive(m["infer_images_per_s"]), (name, m)
        assert _positive(m["compile_s"]), (name, m)
        if m["compiled"]:
            assert "torch.compile" in m["describe"] and m["compile_fallback"] is None
        else:
            assert m["compile_fallback"] and "torch.compile given up" in m["describe"], (name, m)
