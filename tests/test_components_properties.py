"""Property tests over every component in the registry, found at test time (so an installed
third-party plugin is tested too): random channels (1-64), strides 1-4 and scales 1-3, odd and
even sizes (5-33 px, multiples of the component's input_multiple), batch 1-3, sampled options.
For each drawn input the declared contract gives the real output shape, attention keeps the shape,
outputs are finite, the input and every parameter get a gradient, and eval mode is deterministic
(``sarzoo.testing``'s checks; they name the failed check and the input shape). Stage components:
their steps chain channels and resolution correctly. ``test_plugins_example.py`` runs this file
with the example third-party plugin discoverable to show it is picked up."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sarzoo.registry import get_registry
from sarzoo.testing import assert_conforms
from sarzoo.testing.strategies import cases

COMPONENTS = get_registry().components()
LAYERS = [c for c in COMPONENTS if c.kind != "stage"]
STAGES = [c for c in COMPONENTS if c.kind == "stage"]


def _id(c):
    return f"{c.kind}:{c.qualified_name}"


def test_the_registry_has_components_of_every_kind():
    assert {c.kind for c in COMPONENTS} == {"block", "attention", "upsample", "stage", "bottleneck"}


@pytest.mark.parametrize("component", LAYERS, ids=_id)
@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_layer_component_properties(component, data):
    case = data.draw(cases(component, min_size=5, max_size=33), label="case")
    assert_conforms(component, case)


@pytest.mark.parametrize("component", STAGES, ids=_id)
@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_stage_component_properties(component, data):
    assert_conforms(component, data.draw(cases(component), label="stage"))
