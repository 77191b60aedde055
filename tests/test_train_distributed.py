"""Training on several processes with torchrun and DistributedDataParallel, for real: gloo on CPU,
``sarzoo train --nproc 2`` and ``torchrun -m``-style launches as a user types them.

Why lr 1e-4 and ``train.sync_bn`` in the equivalence tests: at tiny's own lr (4e-3) the first Adam
steps amplify float rounding chaotically; two single-process runs that differ only in their
number of threads drift 5 % apart within 20 steps (docs/scaling.md), so no tolerance could tell a
bug from noise there. At 1e-4 the same comparison stays within 3e-4, and synchronised BatchNorm
makes 2 × 8 the same computation as 1 × 16 (without it, each process normalises by its own 8).
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys

import pytest
import torch

from tests._train_common import ROOT, log_records, run_sarzoo, sarzoo_cmd, subprocess_env, wait_for_step

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="this PyTorch build has no torch.distributed with gloo")

#: tiny.yaml at a size a CI machine trains in seconds: 40 scenes → 144 training patches, 9 steps of 16
SMALL = ["--set", "data.synthetic.n_scenes=40", "--set", "runtime.amp=off", "--set", "train.log_every_steps=1"]
EXACT = SMALL + ["--set", "train.lr=1e-4", "--set", "train.sync_bn=true"]


def _losses(run_dir) -> dict[int, float]:
    """The step losses of the run's log (the last record of a step wins, as after a resume)."""
    return {r["step"]: r["loss"] for r in log_records(run_dir) if r["event"] == "step"}


def _assert_same_curve(a: dict[int, float], b: dict[int, float], steps, rtol: float) -> None:
    worst = max(abs(a[s] - b[s]) / abs(a[s]) for s in steps)
    assert worst < rtol, f"loss curves differ by up to {worst:.2e} (relative), more than {rtol:g}: " + \
        ", ".join(f"{s}: {a[s]:.6f}/{b[s]:.6f}" for s in steps)


def _train(out, *args, nproc=None, env=None):
    extra = ["--nproc", str(nproc)] if nproc else []
    res = run_sarzoo(["train", "tiny", "--out", str(out), *args, *extra], env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def test_two_processes_read_disjoint_shards_and_only_rank_0_writes(tmp_path):
    """Under torchrun (``python -m torch.distributed.run``, what the ``torchrun`` script is): each process
    reads its own half of every step, and the run directory is what one process would have written."""
    env = subprocess_env(SARZOO_PROBE_DIR=str(tmp_path))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(ROOT / "tests" / "_ddp_probe.py"), "train", "tiny", "--out", str(run), "--max-steps", "4",
           "--set", "train.batch_size=8", *SMALL]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    seen = [[tuple(k) for k in json.loads((tmp_path / f"seen.{r}.json").read_text())] for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 4 * 8
    assert not set(seen[0]) & set(seen[1])
    from sarzoo.train.data import epoch_batches

    # together, the 4 steps of 16 patches one process with batch 16 takes, in the same order
    one = [tuple(k) for step in epoch_batches(144, 16, 0, 0)[:4] for mb in step for k in mb]
    assert sorted(seen[0] + seen[1]) == sorted(one)
    assert [k for s in range(4) for k in seen[0][8 * s:8 * s + 8] + seen[1][8 * s:8 * s + 8]] == one

    # rank 0 alone wrote: one log with one start, each step once, one TensorBoard file, one line of output each
    records = log_records(run)
    assert [r["event"] for r in records].count("start") == 1
    steps = [r["step"] for r in records if r["event"] == "step"]
    assert steps == [1, 2, 3, 4]
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in run.iterdir()) == ["last.pt", "log.jsonl", "recipe.yaml", "tb"]
    assert res.stdout.count("done       reached 4 steps") == 1
    assert "2 processes (gloo, DistributedDataParallel)" in res.stdout
    assert "Traceback" not in res.stderr
    ck = torch.load(run / "last.pt", weights_only=True)
    assert (ck["world_size"], ck["step_batch"], ck["samples_in_epoch"]) == (2, 16, 64)


def test_two_processes_of_8_train_as_one_of_16(tmp_path):
    """The equivalence of the issue: 2 processes × batch 8 and 1 process × batch 16 from the same seed
    give the same loss curve over 20 steps of tiny.yaml (three epochs: validation and epoch ends
    included), and the same validation figures."""
    one, two = tmp_path / "one", tmp_path / "two"
    _train(one, "--max-steps", "20", *EXACT)
    _train(two, "--max-steps", "20", "--set", "train.batch_size=8", *EXACT, nproc=2)
    a, b = _losses(one), _losses(two)
    assert sorted(a) == sorted(b) == list(range(1, 21))
    _assert_same_curve(a, b, range(1, 21), rtol=2e-3)
    val = [[r["val"] for r in log_records(d) if r["event"] == "epoch"] for d in (one, two)]
    assert len(val[0]) == len(val[1]) == 2
    for va, vb in zip(*val):
        assert va["psnr"] == pytest.approx(vb["psnr"], rel=1e-3) and va["ssim"] == pytest.approx(vb["ssim"], abs=2e-3)


