"""The package's import graph: no circle, function-level imports only for a stated reason, and the
scorer and the statistics usable without torch.

A circle of imports (a imports b imports ... imports a) forces function-level imports to dodge it
and makes the import order matter; these tests read every module's import statements (top level
and inside functions) with `ast` and fail on any circle, so a new one is seen when it is written.
`if __name__ == "__main__":` blocks are left out: they run in a module called __main__, which
imports the package's modules afresh (python -m pemscl.train imports pemscl.cli, which imports
pemscl.train: another module object, no circle at run time).
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "pemscl"


def _is_main_guard(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _imports(tree: ast.Module, modules: set[str]):
    """(imported module, line, at top level?) for every import of a package module."""
    top_level = {id(n) for n in tree.body}
    skip = {id(n) for node in tree.body if _is_main_guard(node) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 1:  # from . import x / from .x import y
            names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("pemscl"):
            parts = node.module.split(".")
            names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("pemscl.")]
        for n in names:
            if n in modules:
                yield n, node.lineno, id(node) in top_level


def graph() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """({module: modules it imports}, [(module, line, imported) of each function-level import])."""
    files = {p.stem: p for p in PKG.glob("*.py") if p.stem != "__init__"}
    edges, inner = {m: set() for m in files}, []
    for m, path in files.items():
        tree = ast.parse(path.read_text())
        for n, line, top in _imports(tree, set(files)):
            if n != m:
                edges[m].add(n)
            if not top:
                inner.append((m, line, n))
    return edges, inner


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_circles_are_found():
    # the detector itself, on a made-up graph: a -> b -> c -> a is one circle, d hangs off it
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_circle():
    edges, _ = graph()
    assert len(edges) > 25  # every module was read
    assert circles(edges) == []


def test_function_level_imports_of_the_package_say_why():
    """An import of a package module inside a function is allowed only with a comment on its line
    saying why (no circle needs one any more)."""
    _, inner = graph()
    bare = []
    for m, line, n in inner:
        text = (PKG / f"{m}.py").read_text().splitlines()[line - 1]
        if "#" not in text:
            bare.append(f"pemscl/{m}.py:{line} imports {n}")
    assert bare == []


BLOCK_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None
sys.meta_path.insert(0, NoTorch())
"""


@pytest.mark.parametrize("module", ["pemscl.evaluate", "pemscl.stats", "pemscl.published", "pemscl.fmt",
                                    "pemscl.report", "pemscl.tables", "pemscl.claims", "pemscl.leaderboard"])
