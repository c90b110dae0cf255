"""What pip installs from pyproject.toml is what the shipped code needs: every third-party import is a declared
dependency (not one that happens to arrive with another package), and the license metadata is the SPDX one."""

import ast
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DISTRIBUTION = PYPROJECT["project"]["name"]


def shipped_python_files() -> list[Path]:
    """The top-level modules and the Python files of the packages pyproject.toml ships."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    modules = [ROOT / f"{name}.py" for name in setuptools["py-modules"]]
    packages = [pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]]
    return modules + sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def own_top_level_names() -> set[str]:
    setuptools = PYPROJECT["tool"]["setuptools"]
    return set(setuptools["py-modules"]) | {pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]}


def imported_top_level_modules(path: Path) -> set[str]:
    """Absolute imports anywhere in the file (also the lazy ones inside functions), as top-level names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def test_every_third_party_import_of_the_shipped_code_is_a_declared_dependency():
    files = shipped_python_files()
    assert {"modeling_dyken.py", "processing_dyken.py", "hub_publishing.py", "datasets_scripts/builders.py",
            "metrics/intent_metrics/intent_metrics.py"} <= {path.relative_to(ROOT).as_posix() for path in files}
    declared = {canonicalize_name(Requirement(line).name) for line in PYPROJECT["project"]["dependencies"]}
    providers = metadata.packages_distributions()  # top-level module name -> distributions installing it
    own = own_top_level_names()

    importers: dict[str, list[str]] = {}
    for path in files:
        for module in imported_top_level_modules(path):
            if module not in sys.stdlib_module_names and module not in own:
                importers.setdefault(module, []).append(path.relative_to(ROOT).as_posix())

    undeclared = []
    for module, files in sorted(importers.items()):
        distributions = {canonicalize_name(name) for name in providers.get(module, [])}
        if not distributions & declared:
            installed_by = ", ".join(sorted(distributions)) or "no installed distribution"
            undeclared.append(f"`{module}` (imported by {', '.join(sorted(files))}; provided by {installed_by})")
    assert not undeclared, (
        "pyproject.toml [project].dependencies does not declare what these imports need: " + "; ".join(undeclared)
    )


def test_installed_license_metadata_is_the_spdx_expression():
    # The metadata of the installed distribution (site-packages), not a *.egg-info that an editable build left in
    # the source folder, which the working directory on sys.path would otherwise find first.
    installed = [dist for dist in metadata.distributions(name=DISTRIBUTION)
                 if Path(dist.locate_file("")).resolve() != ROOT]
    assert installed, f"{DISTRIBUTION} is not installed (pip install -e .)"
    fields = installed[0].metadata
    assert fields["License-Expression"] == "Apache-2.0", (
        f"{DISTRIBUTION} metadata has License-Expression={fields['License-Expression']!r}, "
        f"License={fields['License']!r}; expected the SPDX expression 'Apache-2.0' (reinstall after changing "
        "pyproject.toml)"
    )
