"""Checkpoints: the one file format for a model, written atomically, read only as plain data.

One format for both kinds of file (``kind`` says which):

- ``training``: what ``sarzoo train`` writes (``last.pt``, ``best.pt``): the model plus its
  preprocessing and the whole training state, so a run resumes exactly;
- ``model``: what ``sarzoo build --output`` writes: an untrained model, no training state and no
  fitted preprocessing.

Both hold ``format``, ``kind``, ``recipe`` (the resolved recipe that rebuilds the architecture),
``preprocessing`` (a dict, or None), ``provenance`` and ``model`` (the state dict); ``sarzoo.load``
opens either. A checkpoint is a dict of tensors and plain Python values (str, int, float, bool,
None, lists, tuples, dicts) and nothing else, so the restricted unpickler of
``torch.load(weights_only=True)`` accepts it and a file crafted to run code on load is refused.

Which file a run directory means (the one rule, used everywhere): to *use a model* (``sarzoo
eval``, ``sarzoo.load``) a directory means its ``best.pt``, else its ``last.pt``; to *resume
training* it means its ``last.pt`` (the newest state, not the best one).
"""
from sarzoo.checkpoint.io import (
    FAULT_ENV,
    RUN_DIR_FILES,
    fault_point,
    model_from_checkpoint,
    model_payload,
    plain,
    preprocessing_of,
    read,
    resolve_path,
    write,
)
from sarzoo.checkpoint.schema import ACCUM_KEYS, CHECKPOINT_KINDS, FORMAT, LEGACY_MODEL_FORMAT, SCHEMA
from sarzoo.checkpoint.validate import validate
from sarzoo.files import TMP_PREFIX, remove_partial

__all__ = ["FORMAT", "CHECKPOINT_KINDS", "LEGACY_MODEL_FORMAT", "RUN_DIR_FILES", "FAULT_ENV", "TMP_PREFIX",
           "SCHEMA", "ACCUM_KEYS", "resolve_path", "read", "validate", "write", "plain", "model_payload",
           "model_from_checkpoint", "preprocessing_of", "remove_partial", "fault_point"]