def test_scorer_and_statistics_import_without_torch(module):
    code = BLOCK_TORCH + f"import {module}\nassert 'torch' not in sys.modules\nprint('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_the_scorer_runs_from_the_command_line_without_torch(tmp_path, data_dir):
    """python -m pemscl.evaluate on a gold file and a prediction file, torch blocked."""
    import json

    gold = json.loads((data_dir / "redocred" / "dev_revised.json").read_text())[:3]
    preds = [{"title": d["title"], "h_idx": lab["h"], "t_idx": lab["t"], "r": lab["r"], "evidence": []}
             for d in gold for lab in d["labels"][:2]]
    (tmp_path / "gold.json").write_text(json.dumps(gold))
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    code = BLOCK_TORCH + ("import runpy; sys.argv = ['pemscl.evaluate', 'preds.json', 'gold.json'];"
                          " runpy.run_module('pemscl.evaluate', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    scores = json.loads(out.stdout)
    # every prediction is a gold fact (precision 1) and the gold file holds n_gold facts
    n_gold = len({(d["title"], lab["h"], lab["t"], lab["r"]) for d in gold for lab in d["labels"]})
    assert scores["precision"] == 1.0 and scores["n_pred"] == len(preds) and scores["n_gold"] == n_gold


BUILTIN_PRESETS = ["afl", "atl", "bce", "ncrl", "pemscl", "pemscl-no-em", "pemscl-no-em-no-scl", "pemscl-no-scl",
                   "pemscl-ns", "ssr-pu"]
# every built-in preset as JSON, with what the spec's check does to a bad value
PRESETS_AS_JSON = """
import dataclasses, json
from pemscl import lossspec as S
out = {n: dataclasses.asdict(S.loss_spec(n)) for n in sorted(S.LOSS_PRESETS)}
for bad in ({"prior": 1.5}, {"prior": 0.0}, {"margin": -1.0}):
    try:
        S.loss_spec("ssr-pu", params=bad)
    except ValueError:
        continue
    raise AssertionError(f"ssr-pu params {bad} were accepted")
try:
    S.LossSpec(kind="afl", params={"gamma": -1.0})
    raise AssertionError("a negative focal gamma was accepted")
except ValueError:
    pass
"""


def test_loss_specs_and_presets_without_torch():
    """pemscl.lossspec, torch blocked: every built-in preset, the built-in params' checks, a user
    loss registered with its own function; a built-in's function needs pemscl.losses and says so."""
    code = BLOCK_TORCH + PRESETS_AS_JSON + """
assert S.registered_losses() == ("afl", "atl", "bce", "ncrl", "pemscl", "ssr-pu")
try:
    S.get_loss("atl")
    raise AssertionError("get_loss of a built-in without its function")
except RuntimeError as e:
    assert "pemscl.losses" in str(e)
S.register_loss("toy", lambda logits, labels, **kw: (0.0, {}), defaults={"t": 1.0})
assert S.get_loss("toy").defaults == {"t": 1.0} and S.loss_spec("toy").kind == "toy"
assert 'torch' not in sys.modules
print(json.dumps(out))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    without = json.loads(out.stdout)
    assert sorted(without) == BUILTIN_PRESETS
    # the same presets as with the torch code loaded, whose functions are then attached - except a
    # built-in the user replaced before pemscl.losses was imported, which stays theirs
    code = PRESETS_AS_JSON + """
mine = lambda logits, labels, **kw: (0.0, {})
S.register_loss("bce", mine, preset=S.LOSS_PRESETS["bce"], replace=True)
from pemscl import losses as L
assert S.get_loss("bce").fn is mine and L.get_loss("atl").fn is L._atl_l1
assert L.get_loss("ssr-pu").prepare is L._prepare_ssr and L.LossSpec is S.LossSpec
print(json.dumps({n: dataclasses.asdict(S.loss_spec(n)) for n in sorted(S.LOSS_PRESETS)}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == without


def test_the_loss_spec_module_imports_no_package_module():
    edges, _ = graph()
    assert edges["lossspec"] == {"registry"} and edges["registry"] == set()
    assert "losses" not in edges["config"] and "losses" not in edges["experiments"]


def test_the_report_of_the_committed_record_needs_no_torch():
    """The cpu profile's tables and claims from results/runs.jsonl, torch blocked, are the ones
    computed with torch (the configs' keys name their device kind and precision without it)."""
    import json

    record = Path(__file__).resolve().parents[1] / "results" / "runs.jsonl"  # the committed one

    from pemscl import claims, runs

    code = BLOCK_TORCH + (
        "import json\nfrom pemscl import claims, report, runs, tables\n"
        "rs = runs.gather_runs(root='no-runs-here', record='results/runs.jsonl')\n"
        "c = claims.judge(rs, 'cpu')\nmd = report.markdown(tables.build_tables(rs, 'cpu'), c)\n"
        "assert 'torch' not in sys.modules and '`ns-rescues` +5.95' in md\n"
        "print(json.dumps([[r['id'], r['verdict'], r['diff']] for r in c]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    with_torch = [[r["id"], r["verdict"], r["diff"]] for r in claims.judge(runs.gather_runs(root="no-runs-here", record=record), "cpu")]
    assert json.loads(out.stdout) == json.loads(json.dumps(with_torch)) and len(with_torch) >= 6