def test_a_run_of_two_processes_resumes_in_one(tmp_path):
    """A checkpoint written by 2 processes × 8 continues in 1 process × 16 from the same patch of the
    epoch, with the schedule where it was: the curve is the uninterrupted single process's."""
    whole, split = tmp_path / "whole", tmp_path / "split"
    _train(whole, "--max-steps", "12", *EXACT)
    _train(split, "--max-steps", "5", "--set", "train.batch_size=8", *EXACT, nproc=2)
    res = _train(split, "--max-steps", "12", "--resume", "auto", *EXACT)
    assert "note       the checkpoint's run took 16 patches per step, this one 16" not in res.stdout
    ck = torch.load(split / "last.pt", weights_only=True)
    assert (ck["world_size"], ck["step"], ck["epoch"], ck["samples_in_epoch"]) == (1, 12, 1, 48)
    _assert_same_curve(_losses(whole), _losses(split), range(1, 13), rtol=2e-3)


def test_resuming_with_another_batch_per_step_goes_on_from_the_same_patch(tmp_path):
    """2 processes × 8 → 1 process × 8: the step halves; the epoch goes on from patch 80 of its order."""
    run = tmp_path / "run"
    _train(run, "--max-steps", "5", "--set", "train.batch_size=8", *SMALL, nproc=2)
    res = _train(run, "--max-steps", "7", "--resume", "auto", "--set", "train.batch_size=8", *SMALL)
    assert "the checkpoint's run took 16 patches per step, this one 8" in res.stdout
    ck = torch.load(run / "last.pt", weights_only=True)
    assert (ck["step"], ck["samples_in_epoch"], ck["batch_in_epoch"], ck["step_batch"]) == (7, 96, 12, 8)


def test_when_one_process_dies_every_process_stops_with_a_clear_error(tmp_path):
    """Process 1 is killed at step 3: process 0 says why it stops (no traceback), the launcher names the
    failed process, the exit status is not 0, and the last checkpoint written is kept."""
    run = tmp_path / "run"
    env = subprocess_env(SARZOO_TEST_SIGKILL="step:3@1")
    res = run_sarzoo(["train", "tiny", "--out", str(run), "--nproc", "2", "--max-steps", "6",
                      "--set", "train.checkpoint_every_steps=2", "--set", "train.batch_size=8", *SMALL],
                     env=env, timeout=300)
    assert res.returncode != 0
    assert "process 1 of 2 was stopped by SIGKILL" in res.stderr
    assert "sarzoo train (process 0 of 2): error: stopped while" in res.stderr
    assert "another process of this run failed or was stopped" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    ck = torch.load(run / "last.pt", weights_only=True)
    assert ck["step"] == 2


def test_ctrl_c_stops_every_process_after_the_same_step_and_resumes_exactly(tmp_path):
    """Ctrl-C in a terminal reaches the launcher's process group; torchrun relays it to the processes
    (which it started in sessions of their own): they agree on one step to stop after, rank 0 writes
    last.pt and prints the command that resumes; resumed with the same 2 processes, the run ends with
    the weights of an uninterrupted one."""
    straight, run = tmp_path / "straight", tmp_path / "run"
    n = 14
    args = ["train", "tiny", "--nproc", "2", "--set", "train.batch_size=8", *SMALL]
    res = run_sarzoo([*args, "--out", str(straight), "--max-steps", str(n)], timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    proc = subprocess.Popen(sarzoo_cmd([*args, "--out", str(run), "--max-steps", "500"]), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env(), start_new_session=True)
    try:
        wait_for_step(proc, run, 3)
        os.killpg(proc.pid, signal.SIGINT)     # what a terminal does: the whole foreground group
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, stderr[-2000:])
    assert "Traceback" not in stderr and stderr.count("SIGINT received: finishing the current step") == 1
    ck = torch.load(run / "last.pt", weights_only=True)
    assert 3 <= ck["step"] < n, f"stopped at step {ck['step']}: the machine was too slow to compare"
    hint = next(line for line in stderr.splitlines() if line.startswith("  sarzoo train "))
    assert "--nproc 2" in hint and hint.rstrip().endswith(f"--resume {run / 'last.pt'}")
    res = run_sarzoo([*shlex.split(hint)[1:], "--max-steps", str(n)], timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    a, b = (torch.load(d / "last.pt", weights_only=True) for d in (straight, run))
    assert a["step"] == b["step"] == n
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_nproc_refuses_what_every_process_would_refuse(tmp_path):
    res = run_sarzoo(["train", "tiny", "--out", str(tmp_path / "r"), "--nproc", "0"])
    assert res.returncode == 2 and "--nproc must be at least 1" in res.stderr and "Traceback" not in res.stderr
    env = subprocess_env(WORLD_SIZE="2")
    res = run_sarzoo(["train", "tiny", "--out", str(tmp_path / "r"), "--nproc", "2"], env=env)
    assert res.returncode == 2 and "already runs under torchrun" in res.stderr
    assert not (tmp_path / "r").exists()


def test_a_bad_recipe_is_refused_once_before_any_process_starts(tmp_path):
    res = run_sarzoo(["train", "tiny", "--out", str(tmp_path / "r"), "--nproc", "2", "--set", "train.accumulate=0"])
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.count("error:") == 1 and "train.accumulate" in res.stderr and "process" not in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "r").exists()


