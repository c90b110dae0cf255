"""What pip installs from pyproject.toml is what the shipped code needs: every third-party import is a declared
dependency (not one that happens to arrive with another package), and the license metadata is the SPDX one."""

import ast
import json
import shutil
import subprocess
import sys
import zipfile
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
    assert {"modeling_dyken.py", "processing_dyken.py", "dyken_hyena/publishing.py", "datasets_scripts/builders.py",
            "dyken_hyena/metrics/intent_metrics/intent_metrics.py"} <= {path.relative_to(ROOT).as_posix() for path in files}
    # The core dependencies, and the extras that bring what an optional feature imports (PyAV, torchvision).
    extras = [line for lines in PYPROJECT["project"]["optional-dependencies"].values() for line in lines]
    declared = {canonicalize_name(Requirement(line).name) for line in PYPROJECT["project"]["dependencies"] + extras}
    providers = metadata.packages_distributions()  # top-level module name -> distributions installing it
    own = own_top_level_names()

    importers: dict[str, list[str]] = {}
    for path in files:
        for module in imported_top_level_modules(path):
            if module not in sys.stdlib_module_names and module not in own:
                importers.setdefault(module, []).append(path.relative_to(ROOT).as_posix())

    undeclared = []
    for module, files in sorted(importers.items()):
        # A module of an extra that is not installed here (av, torchvision) goes by its own name.
        distributions = {canonicalize_name(name) for name in providers.get(module, [module])}
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


# The layers of the project, lowest first: a module imports only from its own layer or the layers below it.
LAYERS = (
    ("the model (remote-code files)", ("configuration_dyken", "modeling_dyken", "processing_dyken", "extraction_dyken",
                                        "pipeline_dyken")),
    ("leaf utilities", ("dyken_hyena.hub", "dyken_hyena.metrics")),
    ("the data", ("datasets_scripts",)),
    ("training and publishing", ("dyken_hyena",)),
    ("the trainer", ("train_accelerate",)),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The most specific layer whose prefix names the module."""
    matches = [(len(prefix), index) for index, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    return max(matches)[1]


def project_imports(path: Path) -> set[str]:
    """The project modules a file imports (absolute and relative imports, resolved to module names)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    own, found = own_top_level_names(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            target = ".".join(filter(None, [base, node.module]))
            # `from . import synthetic` imports a module; `from .builders import load` a name of one.
            names = [f"{target}.{alias.name}" for alias in node.names] + [target]
        found.update(name for name in names if name.partition(".")[0] in own)
    return found


def test_no_module_imports_from_a_layer_above_it_nor_in_a_cycle():
    modules = {module_name(path): path for path in shipped_python_files()}
    graph = {}
    for name, path in modules.items():
        imported = {target for target in project_imports(path) if target in modules and target != name}
        graph[name] = imported
        upward = [f"{target} ({LAYERS[layer_of(target)][0]})" for target in imported if layer_of(target) > layer_of(name)]
        assert not upward, f"{name} ({LAYERS[layer_of(name)][0]}) imports from a layer above it: {upward}"

    def cycle_from(start, seen=()):
        for target in graph[start]:
            if target in seen:
                return [*seen, target]
            if found := cycle_from(target, (*seen, target)):
                return found
        return None

    # Packages import their own modules through __init__: a package and its submodules are one node here.
    for name in graph:
        graph[name] = {target for target in graph[name] if not name.startswith(target + ".") and not target.startswith(name + ".")}
    for name in graph:
        assert cycle_from(name, (name,)) is None, f"import cycle: {' -> '.join(cycle_from(name, (name,)))}"


def test_the_wheel_ships_one_package_whose_metrics_and_configs_work_from_anywhere(tmp_path):
    """Built and unpacked as pip installs it; used from a folder holding a `metrics.py` of the user's own."""
    # From a copy: setuptools keeps its build/ folder in the source tree, where stale files would join the wheel.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "*.egg-info", "__pycache__", "outputs", "tests", "benchmarks", "docs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    top_level = {path.name for path in installed.iterdir() if not path.name.endswith(".dist-info")}
    assert top_level == {"configuration_dyken.py", "modeling_dyken.py", "processing_dyken.py", "extraction_dyken.py",
                         "pipeline_dyken.py", "train_accelerate.py", "datasets_scripts", "dyken_hyena", "model_cards"}

    user_folder = tmp_path / "user"
    user_folder.mkdir()
    (user_folder / "metrics.py").write_text("raise ImportError('the user\'s own metrics.py was imported')\n")
    code = (
        "import json, train_accelerate\n"
        "from dyken_hyena.metrics import load_intent_metrics\n"
        "scores = load_intent_metrics().compute(predictions=[0, 1, 1], references=[0, 1, 0])\n"
        "args = train_accelerate.parse_args(['--config', 'mintrec2'])\n"
        "print(json.dumps({'module': train_accelerate.__file__, 'accuracy': scores['accuracy'],\n"
        "                  'preset': args.preset, 'model': args.model_name_or_path}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1",
           "HF_MODULES_CACHE": str(tmp_path / "modules"), "HOME": str(tmp_path)}
    process = subprocess.run([sys.executable, "-c", code], cwd=user_folder, env=env, capture_output=True, text=True)
    assert process.returncode == 0, process.stderr[-3000:]
    result = json.loads(process.stdout.strip().splitlines()[-1])
    assert result["module"].startswith(str(installed))
    assert result["accuracy"] == 2 / 3
    assert (result["preset"], result["model"]) == ("mintrec2", "bert-base-uncased")
