"""One module per CLI sub-command.

Each module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``, and
``NEEDS_TORCH = True`` when it computes (the CLI then imports torch first and turns a broken
environment into one clear error).
Modules must not import torch (or anything heavy) at import time: ``sarzoo --help`` imports
all of them and has to stay instant.
"""

# Order is the order shown by ``sarzoo --help``.
COMMAND_MODULES = ["recipes", "build", "list_components", "plugins", "check_plugin", "train", "evaluate", "reconstruct",
                   "encode", "decode", "rd", "bench"]
