"""Hypothesis strategies for the conformance checks (needs ``hypothesis``, the ``test`` extra)::

    from hypothesis import given, settings, strategies as st
    from sarzoo.testing import assert_conforms
    from sarzoo.testing.strategies import cases

    @settings(max_examples=20, deadline=None)
    @given(data=st.data())
    def test_my_block(data):
        assert_conforms(MY_COMPONENT, data.draw(cases(MY_COMPONENT)))

``cases`` draws only what the component's contract accepts (``check`` and ``input_multiple``), so
every drawn case must pass every check.
"""
from __future__ import annotations

import math

from hypothesis import assume
from hypothesis import strategies as st

from sarzoo.interfaces import Component
from sarzoo.testing.cases import Case, StageCase, _contract_filter, case_args, size_range


def options(component: Component) -> st.SearchStrategy[dict]:
    """Options with choices (and booleans) drawn; numeric options keep their defaults."""
    parts = {}
    for k, opt in component.options.items():
        if opt.choices is not None:
            parts[k] = st.sampled_from(list(opt.choices))
        elif opt.type is bool:
            parts[k] = st.booleans()
    return st.fixed_dictionaries(parts)


def cases(component: Component, *, min_size: int = 5, max_size: int = 33, max_channels: int = 64,
          max_batch: int = 3, strides=(1, 2, 3, 4), scales=(1, 2, 3),
          sample_options: bool = True) -> st.SearchStrategy:
    """Cases for a layer component (``StageCase`` s for a stage component): batch 1..max_batch,
    channels 1..max_channels, odd and even sizes min_size..max_size that are multiples of the
    component's ``input_multiple``, strides/scales from the given sets."""
    if component.kind == "stage":
        return stage_cases(component, max_channels=max_channels)

    @st.composite
    def draw_case(draw):
        opts = draw(options(component)) if sample_options else {}
        case = Case(batch=draw(st.integers(1, max_batch)),
                    channels=draw(st.integers(1, max_channels)),
                    out_channels=draw(st.integers(1, max_channels)),
                    stride=draw(st.sampled_from(strides)) if component.kind == "block" else 1,
                    scale=draw(st.sampled_from(scales)) if component.kind == "upsample" else 1,
                    options=opts)
        ok, m = _contract_filter(component, case_args(component, case))
        assume(ok)
        lo, hi = size_range(component, case, min_size, max_size)
        k_lo = max(1, math.ceil(lo / m))
        k_hi = max(k_lo, hi // m)
        h = m * draw(st.integers(k_lo, k_hi))
        w = m * draw(st.integers(k_lo, k_hi))
        case.height, case.width = h, w
        return case

    return draw_case()


def stage_cases(component: Component, *, max_channels: int = 64) -> st.SearchStrategy:
    return st.builds(StageCase, role=st.sampled_from(["encoder", "decoder"]),
                     in_channels=st.integers(1, max_channels), out_channels=st.integers(1, max_channels),
                     depth=st.integers(0, 3), stride=st.integers(1, 4), scale=st.integers(1, 4),
                     attention=st.booleans(), upsample=st.booleans(), options=options(component))
