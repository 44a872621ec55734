"""The package's shape: the method core imports torch only, and every sub-package imports only from its own or
lower layers (docs/ARCHITECTURE.md). The old flat module paths still work for one release, with a warning."""

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import mtcrl_lite

PKG = Path(mtcrl_lite.__file__).parent
# Lowest first; a module may import from its own layer or any layer before it. paths is a stdlib-only leaf.
LAYERS = ["paths", "core", "data", "models", "baselines", "run", "grid", "analysis", "experiments"]


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "mtcrl_lite" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                pkg = path.relative_to(PKG.parent).with_suffix("").parts[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module
            out += [mod] + [f"{mod}.{a.name}" for a in node.names]
    return out


def layered_files():
    return [p for p in PKG.rglob("*.py") if len(p.relative_to(PKG).parts) > 1]


def test_every_subpackage_module_has_a_layer():
    assert {p.relative_to(PKG).parts[0] for p in layered_files()} <= set(LAYERS)


@pytest.mark.parametrize("path", layered_files(), ids=lambda p: str(p.relative_to(PKG)))
def test_modules_import_only_from_their_own_or_lower_layers(path):
    own = LAYERS.index(path.relative_to(PKG).parts[0])
    upward = sorted({m for m in imports_of(path) if layer_of(m) and LAYERS.index(layer_of(m)) > own})
    assert not upward, f"{path.relative_to(PKG)} imports from a higher layer: {upward}"


def test_core_imports_torch_only():
    third_party = set()
    for path in (PKG / "core").rglob("*.py"):
        for m in imports_of(path):
            top = m.split(".")[0]
            if top not in sys.stdlib_module_names and top not in ("mtcrl_lite", "__future__"):
                third_party.add(top)
            if top == "mtcrl_lite":
                assert layer_of(m) in (None, "core"), f"{path.name} imports {m}"
    assert third_party == {"torch"}


def test_the_public_api_loads_neither_pandas_matplotlib_nor_any_data_module():
    code = (
        "import sys\nfrom mtcrl_lite import RoutedModel, mtcrl_loss, mtcrl_backward, MTCRLHParams, param_groups, "
        "Task\nprint(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "torch" in out and "mtcrl_lite.core.objective" in out
    loaded = [
        m
        for m in out
        if m.split(".")[0] in ("pandas", "matplotlib", "scipy", "seaborn")
        or m.startswith(("mtcrl_lite.data", "mtcrl_lite.models", "mtcrl_lite.run", "mtcrl_lite.baselines"))
    ]
    assert loaded == []


@pytest.mark.parametrize(
    "old, new",
    [
        ("mtcrl_lite.train", "mtcrl_lite.run.train"),
        ("mtcrl_lite.mtcrl", "mtcrl_lite.core.objective"),
        ("mtcrl_lite.report", "mtcrl_lite.analysis.tables"),
    ],
)
def test_old_paths_are_the_new_modules_with_a_warning(old, new):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)


def test_old_cli_path_still_runs():
    r = subprocess.run([sys.executable, "-m", "mtcrl_lite.sweep", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--methods" in r.stdout


# Digests of the tuned default-scale runs that notebooks 06, 07 and 10 publish, computed by the code before the
# package was layered (031ac8e): the move must keep every run folder's name, so that finished runs are reused.
PUBLISHED = [
    ("multimnist", "mtl", 0, "d44dc43817"),
    ("multimnist", "mtcrl", 3, "8a01159d7c"),
    ("movielens", "stl", 0, "df45850614"),
    ("movielens", "mtcrl", 3, "2cb3a144ed"),
    ("multimnist", "upgrad", 0, "8c9b028870"),
    ("fashionmnist", "mtcrl", 3, "cf9fb66949"),
]


@pytest.mark.parametrize("dataset, method, seed, digest", PUBLISHED)
def test_published_run_digests_are_unchanged(dataset, method, seed, digest):
    from mtcrl_lite.run.config import make_config

    assert make_config(dataset, method, seed, "default", {"train.device": "auto"}).digest() == digest
