"""The training loop's units and seams, each on its own: the data shard of a process, the schedule,
what an observer hears, and that only the main process writes (issue 8 point 6).

The end-to-end behaviour (figures, checkpoints, exact resume, messages, exit codes) is the other
``test_train_*`` files' business.
"""
from __future__ import annotations

import math

import pytest
import torch

from sarzoo.cli import make_parser
from sarzoo.errors import SarzooError
from sarzoo.train.data import _mix, check_sizes, epoch_batches
from sarzoo.train.observer import Observer
from sarzoo.train.optim import Schedule, build_optimizer
from sarzoo.train.run import prepare_run
from tests._train_common import STEPS_PER_EPOCH, one_torch_thread, train_args


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


# --- the data order ----------------------------------------------------------------------------

def _single_process_order(n, batch_size, seed, epoch):
    """``epoch_batches`` as it was before processes had shards: one process must still get exactly this."""
    g = torch.Generator().manual_seed(_mix(seed, epoch, 1))
    perm = torch.randperm(n, generator=g).tolist()
    return [[[(epoch, i) for i in perm[b * batch_size:(b + 1) * batch_size]]] for b in range(n // batch_size)]


@pytest.mark.parametrize("n, batch_size, epoch", [(24, 4, 0), (26, 4, 3), (7, 3, 1)])
def test_one_process_takes_the_whole_epoch_in_the_same_order(n, batch_size, epoch):
    assert epoch_batches(n, batch_size, 5, epoch) == _single_process_order(n, batch_size, 5, epoch)
    assert epoch_batches(n, batch_size, 5, epoch, rank=0, world_size=1) == _single_process_order(n, batch_size, 5,
                                                                                                  epoch)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_processes_take_disjoint_equal_shards_of_the_same_order(world_size):
    n, bs = 26, 4  # 6 whole batches
    full = epoch_batches(n, bs, 5, 2)
    shards = [epoch_batches(n, bs, 5, 2, rank=r, world_size=world_size) for r in range(world_size)]
    per = len(full) // world_size
    assert [len(s) for s in shards] == [per] * world_size == [check_sizes(n, bs, world_size)] * world_size
    for r, shard in enumerate(shards):
        assert shard == full[r::world_size][:per]
    items = [i for s in shards for step in s for b in step for i in b]
    assert len(items) == len(set(items))


@pytest.mark.parametrize("world_size, accumulate", [(1, 2), (2, 2), (2, 1), (4, 3)])
def test_a_step_holds_the_same_samples_however_it_is_shared(world_size, accumulate):
    """One process with batch B·A·W and W processes × A micro-batches of B take the same samples per step."""
    n, bs = 100, 2
    whole = epoch_batches(n, bs * accumulate * world_size, 5, 1)
    shards = [epoch_batches(n, bs, 5, 1, rank=r, world_size=world_size, accumulate=accumulate)
              for r in range(world_size)]
    assert all(len(s) == len(whole) == check_sizes(n, bs, world_size, accumulate) for s in shards)
    for s, step in enumerate(whole):
        parts = [shards[r][s] for r in range(world_size)]
        assert all(len(p) == accumulate and all(len(mb) == bs for mb in p) for p in parts)
        assert [i for p in parts for mb in p for i in mb] == step[0]


def test_an_epoch_continues_from_a_sample_offset():
    """A run resumed with another step size starts where the epoch stopped, in the same order."""
    full = [i for step in epoch_batches(48, 4, 5, 0) for mb in step for i in mb]
    rest = [i for step in epoch_batches(48, 8, 5, 0, start=12) for mb in step for i in mb]
    assert rest == full[12:12 + 32]   # 36 samples left: 4 steps of 8, 4 dropped


def test_too_little_data_for_one_step_names_the_step_size():
    with pytest.raises(SarzooError, match=r"4 × 2 micro-batches \(train.accumulate\) × 3 processes = 24"):
        check_sizes(23, 4, world_size=3, accumulate=2)


# --- the schedule --------------------------------------------------------------------------------

def _cfg(schedule="plateau", **warmup):
    return {"lr": 0.01, "optimizer": {"type": "adam", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
            "warmup": {"epochs": 0.5, "start_factor": 0.1, **warmup}, "epochs": 4, "schedule": schedule,
            "plateau": {"patience": 0, "factor": 0.5, "min_lr": 0.0}}


def test_schedule_warms_up_per_step_then_plateau_takes_over_and_round_trips():
    cfg = _cfg()
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg)
    sched = Schedule(opt, cfg, steps_per_epoch=6)
    assert sched.warmup_steps == 3
    lrs = []
    for step in range(5):
        sched.before_step(step)
        lrs.append(sched.lr)
    assert lrs == pytest.approx([0.001, 0.004, 0.007, 0.01, 0.01])
    sched.after_epoch(2, 1.0)  # still warming up: the plateau scheduler does not judge
    sched.after_epoch(6, math.nan)  # nothing to judge
    assert sched.plateau.num_bad_epochs == 0
    sched.after_epoch(6, 1.0)
    sched.after_epoch(12, 1.0)  # no improvement, patience 0: halved
    assert sched.lr == pytest.approx(0.005)

    other = Schedule(build_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg), cfg, steps_per_epoch=6)
    other.load_state_dict(sched.state_dict())
    assert other.state_dict() == sched.state_dict() and set(sched.state_dict()) == {"plateau"}


def test_cosine_schedule_decays_per_step_to_zero_at_the_last_step_whatever_the_history():
    cfg = _cfg("cosine")
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg)
    sched = Schedule(opt, cfg, steps_per_epoch=6)   # 24 steps: warm-up 3, then 21 of cosine
    lrs = []
    for step in range(25):
        sched.before_step(step)
        sched.after_epoch(step, 1.0)    # the validation loss never improves: no plateau cut
        lrs.append(sched.lr)
    assert lrs[:4] == pytest.approx([0.001, 0.004, 0.007, 0.01])
    after = lrs[3:]
    assert all(a > b for a, b in zip(after, after[1:]))            # strictly decreasing
    assert lrs[3 + 21 // 2] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 10 / 21)))
    assert lrs[24] == pytest.approx(0.0, abs=1e-12)
    # a function of the step alone: a fresh schedule (a resumed run) sets the same rate at any step
    fresh = Schedule(build_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg), cfg, steps_per_epoch=6)
    for step in (0, 2, 7, 15, 23):
        fresh.before_step(step)
        assert fresh.lr == pytest.approx(lrs[step])