def test_bad_data_is_the_same_clear_error_on_every_process(tmp_path):
    res = run_sarzoo(["train", "tiny", "--out", str(tmp_path / "r"), "--nproc", "2", "--data",
                      str(tmp_path / "missing.tif")])
    assert res.returncode == 2, res.stderr[-2000:]
    # each process that got that far says it (torchrun may stop the second one before it does)
    assert f"sarzoo train (process 0 of 2): error: {tmp_path / 'missing.tif'}: no such file" in res.stderr or \
        f"sarzoo train (process 1 of 2): error: {tmp_path / 'missing.tif'}: no such file" in res.stderr
    assert "Traceback" not in res.stderr and "exitcode" not in res.stderr
    assert not (tmp_path / "r").exists()


def _ranks(launcher_pid: int) -> dict[int, int]:
    """rank → pid of the processes torchrun's launcher started (its children, by their RANK variable)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = open(f"/proc/{pid}/stat").read()
            if int(stat.rsplit(")", 1)[1].split()[1]) != launcher_pid:
                continue
            env = dict(v.split("=", 1) for v in open(f"/proc/{pid}/environ").read().split("\0") if "=" in v)
        except (OSError, ValueError):
            continue
        if "RANK" in env:
            out[int(env["RANK"])] = int(pid)
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the processes through /proc")
def test_a_signal_to_one_process_stops_all_of_them_at_the_same_step(tmp_path):
    """``kill -TERM`` of process 1 alone (as when one machine's torchrun is stopped): every process
    stops after the same step, and rank 0 saves, reports the signal and prints the command that resumes."""
    run = tmp_path / "run"
    proc = subprocess.Popen(sarzoo_cmd(["train", "tiny", "--nproc", "2", "--set", "train.batch_size=8", *SMALL,
                                        "--out", str(run), "--max-steps", "500"]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        wait_for_step(proc, run, 3)
        os.kill(_ranks(proc.pid)[1], signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, (proc.returncode, stderr[-2000:])
    assert "Traceback" not in stderr
    assert "sarzoo train: stopped by SIGTERM" in stderr and "--nproc 2" in stderr
    ck = torch.load(run / "last.pt", weights_only=True)
    stops = [r for r in log_records(run) if r["event"] == "stop"]
    assert stops[-1]["reason"] == "signal" and stops[-1]["step"] == ck["step"] >= 3


def test_torchrun_with_one_process_trains_as_without_it(tmp_path):
    """``--nproc 1`` (torchrun, one process, no process group) gives the same run, bit for bit."""
    plain, launched = tmp_path / "plain", tmp_path / "launched"
    _train(plain, "--max-steps", "3", *SMALL)
    _train(launched, "--max-steps", "3", *SMALL, nproc=1)
    assert _losses(plain) == _losses(launched)
    a, b = (torch.load(d / "last.pt", weights_only=True)["model"] for d in (plain, launched))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(os.environ.get("SARZOO_TEST_NCCL") != "1" or torch.cuda.device_count() < 2,
                    reason="NCCL needs 2 CUDA devices (set SARZOO_TEST_NCCL=1 on such a machine)")
def test_two_gpus_with_nccl(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _train(one, "--max-steps", "20", "--device", "cuda", *EXACT)
    _train(two, "--max-steps", "20", "--device", "cuda", "--set", "train.batch_size=8", *EXACT, nproc=2)
    _assert_same_curve(_losses(one), _losses(two), range(1, 21), rtol=5e-3)
