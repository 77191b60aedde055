"""Faults a user can cause: crafted or damaged checkpoints, NaN losses, corrupt data, bad input
(issue 3 points 5, 6; issue 9 point 1).

Each must end in a clean one-paragraph message and exit status 2, never a traceback, and must
not damage anything already on disk.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import os
import pickle
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sarzoo.checkpoint import FORMAT
from sarzoo.checkpoint import read as load_checkpoint
from sarzoo.cli import main
from sarzoo.errors import SarzooError
from tests._train_common import TINY, log_records, one_torch_thread, run_sarzoo, train_args


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def run_main(args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def assert_clean_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("sarzoo train: error: "), err
    for n in needles:
        assert n in err, (n, err)


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# --- malicious checkpoints --------------------------------------------------------------------

class _Evil:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


_UNRESTRICTED_UNPICKLE = """
import pickle, sys, zipfile
p = sys.argv[1]
if zipfile.is_zipfile(p):  # torch.save's container: the pickle is the data.pkl member
    with zipfile.ZipFile(p) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
else:
    data = open(p, "rb").read()
pickle.loads(data)
"""


def _crafted(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    marker = tmp_path / f"PWNED-{kind}"
    path = tmp_path / f"evil-{kind}.pt"
    payload = {"format": FORMAT, "model": {}, "x": _Evil(marker)}
    if kind == "torch-zip":
        torch.save(payload, path)                           # the usual checkpoint container
    elif kind == "bare-pickle-p2":
        path.write_bytes(pickle.dumps(payload, protocol=2))  # a bare pickle, as legacy torch wrote
    else:
        path.write_bytes(pickle.dumps(payload, protocol=5))
    return path, marker


@pytest.mark.parametrize("kind", ["torch-zip", "bare-pickle-p2", "bare-pickle-p5"])
def test_crafted_checkpoint_is_refused_and_never_executes(tmp_path, kind):
    path, marker = _crafted(tmp_path, kind)
    with pytest.raises(SarzooError, match="refused to load") as exc:
        load_checkpoint(path)
    assert str(path) in str(exc.value)
    if kind != "bare-pickle-p5":  # that one is refused earlier, at an opcode the safe unpickler lacks
        assert "GLOBAL exec" in str(exc.value)
    assert not marker.exists()

    before = set(tmp_path.iterdir())
    code, _, err = run_main(["train", TINY, "--resume", path])
    assert_clean_error(code, err, str(path), "refused to load")
    assert not marker.exists()
    assert set(tmp_path.iterdir()) == before

    # the file really is armed: an unrestricted unpickler (what a plain torch.load without
    # weights_only amounts to) runs it; shown in a child process with pickle itself
    r = subprocess.run([sys.executable, "-c", _UNRESTRICTED_UNPICKLE, str(path)],
                       capture_output=True, text=True, timeout=120)
    assert marker.exists(), r.stderr


def test_truncated_and_foreign_files_are_clean_errors(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"format": FORMAT, "recipe": {}, "model": {"w": torch.ones(3)}}, good)
    data = good.read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    torch.save({"w": torch.ones(3)}, tmp_path / "foreign.pt")
    for name, needle in (("half.pt", "not a readable sarzoo checkpoint"),
                         ("foreign.pt", "not a sarzoo checkpoint"),
                         ("missing.pt", "no such checkpoint file")):
        with pytest.raises(SarzooError, match=needle):
            load_checkpoint(tmp_path / name)


# --- damaged checkpoints: --resume leaves the run exactly as it was -----------------------------

def checksums(d: Path) -> dict[str, str]:
    """Every entry under ``d``: a file by its SHA-256, anything else by its kind (never opened)."""
    out = {}
    for p in sorted(d.rglob("*")):
        mode = os.lstat(p).st_mode
        if stat.S_ISREG(mode):
            out[str(p.relative_to(d))] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p.relative_to(d))] = "dir" if stat.S_ISDIR(mode) else f"mode {stat.S_IFMT(mode):o}"
    return out


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("damaged") / "run"
    code, _, err = run_main(train_args(out, "--max-steps", 2, "--device", "cpu",
                                       sets=("train.preview_samples=0", "train.histogram_every=0")))
    assert code == 0, err
    return out


DAMAGE = {
    "epoch-str": (lambda c: c.__setitem__("epoch", "three"), "key 'epoch'"),
    "no-optimizer": (lambda c: c.pop("optimizer"), "key 'optimizer'"),
    "stages-null": (lambda c: c["recipe"]["encoder"].__setitem__("stages", None), "key 'encoder.stages'"),
    "huge-channels": (lambda c: c["recipe"]["encoder"]["stages"][0].__setitem__("out_channels", 10 ** 7),
                      "out_channels"),
    "weight-shape": (lambda c: c["model"].__setitem__("encoder.stem.conv.weight", torch.zeros(8, 1, 3, 3)),
                     "key 'model.encoder.stem.conv.weight'"),
    "extra-weight": (lambda c: c["model"].__setitem__("extra", torch.zeros(1)), "key 'model.extra'"),
    "optimizer-moment": (lambda c: c["optimizer"]["state"][5].__setitem__("exp_avg_sq", torch.zeros(8)),
                         "key 'optimizer.state.5.exp_avg_sq'"),
    "numpy-rng-size": (lambda c: c["rng"]["numpy"].__setitem__("keys", c["rng"]["numpy"]["keys"][:100]),
                       "key 'rng.numpy.keys'"),
    "torch-rng-size": (lambda c: c["rng"].__setitem__("torch", c["rng"]["torch"][:-8]), "key 'rng.torch'"),
    "python-rng-size": (lambda c: c["rng"]["python"].__setitem__("internal", c["rng"]["python"]["internal"][:-1]),
                        "key 'rng.python.internal'"),
    "scheduler-mode": (lambda c: c["scheduler"]["plateau"].__setitem__("mode", 3), "key 'scheduler.plateau.mode'"),
}


@pytest.mark.parametrize("how", ["path", "auto"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_from_a_damaged_checkpoint_leaves_the_run_byte_identical(trained_run, tmp_path, damage, how):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    ck = torch.load(run / "last.pt", weights_only=True)
    mutate, needle = DAMAGE[damage]
    mutate(ck)
    torch.save(ck, run / "last.pt")
    before = checksums(run)
    args = (train_args(run, "--resume", "auto", "--max-steps", 4) if how == "auto"
            else ["train", TINY, "--resume", run / "last.pt", "--max-steps", 4])
    code, _, err = run_main(args)
    assert_clean_error(code, err, str(run / "last.pt"), needle)
    assert checksums(run) == before


def test_resume_from_a_fifo_is_refused_without_waiting_for_a_writer(trained_run, tmp_path):
    """A FIFO is never opened (opening one blocks until a writer comes): a real subprocess, with a
    timeout, so a regression fails instead of hanging the suite."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "last.pt").unlink()
    os.mkfifo(run / "last.pt")
    before = checksums(run)
    for args in (["train", TINY, "--resume", run / "last.pt", "--max-steps", 4],
                 train_args(run, "--resume", "auto", "--max-steps", 4)):
        r = run_sarzoo(args, timeout=120)
        assert r.returncode == 2, r.stderr
        assert "FIFO" in r.stderr and str(run / "last.pt") in r.stderr and "Traceback" not in r.stderr
        assert checksums(run) == before


