"""sarzoo's pytest plugin (``pytest11`` entry point ``sarzoo``): conformance tests in one line.

In a plugin's test file::

    from sarzoo.testing import conformance_test

    test_sarzoo_conformance = conformance_test("my-sarzoo-plugin")   # a distribution name

pytest then runs one test per component of that distribution (``[attention:eca]``,
``[block:convnext]``), each through sarzoo's conformance checks on ``--sarzoo-cases`` sampled
inputs; a plugin that fails to load is a failing test with its error. The target may also be a
plugin module (``conformance_test(my_plugin_module)``: registered privately, nothing installed)
or a list of ``Component`` s.

The ``sarzoo_check`` fixture checks any ``Component`` directly:
``sarzoo_check(component)`` fails the test with the report when a check fails.

Loading this plugin imports neither torch nor the registry; they load when a test needs them.
"""
from __future__ import annotations

from typing import Any

import pytest

MARKER = "sarzoo_conformance"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("sarzoo", "sarzoo conformance checks")
    group.addoption("--sarzoo-cases", type=int, default=None, metavar="N",
                    help="sampled inputs per component for sarzoo conformance tests (default 12)")
    group.addoption("--sarzoo-seed", type=int, default=None, metavar="SEED",
                    help="seed of the sampled inputs (default 0)")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(target, cases=None, seed=None, max_size=33): "
                            "parametrise the test's `sarzoo_component` argument with the "
                            "components of target (a distribution name, plugin module or list)")


class _LoadProblem:
    """A parameter standing for a plugin that could not be loaded: the test fails with it."""

    def __init__(self, message: str):
        self.message = message

    def __repr__(self) -> str:
        return "load-problem"


def pytest_generate_tests(metafunc) -> None:
    if "sarzoo_component" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        return
    from sarzoo.testing.reports import components_of

    target = marker.args[0] if marker.args else marker.kwargs.get("target")
    comps, problems = components_of(target)
    params: list[Any] = [_LoadProblem(p) for p in problems] + list(comps)
    ids = [f"load-problem-{i}" for i in range(len(problems))] + [f"{c.kind}:{c.name}" for c in comps]
    if not params:
        params, ids = [_LoadProblem(f"{target!r} provides no sarzoo component")], ["no-components"]
    metafunc.parametrize("sarzoo_component", params, ids=ids)


def _settings(config, marker_kwargs: dict) -> dict:
    cases = config.getoption("--sarzoo-cases", None) or marker_kwargs.get("cases") or 12
    seed = config.getoption("--sarzoo-seed", None)
    seed = marker_kwargs.get("seed") if seed is None else seed
    return {"n_cases": int(cases), "seed": int(seed or 0),
            "max_size": int(marker_kwargs.get("max_size") or 33)}


def run_conformance(component: Any, config=None, **kwargs) -> None:
    """Fail the current test (no traceback, just the report) unless ``component`` conforms."""
    if isinstance(component, _LoadProblem):
        pytest.fail(component.message, pytrace=False)
    from sarzoo.testing.reports import check_component, format_report

    settings = _settings(config, kwargs) if config is not None else {
        "n_cases": kwargs.get("cases") or 12, "seed": kwargs.get("seed") or 0,
        "max_size": kwargs.get("max_size") or 33}
    report = check_component(component, **settings)
    if not report.ok:
        pytest.fail(format_report(report), pytrace=False)


def conformance_test(target: Any, *, cases: int | None = None, seed: int | None = None,
                     max_size: int = 33):
    """A test function running sarzoo's conformance checks on every component of ``target``;
    assign it to a ``test_*`` name in a test module."""

    @pytest.mark.sarzoo_conformance(target, cases=cases, seed=seed, max_size=max_size)
    def test_sarzoo_conformance(sarzoo_component, request):
        run_conformance(sarzoo_component, request.config, cases=cases, seed=seed,
                        max_size=max_size)

    return test_sarzoo_conformance


@pytest.fixture
def sarzoo_check(request):
    """``sarzoo_check(component, cases=None, seed=None)``: fail the test unless it conforms."""

    def check(component, cases: int | None = None, seed: int | None = None, max_size: int = 33):
        run_conformance(component, request.config, cases=cases, seed=seed, max_size=max_size)

    return check
