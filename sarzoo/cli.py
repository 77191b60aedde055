"""The ``sarzoo`` command line.

Torch is imported lazily inside each command's ``run`` so that ``sarzoo --help`` is instant.
User errors (``SarzooError``) become a one-paragraph message and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from sarzoo.commands import COMMAND_MODULES
from sarzoo.errors import SarzooError, describe


def _load(name: str):
    return importlib.import_module(f"sarzoo.commands.{name}")


def make_parser() -> argparse.ArgumentParser:
    from sarzoo._version import __version__

    parser = argparse.ArgumentParser(
        prog="sarzoo",
        description="A plugin-registry model zoo of autoencoders for SAR images.",
    )
    parser.add_argument("--version", action="version", version=f"sarzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in COMMAND_MODULES:
        mod = _load(modname)
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _needs_torch=getattr(mod, "NEEDS_TORCH", False))
    return parser


def _import_torch() -> None:
    """PyTorch, imported up front by the commands that compute. Importing it can fail because of
    the environment rather than sarzoo (torch reads every installed distribution's entry points,
    so one corrupt ``entry_points.txt`` anywhere breaks it): that is the user's to fix, so it is
    said in one paragraph instead of a traceback from deep inside a plugin's first torch call."""
    try:
        import torch  # noqa: F401
    except Exception as exc:  # whatever torch's own import raises
        raise SarzooError(f"PyTorch cannot be imported ({describe(exc, whole=True)}). If an installed "
                          "distribution's metadata is broken (`sarzoo plugins` lists it as failed), reinstall "
                          "or remove it; otherwise reinstall torch.") from None


def _process() -> str:
    """`` (process R of N)`` in a run on several processes (torchrun's environment), whose messages interleave."""
    import os

    world = os.environ.get("WORLD_SIZE", "1")
    return f" (process {os.environ.get('RANK', '?')} of {world})" if world not in ("", "1") else ""


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        if args._needs_torch:
            _import_torch()
        return int(args._run(args) or 0)
    except SarzooError as exc:
        # one write: the processes of a distributed run share the terminal, and print() writes the
        # newline separately, so their lines would interleave
        sys.stderr.write(f"sarzoo {args.command}{_process()}: error: {exc}\n")
        sys.stderr.flush()
        return exc.exit_code
    except BrokenPipeError:  # e.g. `sarzoo list | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"sarzoo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