def test_a_damaged_model_part_is_refused_before_anything_is_built(trained_run, tmp_path):
    """``read`` checks the weights against the model the stored recipe builds on the meta device."""
    ck = torch.load(trained_run / "last.pt", weights_only=True)
    bad = copy.deepcopy(ck)
    bad["model"]["decoder.head.conv.weight"] = torch.zeros(1, 8, 4, 4)
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(SarzooError, match=r"key 'model.decoder.head.conv.weight': has shape \(1, 8, 4, 4\)"):
        load_checkpoint(tmp_path / "bad.pt")


# --- NaN / Inf --------------------------------------------------------------------------------

def test_nonfinite_losses_are_skipped_counted_logged_then_stop_keeping_last_good_checkpoint(tmp_path):
    """A real cause: fp16 autocast with an absurd learning rate overflows after the first update."""
    out = tmp_path / "run"
    code, stdout, err = run_main(train_args(out, "--max-steps", 30, sets=[
        "runtime.amp=fp16", "train.lr=10", "train.warmup.epochs=0", "train.checkpoint_every_steps=1",
        "train.max_nonfinite=3"]))
    assert code == 2
    assert "Traceback" not in err
    assert "3 non-finite (NaN/Inf) losses in a row" in err
    assert f"the last good checkpoint {out / 'last.pt'} (step 1) is kept" in err
    assert "step skipped (1 in a row, 1 in total)" in stdout

    recs = log_records(out)
    bad = [r for r in recs if r["event"] == "nonfinite"]
    assert [(r["step"], r["in_a_row"], r["total"]) for r in bad] == [(2, 1, 1), (3, 2, 2), (4, 3, 3)]
    assert recs[-1]["event"] == "stop" and recs[-1]["reason"] == "nonfinite"
    assert not [r for r in recs if r["event"] == "checkpoint" and r["step"] > 1]

    ck = load_checkpoint(out / "last.pt")
    assert ck["step"] == 1 and ck["nonfinite"] == {"total": 0, "in_a_row": 0}
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train/nonfinite_total")] == [(2, 1.0), (3, 2.0), (4, 3.0)]


def test_update_that_makes_weights_nan_never_reaches_a_checkpoint(tmp_path):
    """Adam with eps 0 divides 0 by 0 for a parameter without gradient: the weights go NaN."""
    out = tmp_path / "run"
    code, _, err = run_main(train_args(out, "--max-steps", 10, sets=[
        "train.optimizer.eps=0", "train.checkpoint_every_steps=1"]))
    assert code == 2 and "Traceback" not in err
    assert "weights became non-finite (NaN/Inf) by step 1" in err
    assert "no checkpoint had been written yet" in err and "train.optimizer.eps" in err
    assert not (out / "last.pt").exists()
    recs = log_records(out)
    assert [r["step"] for r in recs if r["event"] == "checkpoint_refused"] == [1]


