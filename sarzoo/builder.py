"""TEMPORARY (removed when the trainer branch is merged): old names of sarzoo.plan / sarzoo.model."""
from sarzoo.plan import make_plan  # noqa: F401


def instantiate(plan):
    from sarzoo.model import build_model

    return build_model(plan)
