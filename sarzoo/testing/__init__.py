"""sarzoo's conformance kit: property checks any component (first- or third-party) must pass.

For one component and one input *case* (batch, channels, size, stride/scale, options) the checks
are, in order:

``contract``          the contract (``check``, ``input_multiple``, ``output_shape``) runs, and the
                      declared output shape obeys the kind's rule (an attention keeps its input
                      shape; a block outputs ``out_channels`` and, on inputs that are a multiple
                      of its ``input_multiple``, ``ceil(H/stride)``; an upsample ``H*scale``)
``construct``         the factory builds an ``nn.Module`` for arguments the contract accepts
``forward``           a forward pass (train mode) runs and returns a tensor
``output_shape``      the real output shape is the declared one
``finite``            outputs are finite, in train and eval mode
``gradient``          the output is connected to autograd, and the input and every parameter
                      receive a finite gradient
``eval_determinism``  two eval-mode passes on the same input agree

Stage components (composition, no weights) get ``stage_contract`` instead: the steps they return
chain channels and resolution correctly. Bottleneck components get ``BOTTLENECK_CHECKS``
(``sarzoo.testing.bottleneck``): shape preserved, likelihoods in (0, 1], gradients, deterministic
eval mode, and ``decompress(compress(z))`` equal to the eval-mode quantised latent.

Every failure says which check failed on which input shape::

    [gradient] block 'mine' (my-dist 0.1) on input (2, 8, 9, 9) with in_channels=8,
    out_channels=16, stride=1: parameter 'conv.weight' received no gradient

Use it:

- from pytest, one line in a test file (the ``pytest11`` plugin parametrises it by component)::

      test_sarzoo_conformance = sarzoo.testing.conformance_test("my-dist")

- from the command line: ``sarzoo check-plugin my-dist``;
- from Python or hypothesis: ``check_component``, ``check_case``, ``assert_conforms``,
  ``sample_cases`` and ``sarzoo.testing.strategies.cases``.

Importing ``sarzoo.testing`` is cheap; torch is imported on first use of a check.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

#: public name → the module that owns it (imported on first use: the checks import torch)
_OWNERS = {
    **dict.fromkeys(("Case", "StageCase", "case_args", "sample_cases", "sample_stage_cases", "size_range"),
                    "cases"),
    **dict.fromkeys(("BOTTLENECK_CHECKS", "check_bottleneck_case"), "bottleneck"),
    **dict.fromkeys(("CHECKS", "STAGE_CHECKS", "CaseResult", "CheckResult", "ConformanceError", "assert_conforms",
                     "check_case", "check_stage_case", "describe"), "checks"),
    **dict.fromkeys(("ComponentReport", "DistributionReport", "check_component", "check_distribution",
                     "components_of", "declaration_problems", "format_report"), "reports"),
    "conformance_test": "pytest_plugin",
}

__all__ = list(_OWNERS)

if TYPE_CHECKING:  # pragma: no cover
    from sarzoo.testing.bottleneck import *  # noqa: F401,F403
    from sarzoo.testing.cases import *  # noqa: F401,F403
    from sarzoo.testing.checks import *  # noqa: F401,F403
    from sarzoo.testing.pytest_plugin import conformance_test  # noqa: F401
    from sarzoo.testing.reports import *  # noqa: F401,F403


def __getattr__(name: str) -> Any:
    owner = _OWNERS.get(name)
    if owner is None:
        raise AttributeError(f"module 'sarzoo.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"sarzoo.testing.{owner}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
