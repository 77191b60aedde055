import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from sarzoo.catalog import builtin_dir

# `pytest --hypothesis-profile=deep`: many more generated cases for the fuzzers (hostile data files,
# plugins, recipes, checkpoints) than the default profile that CI runs; see docs/reliability.md.
# (tests/test_recipe_fuzz.py takes max(its CI count, the profile's max_examples))
settings.register_profile("deep", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))

ROOT = Path(__file__).resolve().parent.parent
RECIPES = builtin_dir()  # the built-in recipes, where the installed sarzoo has them


@pytest.fixture
def recipes_dir() -> Path:
    return RECIPES


def run_cli(*args, env=None, cwd=None, timeout=300):
    """Run ``python -m sarzoo`` in a real subprocess and return the CompletedProcess."""
    import subprocess

    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "sarzoo", *map(str, args)], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=timeout)
