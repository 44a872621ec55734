"""Notebook parameters (`mtcrl_lite.experiments.notebook.parameters`): values as papermill passes them
(`-p SEEDS "[0, 1]"` gives the string "[0, 1]"), errors that name the parameter, the value and an example, and every
notebook's parameters cell checked against SCHEMA and the kinds the notebook declares itself: its names are known,
the next code cell validates all of them, later cells use only `P.NAME`, and its literal defaults validate."""

import ast
import json
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from mtcrl_lite.baselines.methods import METHODS as REGISTRY
from mtcrl_lite.experiments.notebook import (
    EXAMPLES,
    MINIMUM,
    SCHEMA,
    ParameterError,
    parameters,
    results_dir,
    run_overrides,
    split_kind,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
METHOD_PARAMS = ("METHODS", "OTHER_TARGET_METHODS")  # parameters whose values are method names


def declared_kinds(nb: Path) -> dict:
    """The `KINDS = {...}` a notebook's validation cell declares for its own parameters ({} if none)."""
    for cell in json.loads(nb.read_text())["cells"]:
        for node in ast.parse("".join(cell["source"])).body if cell["cell_type"] == "code" else []:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "KINDS":
                return ast.literal_eval(node.value)
    return {}


KINDS = {nb.stem: declared_kinds(nb) for nb in NOTEBOOKS}
# every notebook's own parameters, for the tests of single values (01's EPOCHS list is tested apart)
ANY_KINDS = {k: v for kinds in KINDS.values() for k, v in kinds.items() if k not in SCHEMA}


def one(name, value, choices=None, notebook=None):
    kinds = KINDS[notebook] if notebook else ANY_KINDS
    return getattr(parameters(choices, kinds=kinds, **{name: value}), name)


def error(name, value, choices=None, notebook=None):
    kinds = KINDS[notebook] if notebook else ANY_KINDS
    with pytest.raises(ParameterError) as e:
        parameters(choices, kinds=kinds, **{name: value})
    return str(e.value)


# ---- lists ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["[0, 1]", "0,1", " [0,1] ", "(0, 1)", "0, 1", "[0, 1.0]", "['0', '1']", [0, 1], (0, 1), range(2)]
)
def test_int_list_from_what_papermill_passes(value):
    out = one("SEEDS", value)
    assert out == [0, 1] and all(type(s) is int for s in out)


@pytest.mark.parametrize("value, expected", [("[0]", [0]), ("0", [0]), (0, [0]), ("[2, 0, 2]", [2, 0, 2])])
def test_int_list_single_and_repeated(value, expected):
    assert one("SEEDS", value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "[mtl, mtcrl]",
        "['mtl', 'mtcrl']",
        '["mtl", "mtcrl"]',
        "mtl,mtcrl",
        " [ mtl , mtcrl ] ",
        ["mtl", "mtcrl"],
        ("mtl", "mtcrl"),
    ],
)
def test_str_list_from_what_papermill_passes(value):
    assert one("METHODS", value) == ["mtl", "mtcrl"]


@pytest.mark.parametrize("value", ["['mtl']", "[mtl]", "mtl", "'mtl'"])
def test_str_list_of_one(value):
    assert one("METHODS", value) == ["mtl"]


def test_str_list_keeps_hyphenated_method_names():
    assert one("METHODS", "[mtcrl-nogirm, mtcrl-norm]", {"METHODS": tuple(REGISTRY)}) == ["mtcrl-nogirm", "mtcrl-norm"]


@pytest.mark.parametrize(
    "value, expected",
    [
        ("[0.5, 0.9]", [0.5, 0.9]),
        ("0.5,1", [0.5, 1.0]),
        ("[0, 1]", [0.0, 1.0]),
        ("0.95", [0.95]),
        ([0.5, 1], [0.5, 1.0]),
    ],
)
def test_prob_list(value, expected):
    out = one("STRENGTHS", value)
    assert out == expected and all(type(v) is float for v in out)


