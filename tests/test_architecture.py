"""The layout keeps its promises: layers point down, modules stay small, and a structure,
family or routine is added by registering it (nothing else to edit)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mixtures
from mixtures.families.gaussian import covariance
from mixtures.families.gaussian.covariance import DiagCovariance

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mixtures"
MAX_MODULE_LINES = 600


def test_the_import_contract_holds():
    """``lint-imports`` (import-linter) checks pyproject.toml's contracts: layers only import
    downwards, families are independent, no routine imports another."""
    executable = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    completed = subprocess.run([executable], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken" in completed.stdout


def test_no_module_is_longer_than_one_idea():
    long = {str(path.relative_to(ROOT)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_test_modules_have_unique_names():
    """The tests are collected in rootdir mode (no packages): two test files with one basename in
    different folders stop the whole collection with "import file mismatch"."""
    seen: dict[str, Path] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        assert path.name not in seen, f"{path.relative_to(ROOT)} and {seen[path.name].relative_to(ROOT)} share a name"
        seen[path.name] = path


def test_imports_sit_at_module_top_except_optional_heavy_ones():
    """Imports inside functions hid cycles; the only ones left are the optional heavy imports."""
    allowed = {"matplotlib", "pandas", "sklearn", "dask", "distributed", "numpyro", "jax", "arviz"}
    hidden = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    module = inner.module if isinstance(inner, ast.ImportFrom) else inner.names[0].name
                    if (module or "").split(".")[0] not in allowed:
                        hidden.append(f"{path.relative_to(ROOT)}:{inner.lineno} {module}")
    assert not hidden, hidden


class _CopyOfDiag(DiagCovariance):
    """A 'new' structure: a module-sized subclass (here a copy of diag under another name)."""

    name = "diag_copy"
    aliases = ()


def test_a_new_structure_is_one_class_plus_its_registration(monkeypatch):
    monkeypatch.setitem(covariance.STRUCTURES, "diag_copy", _CopyOfDiag())
    X = mixtures.data.old_faithful()
    reference = mixtures.fit(mixtures.GaussianMixture(2, "diag"), X, "em", seed=0)
    for method in ("em", "map", "vb"):
        prior = mixtures.GaussianPrior() if method == "vb" else None
        model = mixtures.GaussianMixture(2, "diag_copy", prior=prior)
        result = mixtures.fit(model, X, method, seed=0, **({"num_steps": 20} if method == "map" else {}))
        assert result.params.covariance_type == "diag_copy" and torch.isfinite(result.params.native).all()
    copy = mixtures.fit(mixtures.GaussianMixture(2, "diag_copy"), X, "em", seed=0)
    assert torch.equal(copy.params.native, reference.params.native)
    assert copy.model.n_parameters(2) == reference.model.n_parameters(2)


@pytest.mark.parametrize("name", ["VVV", "EEE", "VVI", "VII"])
def test_mclust_names_are_aliases_of_the_structures(name):
    structure = covariance.get_structure(name)
    assert name in structure.aliases and covariance.get_structure(structure.name) is structure
