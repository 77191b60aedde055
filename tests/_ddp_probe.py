"""Run by torchrun in ``tests/test_train_distributed.py``: ``sarzoo train`` itself, recording which
training patches this process read (``SeededAugment`` keys), written to ``$SARZOO_PROBE_DIR/seen.RANK.json``.

A file torchrun starts, not a hook in sarzoo: the run is the real command, only watched.
"""
import json
import os
import sys

from sarzoo.cli import main
from sarzoo.train import data

seen = []
_read = data.SeededAugment.__getitem__


def _recording(self, key):
    seen.append(list(key))
    return _read(self, key)


data.SeededAugment.__getitem__ = _recording
code = main(sys.argv[1:])
with open(os.path.join(os.environ["SARZOO_PROBE_DIR"], f"seen.{os.environ['RANK']}.json"), "w") as f:
    json.dump(seen, f)
sys.exit(code)