def test_float_list_may_be_empty_where_the_schema_says_so():
    assert one("GRAPH_LRS", "[]") == [] and one("GRAPH_LRS", []) == []
    out = one("GRAPH_LRS", "[10, 30]")
    assert out == [10.0, 30.0] and all(type(v) is float for v in out)
    assert one("OTHER_TARGET_METHODS", "[]") == []
    assert one("OTHER_TARGET_METHODS", "[mtl, mtcrl]", {"OTHER_TARGET_METHODS": tuple(REGISTRY)}) == ["mtl", "mtcrl"]


@pytest.mark.parametrize(
    "name, value", [("SEEDS", "[]"), ("SEEDS", ""), ("SEEDS", []), ("METHODS", "[]"), ("STRENGTHS", "()")]
)
def test_lists_are_not_empty_unless_the_schema_says_so(name, value):
    assert "the list is empty" in error(name, value)


# ---- bools, None, ints, floats, dicts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("False", False),
        ("false", False),
        ("True", True),
        ("true", True),
        (" TRUE ", True),
        ("0", False),
        ("1", True),
        ("no", False),
        ("yes", True),
        (False, False),
        (True, True),
        (0, False),
        (1, True),
    ],
)
def test_bool(value, expected):
    assert one("SMOKE", value) is expected
    assert one("FORCE", value) is expected


@pytest.mark.parametrize("value", ["maybe", "", 2, 0.5, None, "[True]"])
def test_bool_rejects(value):
    assert error("SMOKE", value).startswith(f"notebook parameter SMOKE = {value!r}: ")


@pytest.mark.parametrize("name", ["EPOCHS", "TASKS", "DATA_ROOT", "RESULTS_DIR"])
@pytest.mark.parametrize("value", [None, "None", "", " None "])
def test_none_for_optional_kinds(name, value):
    assert one(name, value) is None


@pytest.mark.parametrize("name", ["SEEDS", "METHODS", "SMOKE", "MU", "N_ANALYZE", "SEM_OVERRIDES", "SCALE"])
def test_none_for_required_kinds_is_an_error(name):
    assert f"notebook parameter {name} = None: " in error(name, None)


def test_optional_kinds_take_values():
    assert one("EPOCHS", "20") == 20 and one("EPOCHS", 20) == 20
    assert one("TASKS", "[normal, depth_zbuffer]") == ["normal", "depth_zbuffer"]
    assert one("DATA_ROOT", "/data/taskonomy") == "/data/taskonomy"
    assert one("RESULTS_DIR", Path("/tmp/r")) == "/tmp/r"


@pytest.mark.parametrize("value", ["3", "3.0", " 3 ", 3, 3.0, "3e0"])
def test_int_from_string_or_number(value):
    out = one("N_ANALYZE", value)
    assert out == 3 and type(out) is int


def test_int_exact_for_underscores_and_large_values():
    assert one("N_LARGE", "200_000") == 200_000
    assert one("N_LARGE", str(10**20 + 1)) == 10**20 + 1


@pytest.mark.parametrize("value", ["3.5", 3.5, "three", True, "nan", "inf", "[3]", [3]])
def test_int_rejects(value):
    assert f"notebook parameter N_ANALYZE = {value!r}: expected an integer; pass e.g. -p N_ANALYZE 3" == error(
        "N_ANALYZE", value
    )


@pytest.mark.parametrize("value, expected", [("1.5", 1.5), ("2", 2.0), (2, 2.0), (1.5, 1.5), ("1e-1", 0.1)])
def test_float(value, expected):
    out = one("MU", value)
    assert out == expected and type(out) is float


@pytest.mark.parametrize("value", ["nan", "inf", "x", True, "[1.5]"])
def test_float_rejects(value):
    assert error("MU", value) == f"notebook parameter MU = {value!r}: expected a number; pass e.g. -p MU 1.5"


def test_prob_list_rejects_values_outside_the_unit_interval():
    assert error("M_GRID", "[0.5, 1.5]") == (
        "notebook parameter M_GRID = '[0.5, 1.5]': item 1.5: expected a number "
        'in [0, 1]; pass e.g. -p M_GRID "[0.5, 0.9]"'
    )
    assert "item -0.1" in error("STRENGTHS", "-0.1")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("{}", {}),
        ({}, {}),
        ("{'train.epochs': 3}", {"train.epochs": 3}),
        ('{"data.downsample": 2, "data.n_val": 100}', {"data.downsample": 2, "data.n_val": 100}),
        ({"train.epochs": 3}, {"train.epochs": 3}),
    ],
)
def test_dict(value, expected):
    assert one("MNIST_OVERRIDES", value) == expected


