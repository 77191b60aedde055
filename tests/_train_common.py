"""Shared pieces of the training tests: a recipe small enough to train in seconds on 2 CPU cores.

``tests/recipes/train_tiny32.yaml`` is the Variant C family at 32 px with 8 channels; 8 synthetic
scenes give 24 training patches, batch 4 → 6 steps per epoch. It pins every train/data key the
tests rely on, and the tests drive the same command line a user would type.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = str(ROOT / "tests" / "recipes" / "train_tiny32.yaml")
STEPS_PER_EPOCH = 6


@contextlib.contextmanager
def one_torch_thread():
    """In-process runs use one thread, like the subprocesses: on a shared 2-core machine two spinning
    OpenMP threads make a 25 ms step take seconds."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def train_args(out, *extra, sets=(), recipe=TINY) -> list[str]:
    args = ["train", recipe, "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    return args + [str(e) for e in extra]


def subprocess_env(**extra) -> dict[str, str]:
    """One thread: the 2-core machine is shared, and every run of a comparison uses the same setting."""
    env = dict(os.environ)
    env.pop("SARZOO_TEST_SIGKILL", None)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def sarzoo_cmd(args) -> list[str]:
    return [sys.executable, "-m", "sarzoo", *map(str, args)]


def run_sarzoo(args, env=None, cwd=None, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run(sarzoo_cmd(args), capture_output=True, text=True, env=env or subprocess_env(),
                          cwd=cwd, timeout=timeout)


def log_records(run_dir) -> list[dict]:
    p = Path(run_dir) / "log.jsonl"
    if not p.exists():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being written right now
            pass
    return out


def assert_same_training_state(a: dict, b: dict) -> None:
    """Bitwise equality of everything that decides the rest of training."""
    import torch

    assert a["step"] == b["step"] and a["epoch"] == b["epoch"] and a["batch_in_epoch"] == b["batch_in_epoch"]
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), f"model tensor {k} differs"
    oa, ob = a["optimizer"], b["optimizer"]
    assert oa["param_groups"] == ob["param_groups"]
    assert oa["state"].keys() == ob["state"].keys()
    for pid in oa["state"]:
        for k, v in oa["state"][pid].items():
            w = ob["state"][pid][k]
            assert torch.equal(v, w) if isinstance(v, torch.Tensor) else v == w, f"optimizer state {pid}.{k} differs"
    assert a["scheduler"] == b["scheduler"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert a["best"] == b["best"] and a["nonfinite"] == b["nonfinite"]
    assert a["early_stopping"] == b["early_stopping"]
    assert {k: v for k, v in a["accum"].items() if k != "time"} == {k: v for k, v in b["accum"].items() if k != "time"}


def wait_for_step(proc: subprocess.Popen, run_dir, k: int, timeout: float = 240.0) -> None:
    """Until the run's log records step ``k``; fails if the process exits first."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if any(r["event"] == "step" and r["step"] >= k for r in log_records(run_dir)):
            return
        time.sleep(0.02)
    raise AssertionError("training did not reach step %d in time" % k)
