"""The dependency bounds in pyproject.toml match the APIs the code calls."""

import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from scipy import stats

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _requirement(name: str) -> Requirement:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return next(Requirement(item) for item in dependencies if Requirement(item).name == name)


def test_scipy_is_bounded_to_the_versions_whose_api_is_used():
    requirement = _requirement("scipy")
    # permutation_test(rng=...) (evaluate/statistics.py) exists from 1.15 on
    assert "rng" in inspect.signature(stats.permutation_test).parameters
    assert not requirement.specifier.contains("1.14.1") and requirement.specifier.contains("1.15.0")
    assert any(spec.operator == "<" for spec in requirement.specifier), "scipy needs an upper bound"
    assert requirement.specifier.contains(version("scipy")), "the installed scipy lies outside the bounds"


def test_torch_is_pinned_exactly():
    assert str(_requirement("torch").specifier) == "==2.13.0"
