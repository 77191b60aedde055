"""One module per CLI sub-command.

Each module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Modules must not import torch (or anything heavy) at import time: ``sarzoo --help`` imports
all of them and has to stay instant.
"""

# Order is the order shown by ``sarzoo --help``.
COMMAND_MODULES = ["recipes", "build", "list_components", "plugins", "check_plugin", "train", "evaluate"]