@pytest.mark.parametrize("value", ["[1]", "{1: 2}", "train.epochs=3", "{train.epochs: 3}", 3, [("a", 1)]])
def test_dict_rejects(value):
    assert error("SEM_OVERRIDES", value) == (
        f"notebook parameter SEM_OVERRIDES = {value!r}: expected a dict of config overrides with string keys; "
        "pass e.g. -p SEM_OVERRIDES \"{'train.epochs': 5}\""
    )


def test_str_strips_and_checks_allowed_values():
    assert one("SCALE", " full ") == "full" and one("DEVICE", "cuda") == "cuda" and one("TARGET", "like") == "like"


# ---- errors name the parameter, the value and an example ------------------------------------------------------------


def test_error_bad_int_in_list():
    assert (
        error("SEEDS", "[a]")
        == "notebook parameter SEEDS = '[a]': item 'a': expected an integer; pass e.g. -p SEEDS \"[1, 2, 3]\""
    )
    assert (
        error("SEEDS", "[0, 1.5]")
        == "notebook parameter SEEDS = '[0, 1.5]': item 1.5: expected an integer; pass e.g. -p SEEDS \"[1, 2, 3]\""
    )


def test_error_value_not_allowed():
    assert error("SCALE", "huge") == (
        "notebook parameter SCALE = 'huge': 'huge' not among the valid values "
        "['default', 'full']; pass e.g. -p SCALE default"
    )
    assert error("TARGET", "stars") == (
        "notebook parameter TARGET = 'stars': 'stars' not among the valid values "
        "['rating', 'like']; pass e.g. -p TARGET rating"
    )
    assert error("DEVICE", "tpu").endswith("pass e.g. -p DEVICE auto")


def test_error_method_not_in_choices():
    assert error("METHODS", "[nope]", {"METHODS": ("stl", "mtl", "mtcrl")}) == (
        "notebook parameter METHODS = '[nope]': ['nope'] not among the valid values ['stl', 'mtl', 'mtcrl']; "
        'pass e.g. -p METHODS "[mtl, mtcrl]"'
    )
    msg = error("METHODS", "[mtl, nope, mtcrl2]", {"METHODS": tuple(REGISTRY)})
    assert msg.startswith("notebook parameter METHODS = '[mtl, nope, mtcrl2]': ['nope', 'mtcrl2'] not among")
    assert all(m in msg for m in REGISTRY)
    assert "['typo']" in error("OTHER_TARGET_METHODS", "[typo]", {"OTHER_TARGET_METHODS": tuple(REGISTRY)})


def test_choices_narrow_the_schema():
    assert one("METHODS", "[anything]") == ["anything"]  # the schema alone does not know the registry
    assert "'full' not among the valid values ['default']" in error("SCALE", "full", {"SCALE": ("default",)})


def test_unknown_parameter_is_an_error():
    with pytest.raises(ParameterError, match=r"^unknown notebook parameter SEED; known: \[.*'SEEDS'"):
        parameters(SEED="[0]")
    with pytest.raises(ParameterError, match="unknown notebook parameter METHOD;"):
        parameters({"METHOD": tuple(REGISTRY)}, METHODS="[mtl]")


def test_parameter_error_is_a_value_error_and_the_result_a_namespace():
    assert issubclass(ParameterError, ValueError)
    p = parameters(SEEDS="[0]", SMOKE="False")
    assert p == SimpleNamespace(SEEDS=[0], SMOKE=False)
    assert parameters() == SimpleNamespace()


def test_notebook_specific_kinds():
    assert one("EPOCHS", "[3, 30]", notebook="01_theory_proposition1") == [3, 30]
    assert one("EPOCHS", "2", notebook="01_theory_proposition1") == [2]
    assert (
        error("EPOCHS", "[3, 30]")
        == "notebook parameter EPOCHS = '[3, 30]': expected an integer; pass e.g. -p EPOCHS 20"
    )
    assert one("EPOCHS", "20", notebook="06_multimnist") == 20


