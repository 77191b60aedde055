"""The ``sarzoo`` command line.

Torch is imported lazily inside each command's ``run`` so that ``sarzoo --help`` is instant.
User errors (``SarzooError``) become a one-paragraph message and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from sarzoo.commands import COMMAND_MODULES
from sarzoo.errors import SarzooError


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
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except SarzooError as exc:
        print(f"sarzoo {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `sarzoo list | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"sarzoo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