# --- the observer and the main process -----------------------------------------------------------

class Recorder(Observer):
    def __init__(self):
        self.calls = []

    def on_start(self, info):
        self.calls.append(("start", info.step))

    def on_steps_begin(self, epoch, epochs, done, total):
        self.calls.append(("steps_begin", epoch, done, total))

    def on_step(self, record):
        self.calls.append(("step", record.step))

    def on_steps_end(self):
        self.calls.append(("steps_end",))

    def on_epoch(self, record):
        self.calls.append(("epoch", record.epoch, record.step, record.improved))

    def on_stop(self, result):
        self.calls.append(("stop", result.reason, result.step))


def _prepare(out, max_steps):
    return prepare_run(make_parser().parse_args(train_args(out, "--max-steps", max_steps)), Observer())


def test_the_observer_hears_the_run_and_the_result_says_why_it_stopped(tmp_path):
    prepared = _prepare(tmp_path / "run", STEPS_PER_EPOCH + 1)
    rec = Recorder()
    result = prepared.trainer.fit(prepared.run_dir, rec)
    assert result.reason == "max_steps" and result.step == STEPS_PER_EPOCH + 1 and result.epoch == 1
    steps = [("step", s) for s in range(1, STEPS_PER_EPOCH + 1)]
    assert rec.calls == [("start", 0), ("steps_begin", 1, 0, STEPS_PER_EPOCH), *steps, ("steps_end",),
                         ("epoch", 1, STEPS_PER_EPOCH, True), ("steps_begin", 2, 0, STEPS_PER_EPOCH),
                         ("step", STEPS_PER_EPOCH + 1), ("steps_end",), ("stop", "max_steps", STEPS_PER_EPOCH + 1)]




# --- several processes, without starting them --------------------------------------------------

def test_a_checkpoint_from_before_several_processes_took_its_own_recipes_batch():
    """Resumed with another batch size, an old checkpoint's position is counted in its own batches."""
    from sarzoo.train.state import checkpoint_step_batch

    old = {"recipe": {"train": {"batch_size": 16}}, "batch_in_epoch": 3}
    assert checkpoint_step_batch(old) == 16
    assert checkpoint_step_batch({**old, "recipe": {"train": {"batch_size": 8, "accumulate": 2}}}) == 16
    assert checkpoint_step_batch({**old, "step_batch": 32}) == 32


def test_sync_bn_on_cpu_refuses_batchnorms_it_cannot_synchronise():
    """timm's BatchNormAct2d (in res_timm_cbam) carries an activation: it is refused, not left unsynchronised."""
    from timm.layers import BatchNormAct2d

    from sarzoo.train.sync_bn import GlooSyncBatchNorm, convert

    plain = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    weight = plain[1].weight
    convert(plain, torch.device("cpu"))
    assert type(plain[1]) is GlooSyncBatchNorm and plain[1].weight is weight
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(plain(x), torch.nn.functional.batch_norm(
        plain[0](x), None, None, weight, plain[1].bias, training=True))   # alone, it is BatchNorm2d
    with pytest.raises(SarzooError, match="BatchNormAct2d"):
        convert(torch.nn.Sequential(BatchNormAct2d(4)), torch.device("cpu"))