def test_every_kind_is_known_and_its_example_parses():
    specs = [(n, k, a, None) for n, (k, a) in SCHEMA.items()]
    for stem, kinds in KINDS.items():
        for name, spec in kinds.items():
            kind, _, allowed = (spec, None, None) if isinstance(spec, str) else (tuple(spec) + (None, None))[:3]
            specs.append((name, kind, allowed, stem))
    assert len(specs) > len(SCHEMA) and set(MINIMUM) <= set(SCHEMA)
    for name, kind, _, _ in specs:
        split_kind(kind)
        assert name == name.upper() and kind in EXAMPLES, name
    for kind in EXAMPLES:
        split_kind(kind)
    for name, kind, allowed, stem in specs:  # the example an error message prints must itself be accepted
        value = allowed[0] if kind == "str" and allowed else shlex.split(EXAMPLES[kind])[0]
        assert one(name, value, notebook=stem) is not None, name
    with pytest.raises(ValueError, match="unknown parameter kind"):
        split_kind("bool_or_empty")
    with pytest.raises(ValueError, match="unknown parameter kind"):
        parameters(kinds={"X": "complex"}, X=1)


def test_a_declared_minimum_and_allowed_values_are_enforced():
    kinds = {"N": ("int", 2), "MODE": ("str", None, ("a", "b"))}
    assert parameters(kinds=kinds, N="3", MODE="b").N == 3
    with pytest.raises(ParameterError, match=r"N = '1': \[1\] below the smallest valid value 2"):
        parameters(kinds=kinds, N="1")
    with pytest.raises(ParameterError, match="not among the valid values"):
        parameters(kinds=kinds, MODE="c")
    with pytest.raises(ParameterError, match="unknown notebook parameter MU.*declare it with kinds"):
        parameters(MU=1.0)


# ---- the notebooks --------------------------------------------------------------------------------------------------


def code_cells(nb):
    cells = json.loads(nb.read_text())["cells"]
    return [(c, "".join(c["source"])) for c in cells if c["cell_type"] == "code"]


def parameters_cell(nb):
    """(index among code cells, the parameters cell's AST, {name: its literal default or the AST node})."""
    code = code_cells(nb)
    i = next(i for i, (c, _) in enumerate(code) if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse(code[i][1])
    defaults = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Expr)):
            continue
        assert isinstance(node, ast.Assign), f"{nb.name}: parameters cell may only import and assign: {ast.dump(node)}"
        for target in node.targets:
            if isinstance(target, ast.Tuple):
                assert isinstance(node.value, ast.Tuple) and len(node.value.elts) == len(target.elts)
                pairs = zip(target.elts, node.value.elts)
            else:
                pairs = [(target, node.value)]
            for t, v in pairs:
                assert isinstance(t, ast.Name), f"{nb.name}: assign plain names in the parameters cell"
                defaults[t.id] = v
    return i, code, defaults


def parameters_call(tree):
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "parameters"
    ]
    return calls[0] if len(calls) == 1 else None


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_names_only_known_parameters(nb):
    _, _, defaults = parameters_cell(nb)
    assert defaults, f"{nb.name}: empty parameters cell"
    unknown = sorted(set(defaults) - set(SCHEMA) - set(KINDS[nb.stem]))
    assert not unknown, f"{nb.name}: parameters {unknown} are neither shared (SCHEMA) nor declared in its KINDS"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_next_code_cell_validates_every_parameter_and_later_cells_use_only_the_validated_ones(nb):
    i, code, defaults = parameters_cell(nb)
    tree = ast.parse(code[i + 1][1])
    call = parameters_call(tree)
    assert call is not None, f"{nb.name}: the first code cell after the parameters cell must call parameters(...) once"
    passed = {k.arg: k.value for k in call.keywords if k.arg != "kinds"}
    assert set(passed) == set(defaults), f"{nb.name}: parameters(...) misses {set(defaults) - set(passed)}"
    assert all(isinstance(v, ast.Name) and v.id == k for k, v in passed.items()), f"{nb.name}: pass NAME=NAME"
    given = {k.arg: k.value for k in call.keywords}.get("kinds")
    if KINDS[nb.stem]:
        assert isinstance(given, ast.Name) and given.id == "KINDS", f"{nb.name}: pass kinds=KINDS"
    allowed_raw = {id(v) for v in passed.values()}  # the NAME of NAME=NAME in the call
    for later in [tree] + [ast.parse(src) for _, src in code[i + 2 :]]:
        for node in ast.walk(later):
            if isinstance(node, ast.Name) and node.id in defaults and id(node) not in allowed_raw:
                raise AssertionError(f"{nb.name}: uses the unvalidated {node.id} (line {node.lineno}); use P.{node.id}")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_literal_defaults_validate(nb):
    _, _, defaults = parameters_cell(nb)
    literal = {}
    for name, node in defaults.items():
        try:
            literal[name] = ast.literal_eval(node)
        except ValueError:  # e.g. SMOKE = os.environ.get(...) == "1"
            continue
    choices = {name: tuple(REGISTRY) for name in METHOD_PARAMS if name in literal}
    p = parameters(choices, kinds=KINDS[nb.stem], **literal)
    for name, value in literal.items():  # the defaults already have their types: validation changes nothing
        assert getattr(p, name) == value and type(getattr(p, name)) is type(value), name


