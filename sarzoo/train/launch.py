"""``sarzoo train --nproc N``: the same run as ``torchrun --standalone --nproc-per-node N -m sarzoo train …``,
started by torchrun's own launcher (``torch.distributed.run``) from inside sarzoo.

Why not our own process spawning: torchrun's agent already does what a launcher must (a free port
for the rendezvous, the environment of every process, relaying Ctrl-C, stopping the others when one
fails), and ``--nproc`` is only a convenience for one machine; several machines use ``torchrun``
itself (``docs/scaling.md``). What sarzoo adds is the part a user would otherwise trip on: a
sensible ``OMP_NUM_THREADS`` per process on CPU, and one clear line instead of the agent's
``ChildFailedError`` traceback when a process fails (each process has printed its own error).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Sequence

from sarzoo.errors import SarzooError

#: seconds torchrun waits for the processes to exit after relaying a signal, before killing them
SHUTDOWN_SECONDS = 300


def check_nproc(nproc: int, device: str | None) -> None:
    """Refuse, before any process starts, what every process would refuse."""
    from sarzoo.device import pick_device

    if nproc < 1:
        raise SarzooError(f"--nproc must be at least 1, got {nproc}")
    if "WORLD_SIZE" in os.environ:
        raise SarzooError("--nproc starts torchrun itself, but this process already runs under torchrun "
                          "(WORLD_SIZE is set): leave --nproc out and give torchrun --nproc-per-node")
    dev = pick_device(device)
    if dev.type == "cuda":
        import torch

        count = torch.cuda.device_count()
        if nproc > count:
            raise SarzooError(f"--nproc {nproc}: this machine has {count} CUDA device(s), one per process; use "
                              f"--nproc {count} or fewer (or --device cpu)")


def _status(code: int) -> str:
    return f"was stopped by {signal.Signals(code - 128).name}" if 128 < code < 160 else f"exited with status {code}"


def launch(nproc: int, train_argv: Sequence[str], device: str | None) -> int:
    """Run ``python -m sarzoo train TRAIN_ARGV`` in ``nproc`` processes on this machine; their exit status."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    check_nproc(nproc, device)
    # the agent's own log lines ("Sending process … closing signal", "failed (exitcode …)") say what the
    # summary below says, less clearly
    for name in [n for n in logging.Logger.manager.loggerDict if n.startswith("torch.distributed.elastic")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)   # torch sets each module's logger's level itself
    if "OMP_NUM_THREADS" not in os.environ:
        # torchrun's own default is 1 thread per process (with a warning); on CPU the processes share the
        # cores this process may use (a batch job's share, not the host's count)
        os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // nproc))
    # after Ctrl-C the processes finish their step and rank 0 writes last.pt: give them longer than
    # torchrun's 30 s before it kills them (a big model's step on CPU, a slow disk)
    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}",
                                         f"--shutdown-timeout={SHUTDOWN_SECONDS}", "--module", "sarzoo",
                                         "train", *train_argv])
    try:
        run(args)
    except ChildFailedError as exc:
        codes = {rank: f.exitcode if f.exitcode >= 0 else 128 - f.exitcode for rank, f in exc.failures.items()}
        rank = exc.get_first_failure()[0]
        code = codes[rank]
        if len(codes) == nproc and len(set(codes.values())) == 1:
            # all stopped the same way: bad input every process found, or a decision they took together
            # (non-finite losses): each said why above
            return code
        sys.stderr.write(f"sarzoo train: process {rank} of {nproc} {_status(code)}; the others were stopped "
                         f"(each process's own message is above)\n")
        return code
    except SignalException as exc:   # Ctrl-C / SIGTERM to the launcher: relayed to the processes, which saved
        return 128 + int(exc.sigval)
    return 0