# --- corrupt input data -----------------------------------------------------------------------

def test_corrupt_data_file_is_named_before_training_and_out_dir_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    bad = tmp_path / "scene.npy"
    bad.write_bytes(b"\x93NUMPY garbage, not an array")
    code, stdout, err = run_main(train_args(out, "--data", bad))
    assert_clean_error(code, err, str(bad))
    assert snapshot(out) == {"notes.txt": b"mine"}
    assert "epoch" not in stdout


def test_data_corrupted_between_runs_fails_resume_without_touching_the_run(tmp_path):
    data = tmp_path / "patches.npy"
    rng = np.random.default_rng(0)
    np.save(data, rng.gamma(4.0, 0.25, size=(12, 32, 32)).astype(np.float32))
    out = tmp_path / "run"
    code, _, err = run_main(train_args(out, "--data", data, "--max-steps", 2))
    assert code == 0, err
    before = snapshot(out)
    data.write_bytes(data.read_bytes()[:200])  # truncated by a bad copy, say
    code, _, err = run_main(train_args(out, "--resume", "auto", "--max-steps", 4))
    assert_clean_error(code, err, str(data))
    assert snapshot(out) == before


# --- bad command line / recipe ----------------------------------------------------------------

@pytest.mark.parametrize("extra, needles", [
    (["--set", "train.bogus=1"], ["train.bogus", "unknown key"]),
    (["--set", "train.optimizer.kind=sgd"], ["train.optimizer.kind"]),
    (["--set", "runtime.amp=fp8"], ["runtime.amp"]),
    (["--set", "train.lr=-1"], ["train.lr"]),
    (["--resume", "/nonexistent/dir/last.pt"], ["/nonexistent/dir/last.pt", "no such checkpoint"]),
    (["--epochs", "0"], ["--epochs"]),
    (["--max-steps", "-3"], ["--max-steps"]),
    (["--set", "train.batch_size=4096"], ["batch_size", "fewer than one batch"]),
], ids=["unknown-key", "unknown-nested-key", "bad-choice", "out-of-range", "resume-missing", "epochs-0",
        "max-steps-negative", "batch-larger-than-data"])
def test_bad_input_exits_2_with_one_paragraph(tmp_path, extra, needles):
    out = tmp_path / "run"
    code, _, err = run_main(train_args(out, *extra))
    assert_clean_error(code, err, *needles)
    assert not out.exists(), "nothing may be written for a refused command"


def test_device_cuda_without_cuda_is_a_clean_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run_main(train_args(tmp_path / "run", "--device", "cuda"))
    assert_clean_error(code, err, "CUDA is not available")
    assert not (tmp_path / "run").exists()


def test_existing_run_is_never_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").write_text('{"event": "start"}\n')
    code, _, err = run_main(train_args(out))
    assert_clean_error(code, err, "already holds a run", "--resume auto")
    assert (out / "log.jsonl").read_text() == '{"event": "start"}\n'


def test_resume_auto_of_a_run_killed_before_its_first_checkpoint_starts_it_afresh(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").write_text('{"event": "start"}\n')  # what such a run leaves
    code, stdout, err = run_main(train_args(out, "--resume", "auto", "--max-steps", 2))
    assert code == 0, err
    assert "has no last.pt yet" in stdout
    assert load_checkpoint(out / "last.pt")["step"] == 2
    assert (out / "log.jsonl").read_text().startswith('{"event": "start"}\n')  # appended, not replaced


def test_help_does_not_import_torch():
    code = ("import sys\nfrom sarzoo.cli import make_parser\np = make_parser()\n"
            "p.parse_args(['train', 'x'])\nfor a in p._subparsers._group_actions[0].choices.values(): a.format_help()\n"
            "print(sorted(m for m in ('torch', 'numpy', 'tensorboard') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "torch" not in r.stdout, r.stdout


def _digest(directory):
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_an_input_error_leaves_a_real_run_byte_identical(tmp_path):
    """Nothing already written is lost: a finished run's checkpoints, logs, TensorBoard events and
    previews stay byte for byte what they were after a refused `train --out` and a bad recipe."""
    out = tmp_path / "run"
    code, _, err = run_main(train_args(out, "--max-steps", 2))
    assert code == 0, err
    before = _digest(out)
    assert "last.pt" in before and "recipe.yaml" in before
    for args in (train_args(out, "--max-steps", 2),                                  # --out holds a run
                 train_args(out, "--resume", "auto", sets=["train.batch_size=abc"]),  # a bad --set
                 train_args(out, "--resume", "auto", sets=["encoder.stage.depth=3"])):  # another model
        code, _, err = run_main(args)
        assert code == 2 and "Traceback" not in err, err
        assert _digest(out) == before
