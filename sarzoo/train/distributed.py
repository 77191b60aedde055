"""Several processes training one model: torchrun's environment, the process group, and the few
things the processes must agree on.

Why torchrun and ``DistributedDataParallel`` rather than a launcher of our own: rendezvous across
machines (c10d), restarts, SLURM and the NCCL/gloo engines are PyTorch's, maintained and known to
cluster administrators. The launcher (``torchrun``, or ``sarzoo train --nproc N``, which runs
torchrun's own launcher: ``sarzoo.train.launch``) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and
the rendezvous address; this module reads them, opens the process group (gloo on CPU, NCCL on
CUDA) and wraps the model.

Every collective the training loop needs goes through ``World``, for two reasons: one process pays
nothing (no process group, every method the identity), and when another process of the run dies
(its own error, an out-of-memory kill) the collective it left waiting fails; ``World`` turns that
failure into a ``SarzooError`` that says so on every surviving rank, instead of a traceback from
inside gloo. The rank that failed prints its own error.
"""
from __future__ import annotations

import inspect
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import torch

from sarzoo.errors import SarzooError, describe

T = TypeVar("T")

#: what torchrun (and every launcher that follows its conventions, e.g. SLURM with srun + torchrun) sets
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class PeerFailed(SarzooError):
    """Another process of the run stopped; this one cannot go on alone."""