def test_counts_below_their_minimum_are_errors():
    assert error("EPOCHS", "0") == (
        "notebook parameter EPOCHS = '0': [0] below the smallest valid value 1; pass e.g. -p EPOCHS 20"
    )
    assert "[-1] below the smallest valid value 0" in error("SEEDS", "[0, -1]")


def test_results_dir_is_results_dir_or_the_notebooks_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MTCRL_RESULTS", str(tmp_path / "res"))
    P = SimpleNamespace(RESULTS_DIR=None, SMOKE=False)
    assert results_dir(P, "06_multimnist") == tmp_path / "res" / "06_multimnist"
    assert (
        results_dir(SimpleNamespace(RESULTS_DIR=None, SMOKE=True), "06_multimnist")
        == tmp_path / "res" / "smoke" / "06_multimnist"
    )
    assert results_dir(P, "") == tmp_path / "res"
    assert results_dir(SimpleNamespace(RESULTS_DIR="elsewhere", SMOKE=True), "06_multimnist") == Path("elsewhere")


def test_run_overrides_from_device_epochs_and_data_root():
    P = SimpleNamespace(DEVICE="cpu", EPOCHS=None, DATA_ROOT=None)
    assert run_overrides(P) == {"train.device": "cpu"}
    P = SimpleNamespace(DEVICE="auto", EPOCHS=3, DATA_ROOT=Path("/d"))
    assert run_overrides(P) == {"train.device": "auto", "train.epochs": 3, "data.root": "/d"}
    assert run_overrides(P, data_root=False) == {"train.device": "auto", "train.epochs": 3}


def test_strip_timing_keeps_outputs_and_drops_timestamps():
    from mtcrl_lite.experiments.notebook import strip_timing

    nb = {
        "metadata": {"papermill": {"duration": 8.8, "start_time": "t0", "end_time": "t1", "version": "2.7.0"}},
        "cells": [
            {
                "metadata": {
                    "execution": {"iopub.status.busy": "t"},
                    "papermill": {"duration": 0.1, "status": "completed"},
                    "tags": ["parameters"],
                },
                "outputs": [{"text": "42"}],
            }
        ],
    }
    out = strip_timing(nb)
    assert out["metadata"]["papermill"] == {"version": "2.7.0"}
    assert out["cells"][0]["metadata"] == {"papermill": {"status": "completed"}, "tags": ["parameters"]}
    assert out["cells"][0]["outputs"] == [{"text": "42"}]


def test_strip_timing_drops_what_depends_on_the_machine():
    from mtcrl_lite.experiments.notebook import strip_timing

    outputs = [
        {"name": "stderr", "text": ["/x/tqdm/auto.py:21: TqdmWarning: IProgress not found.\n", "  from .auto\n"]},
        {"name": "stdout", "text": ["runs in /repo/results/06\n", "/tmp/ipykernel_123/99.py:1: UserWarning: w\n"]},
    ]
    out = strip_timing({"cells": [{"outputs": outputs}]}, root=Path("/repo"))
    assert out["cells"][0]["outputs"] == [
        {"name": "stdout", "text": ["runs in ./results/06\n", "<cell>:1: UserWarning: w\n"]}
    ]