@dataclass(frozen=True)
class World:
    """This process among ``world_size`` (``rank`` 0 writes the run's record); ``backend`` is None for one process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    launched: bool = False      # started by torchrun (which relays the user's signals to every process)

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        return f"{self.world_size} processes ({self.backend}, DistributedDataParallel)" if self.distributed else ""

    # -- collectives (the identity for one process) -----------------------------------------------
    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over the processes, in place."""
        if self.distributed:
            with self._collective("summing a step's numbers"):
                torch.distributed.all_reduce(t)
        return t

    def max(self, value: int, device: torch.device | str = "cpu") -> int:
        """The largest ``value`` of all processes, on every process (a stop signal received by one of them)."""
        if not self.distributed:
            return int(value)
        t = torch.tensor([int(value)], dtype=torch.int64, device=device)
        with self._collective("agreeing on when to stop"):
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())

    def any(self, flag: bool, device: torch.device | str = "cpu") -> bool:
        """True on every process when ``flag`` is true on at least one."""
        return self.max(1 if flag else 0, device) > 0

    def share_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (BatchNorm statistics) into every process's ``module``.

        Without ``sync_bn`` each process updates its statistics from its own batches; DDP copies
        rank 0's back before the next training forward, but a validation or checkpoint in between
        would see each process's own, so that the reduced figures would belong to no single model."""
        if not self.distributed:
            return
        with self._collective("sharing BatchNorm statistics"), torch.no_grad():
            for b in module.buffers():
                torch.distributed.broadcast(b, src=0)

    def gather(self, obj: T) -> list[T]:
        """Every process's ``obj`` (picklable, small: validation sums), in rank order, on every process."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        with self._collective("gathering validation results"):
            torch.distributed.all_gather_object(out, obj)
        return out

    def from_main(self, decide: Callable[[], T]) -> T:
        """``decide()`` run on rank 0 only, its result given to every process; a ``SarzooError`` it raises
        is raised on every process with the same text (a choice that touches the file system, such as the
        run directory, must be made once)."""
        if not self.distributed:
            return decide()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", decide())
            except SarzooError as exc:
                box[0] = ("error", str(exc))
            except Exception as exc:  # noqa: BLE001 - e.g. a PermissionError: the others must hear of it too
                box[0] = ("error", f"rank 0 failed: {describe(exc)}")
        with self._collective("sharing rank 0's decision"):
            torch.distributed.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise SarzooError(value)
        return value

    def barrier(self) -> None:
        if self.distributed:
            with self._collective("waiting for the other processes"):
                torch.distributed.barrier()

    @contextmanager
    def _collective(self, what: str) -> Iterator[None]:
        try:
            yield
        except (RuntimeError, ValueError) as exc:   # gloo/NCCL errors are RuntimeErrors (DistError)
            raise self.peer_failure(exc, what) from None

    def peer_failure(self, exc: BaseException, what: str = "training") -> PeerFailed | None:
        """``exc`` as the clear error of a lost peer, if it is a communication failure of a run on several
        processes (also those raised inside DDP's backward or a synchronised BatchNorm); else None."""
        if not self.distributed or not isinstance(exc, (RuntimeError, ValueError)):
            return None
        text = str(exc)
        if not (isinstance(exc, torch.distributed.DistError)
                or any(s in text for s in ("gloo", "NCCL", "Connection reset", "Connection closed", "timed out"))):
            return None
        return PeerFailed(
            f"stopped while {what}: another process of this run failed or was stopped (its own error is printed "
            f"above this one, or in torchrun's summary). Checkpoints already written are kept; fix the cause and "
            f"continue with --resume ({_short(exc)})")


def _short(exc: BaseException) -> str:
    """The gist of a gloo/NCCL error ("Connection reset by peer"), without its source path and advice."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)            # [.../gloo/transport/tcp/pair.cc:545]
    return f"{type(exc).__name__}: " + re.split(r"(?<=[a-z])\. ", text, maxsplit=1)[0].rstrip(".")


def _env_int(key: str) -> int:
    raw = os.environ[key]
    try:
        return int(raw)
    except ValueError:
        raise SarzooError(f"environment variable {key}={raw!r} is not an integer; it is set by torchrun for each "
                          f"process, do not set it by hand") from None


def environment() -> World | None:
    """The world torchrun describes in the environment, or None outside torchrun."""
    if "WORLD_SIZE" not in os.environ:
        return None
    missing = [k for k in ENV_KEYS if k not in os.environ]
    if missing:
        raise SarzooError(f"WORLD_SIZE is set but {', '.join(missing)} not: start several processes with torchrun "
                          f"(or sarzoo train --nproc N), which sets all of {', '.join(ENV_KEYS)}")
    world_size, rank, local = _env_int("WORLD_SIZE"), _env_int("RANK"), _env_int("LOCAL_RANK")
    if world_size < 1 or not 0 <= rank < world_size or local < 0:
        raise SarzooError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world_size}, "
                          f"LOCAL_RANK={local}")
    return World(rank, world_size, local, None, launched=True)


def start(device: torch.device) -> tuple[World, torch.device]:
    """Join the run's process group when torchrun started several processes: gloo for CPU, NCCL for CUDA.

    Returns the world and this process's device (``cuda:LOCAL_RANK`` on CUDA). One process (no
    torchrun, or ``--nproc-per-node 1``) opens no process group and trains exactly as without torchrun.
    """
    env = environment()
    if env is None:
        return World(), device
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if env.local_rank >= count:
            raise SarzooError(f"process {env.rank} has LOCAL_RANK {env.local_rank} but this machine has {count} "
                              f"CUDA device(s): start at most {count} processes per machine (--nproc-per-node)")
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    if env.world_size == 1:
        return env, device
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not torch.distributed.is_available():
        raise SarzooError("this PyTorch build has no torch.distributed: several processes cannot train together")
    if not torch.distributed.is_initialized():
        # device_id (torch >= 2.3) binds NCCL to this process's GPU at once; gloo needs none
        bind = {"device_id": device} if device.type == "cuda" and "device_id" in inspect.signature(
            torch.distributed.init_process_group).parameters else {}
        try:
            torch.distributed.init_process_group(backend, **bind)
        except (RuntimeError, ValueError) as exc:
            where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
            raise SarzooError(f"process {env.rank} of {env.world_size} could not join the run's process group "
                              f"({backend}) at {where}: {describe(exc)}") from None
    return World(env.rank, env.world_size, env.local_rank, backend, launched=True), device


def stop(clean: bool = True) -> None:
    """Leave the process group, if this process joined one: at the end of the run, and on the way out
    after an error (a gloo group left open can abort the interpreter's exit when its peers are gone).
    After an error an NCCL group is left to the process's exit: its teardown can block on a lost peer."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    if clean or torch.distributed.get_backend() == "gloo":
        torch.distributed.destroy_process_group()


def wrap(net: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """``net`` in ``DistributedDataParallel`` (gradients averaged over the processes in buckets that
    overlap the backward pass); ``net`` itself for one process."""
    if not world.distributed:
        return net
    from torch.nn.parallel import DistributedDataParallel

    # a 1×1 convolution's weight in channels_last has strides DDP's bucket views do not copy exactly;
    # the gradient is then copied (a few kB), which the reducer warns about on every backward pass
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids, output_device=device.index if ids else None,
                                   gradient_as_bucket_view=True)
