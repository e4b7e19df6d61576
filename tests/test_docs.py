"""The shell commands of README.md and docs/*.md: each one is run, or at least parsed.

Every ```bash / ```sh / ```shell / ```console block of README.md and of every docs/*.md page is
split into commands (a console block: the lines after `$ `; a trailing `\\` joins lines; `#`
starts a comment; `OMP_NUM_THREADS=1 cmd` sets the variable for cmd). Optional parts written
`[--flag value]` count as given; a placeholder written `<run folder>` stands for some value.
`classify` decides what a command gets, by one rule:

- RUN: it finishes in seconds and writes nothing in the repository, and it names no placeholder:
  a python command whose program and leading arguments are listed in RUN_FULLY, or that carries
  one of EARLY_EXIT (flags that answer and stop: --help, --print-config, --plan, ...). It runs as
  written, in a scratch folder, with runs, caches and figures redirected there; it must exit 0.
- PARSE: every other python command (`python -m pemscl.X ...`, `python benchmarks/x.py ...`,
  whatever a page written later documents, e.g. `python -m pemscl.export ...`). The program's
  own argparse parser parses the documented arguments and the program stops right there, before
  it does anything (the parser's parse_args is wrapped); pemscl.train is parsed with
  --print-config added, which also resolves the config (loss names, field values). An unknown
  flag, a bad choice, a value of the wrong type or a missing argument fails the test.
- MAKE: `make -n TARGET VAR=...` (prints the recipe, runs nothing) must know the target, every
  VAR must be a variable of the Makefile, and every `python -m pemscl.*` line of the recipe is
  PARSE-checked in turn (so `make workbench PROFILE=paper DRY_RUN=1` checks the pipeline's flags).
- TORCHRUN: torchrun's own options are parsed by its parser; the module after `-m` is PARSE-checked.
- SCRIPT: a `benchmarks/*.sh` script (the GPU check): `bash -n` parses it, its first argument is
  one of the parts its `case` knows, and every VAR= set before it is a variable the script reads.
- NOT_CHECKED: the programs listed in OTHER_PROGRAMS (package managers, git, Jupyter, ...): listed,
  not run. Any other program fails the test: give it a rule here.

A python block named by its first line `# name.py` is written to the scratch folder as that file
before the page's commands run (docs/own-loss.md's `my_losses.py`), and SCRATCH_FILES provides
the small data files the pages name (predictions.json, gold.json, train.json, ...).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
TIMEOUT = 180  # seconds per command

PYTHONS = {"python", "python3", "python3.11", ".venv/bin/python", ".venv/bin/python3", "$(BIN)/python"}
TORCHRUNS = {"torchrun", ".venv/bin/torchrun"}
# programs the pages may show that this test does not run (installation, version control, Jupyter, shells)
OTHER_PROGRAMS = {"pip", "pip3", ".venv/bin/pip", "apt-get", "sudo", "git", "jupyter", ".venv/bin/jupyter",
                  "jupytext", ".venv/bin/jupytext", "cd", "export", "source", "ls", "cat", "curl", "wget",
                  "huggingface-cli", "hf", "nvidia-smi", "docker", "conda", "mamba"}
# python commands that run fully: (module or script, leading arguments), each quick and writing
# nothing outside the redirected folders
RUN_FULLY = [
    ("-m pemscl.data check", "verifies the data files' checksums (seconds)"),
    ("-m pemscl.data stats", "loads one regime and counts (seconds)"),
    ("-m pemscl.notebooks check", "compares the notebook pairs"),
    ("-m pemscl.train --preset smoke", "a toy run: a few documents, one epoch, the top layer (seconds)"),
    ("-m pemscl.evaluate", "scores a small prediction file (SCRATCH_FILES)"),
]
EARLY_EXIT = {"--help", "-h", "--print-config", "--plan", "--status", "--report"}
# the flag that makes a program parse, resolve and stop, used instead of wrapping its parser
PARSE_FLAG = {"pemscl.train": "--print-config"}
PLACEHOLDER = "PLACEHOLDER"


# --------------------------------------------------------------------------- extraction
@dataclass
class Command:
    page: str
    line: int
    text: str                      # as documented
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    placeholder: bool = False

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}: {self.text[:70]}"


def blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """(language, line number of the first line, lines) of every fenced block."""
    out, lang, start, body = [], None, 0, []
    for i, line in enumerate(text.split("\n"), 1):
        m = re.match(r"^\s*```\s*([\w+-]*)", line)
        if m and lang is None:
            lang, start, body = m.group(1).lower(), i + 1, []
        elif line.strip().startswith("```") and lang is not None:
            out.append((lang, start, body))
            lang = None
        elif lang is not None:
            body.append(line)
    return out


def parse_command(page: str, line: int, text: str) -> Command:
    """Split one command line: env assignments, placeholders, optional [..] parts."""
    cmd = Command(page, line, text.strip())
    s = re.sub(r"<[^<>]+>", PLACEHOLDER, text)
    cmd.placeholder = PLACEHOLDER in s
    s = re.sub(r"(?<![\w/])\[([^\[\]]*)\](?!\()", r"\1", s)  # [--only 00,02] -> --only 00,02
    argv = shlex.split(s, comments=True)
    while argv and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", argv[0]):
        k, v = argv.pop(0).split("=", 1)
        cmd.env[k] = v
    cmd.argv = argv
    return cmd


def commands(path: Path) -> list[Command]:
    page = str(path.relative_to(REPO))
    out = []
    for lang, start, body in blocks(path.read_text()):
        if lang not in SHELL_LANGS:
            continue
        pending, first = "", None
        for i, raw in enumerate(body):
            line = raw.rstrip()
            if lang == "console":
                if not pending:
                    if not line.lstrip().startswith("$ "):
                        continue  # output
                    line = line.lstrip()[2:]
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            first = start + i if not pending else first
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            out.append(parse_command(page, first, pending + line))
            pending = ""
    return out


def named_snippets(path: Path) -> dict[str, str]:
    """Python blocks whose first line is `# name.py`: {name.py: the block}."""
    out = {}
    for lang, _, body in blocks(path.read_text()):
        m = re.match(r"^#\s*([\w.-]+\.py)\s*$", body[0]) if lang == "python" and body else None
        if m:
            out[m.group(1)] = "\n".join(body) + "\n"
    return out


ALL = [c for p in PAGES for c in commands(p)]


# --------------------------------------------------------------------------- the rule
def program(argv: list[str]) -> tuple[str, list[str]]:
    """('module' | 'script', its name) and the arguments after it, for a python argv[1:]."""
    if argv[:1] == ["-m"]:
        return "module", argv[1:]
    if argv[:1] == ["-c"]:
        return "code", argv[1:]
    return "script", argv


def classify(cmd: Command) -> tuple[str, str]:
    """(kind, why): kind is RUN, PARSE, MAKE, TORCHRUN, NOT_CHECKED or UNKNOWN."""
    prog = cmd.argv[0] if cmd.argv else ""
    if prog in PYTHONS:
        rest = " ".join(cmd.argv[1:])
        if cmd.placeholder:
            return "PARSE", "names a placeholder"
        for prefix, why in RUN_FULLY:
            if rest == prefix or rest.startswith(prefix + " "):
                return "RUN", why
        hit = EARLY_EXIT.intersection(cmd.argv)
        if hit:
            return "RUN", f"{sorted(hit)[0]} answers and stops"
        return "PARSE", "long, or needs what the docs leave to the reader"
    if prog == "make":
        return "MAKE", "make -n: the target, its variables, the pemscl commands of its recipe"
    if prog in TORCHRUNS:
        return "TORCHRUN", "torchrun's options, then the module's"
    if re.fullmatch(r"(\./)?benchmarks/[\w-]+\.sh", prog):
        return "SCRIPT", "bash -n, its part, the variables it reads"
    if prog in OTHER_PROGRAMS:
        return "NOT_CHECKED", f"{prog} is not this project's program"
    return "UNKNOWN", f"no rule for {prog!r}: add it to tests/test_docs.py"


# --------------------------------------------------------------------------- running
DRIVER = r"""
import argparse, os, runpy, sys
kind, target, *argv = sys.argv[1:]
_parse_args = argparse.ArgumentParser.parse_args
def parse_args(self, args=None, namespace=None):
    ns = _parse_args(self, args, namespace)  # argparse's own errors exit 2 as usual
    if self.add_help:  # the program's parser (a pre-parser has add_help=False)
        print("ARGPARSE-OK", sorted(vars(ns)), flush=True)
        sys.stderr.flush()
        os._exit(0)
    return ns
argparse.ArgumentParser.parse_args = parse_args
sys.argv = [target, *argv]
if kind == "module":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    runpy.run_path(target, run_name="__main__")
print("ARGPARSE-NOT-REACHED: the program returned without parsing its arguments", flush=True)
sys.exit(3)
"""


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, data_dir):
    """The folder commands run in, the data files the pages name, and an environment that keeps
    every write out of the repository."""
    root = tmp_path_factory.mktemp("docs")
    sys.path.insert(0, str(REPO))
    from pemscl import data as D

    gold = D.load_docs("redocred/test_revised.json", data_dir)[:3]
    preds = [{"title": d["title"], "h_idx": f["h"], "t_idx": f["t"], "r": f["r"]} for d in gold for f in d["labels"]]
    files = {"gold.json": gold, "predictions.json": preds,
             "train.json": D.load_docs("redocred/dev_revised.json", data_dir)[:5]}
    for name, obj in files.items():
        (root / name).write_text(json.dumps(obj))
    for page in PAGES:
        for name, text in named_snippets(page).items():
            (root / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "PEMSCL_DATA": str(data_dir), "PEMSCL_RUNS": str(root / "runs"), "PEMSCL_CACHE": str(root / "cache"),
           "PEMSCL_FIGURES": str(root / "figures"), "PEMSCL_README": str(root / "README.md"),
           "PEMSCL_EXECUTED": str(root / "executed"), "OMP_NUM_THREADS": "1"}
    env.setdefault("PEMSCL_RESULTS", str(root / "results"))  # conftest already points it at a temporary folder
    return {"root": root, "env": env}


def python_argv(argv: list[str]) -> list[str]:
    """The documented python argv with this interpreter and the repository's scripts."""
    out = [sys.executable]
    for a in argv[1:]:
        out.append(str(REPO / a) if (a.endswith(".py") and (REPO / a).is_file()) else a)
    return out


def run(argv: list[str], scratch: dict, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=scratch["root"], env={**scratch["env"], **(env or {})}, capture_output=True,
                          text=True, timeout=TIMEOUT)


def parse_check(argv: list[str], scratch: dict, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Parse a python argv with the program's own parser and stop (see the module docstring)."""
    argv = python_argv(argv)
    kind, rest = program(argv[1:])
    if kind == "code":  # python -c CODE: the code must compile and its pemscl imports exist
        check = ("import ast, importlib, sys\ntree = ast.parse(sys.argv[1])\n"
                 "for n in ast.walk(tree):\n"
                 "    if isinstance(n, ast.ImportFrom) and (n.module or '').startswith('pemscl'):\n"
                 "        m = importlib.import_module(n.module)\n"
                 "        [importlib.import_module(n.module + '.' + a.name) if not hasattr(m, a.name) else None "
                 "for a in n.names]\n"
                 "print('ARGPARSE-OK')")
        return run([sys.executable, "-c", check, rest[0]], scratch, env)
    if kind == "module" and rest and rest[0] in PARSE_FLAG:
        return run(argv + [PARSE_FLAG[rest[0]]], scratch, env)
    if kind == "module":
        return run([sys.executable, "-c", DRIVER, "module", rest[0], *rest[1:]], scratch, env)
    return run([sys.executable, "-c", DRIVER, "script", rest[0], *rest[1:]], scratch, env)


def ok(res: subprocess.CompletedProcess, what: str) -> None:
    assert res.returncode == 0, (f"{what}\nexit {res.returncode}\n--- stdout\n{res.stdout[-3000:]}\n"
                                 f"--- stderr\n{res.stderr[-3000:]}")


def makefile_variables() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Z_][A-Z0-9_]*)\s*[?:+]?=", text, re.M)) | set(re.findall(r"\$\(([A-Z_]+)\)", text))


def check_make(cmd: Command, scratch: dict) -> int:
    """make -n; returns how many pemscl commands of the recipe were parse-checked."""
    args = cmd.argv[1:]
    assigns = [a for a in args if "=" in a and not a.startswith("-")]
    unknown = [a.split("=")[0] for a in assigns if a.split("=")[0] not in makefile_variables()]
    assert not unknown, f"{cmd.id}: not variables of the Makefile: {unknown}"
    res = subprocess.run(["make", "-n", "-C", str(REPO), *args], capture_output=True, text=True, timeout=60)
    ok(res, f"{cmd.id}: make -n")
    recipe = [shlex.split(line) for line in res.stdout.splitlines() if re.search(r"-m pemscl\.", line)]
    for argv in recipe:
        ok(parse_check(argv, scratch), f"{cmd.id}: the recipe's {' '.join(argv)}")
    return len(recipe)


def check_script(cmd: Command) -> None:
    """bash -n; the part (first argument) one of the script's case labels; every VAR= it is given read by it."""
    path = REPO / cmd.argv[0]
    assert path.exists(), f"{cmd.id}: no {cmd.argv[0]}"
    ok(subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30), f"{cmd.id}: bash -n")
    text = path.read_text()
    parts = {p for labels in re.findall(r"^\s*([\w|-]+)\)\s*$", text, re.M) for p in labels.split("|")}
    assert len(cmd.argv) > 1 and cmd.argv[1] in parts, f"{cmd.id}: not one of the script's parts {sorted(parts)}"
    unread = [k for k in cmd.env if not re.search(r"\$\{?" + re.escape(k) + r"\b", text)]
    assert not unread, f"{cmd.id}: the script never reads {unread}"


def check(cmd: Command, scratch: dict) -> str:
    kind, why = classify(cmd)
    if kind == "UNKNOWN":
        pytest.fail(f"{cmd.id}: {why}")
    if kind == "NOT_CHECKED":
        return kind
    if kind == "RUN":
        ok(run(python_argv(cmd.argv), scratch, cmd.env), f"{cmd.id} ({why})")
    elif kind == "PARSE":
        res = parse_check(cmd.argv, scratch, cmd.env)
        ok(res, f"{cmd.id}: its arguments do not parse")
    elif kind == "MAKE":
        check_make(cmd, scratch)
    elif kind == "SCRIPT":
        check_script(cmd)
    elif kind == "TORCHRUN":
        argv = cmd.argv[1:]
        assert "-m" in argv or "--module" in argv, f"{cmd.id}: torchrun without -m"
        at = argv.index("-m") if "-m" in argv else argv.index("--module")
        own = [a for a in argv[:at]]
        ok(run([sys.executable, "-c", DRIVER, "module", "torch.distributed.run", *own, "-m", *argv[at + 1:]], scratch),
           f"{cmd.id}: torchrun's options")
        ok(parse_check(["python", "-m", *argv[at + 1:]], scratch, cmd.env), f"{cmd.id}: the module's arguments")
    return kind


# --------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("cmd", ALL, ids=[c.id for c in ALL])
def test_documented_command(cmd, scratch):
    check(cmd, scratch)


def test_the_pages_document_commands_and_each_has_a_rule():
    assert len(ALL) >= 20
    assert {"make", *PYTHONS}.intersection(c.argv[0] for c in ALL)
    kinds = {c.id: classify(c)[0] for c in ALL}
    assert "UNKNOWN" not in kinds.values(), [k for k, v in kinds.items() if v == "UNKNOWN"]
    # the README's two set-up commands stay exactly as they are
    readme = [c.text for c in ALL if c.page == "README.md"]
    assert readme[:2] == ["make workbench   # creates .venv, installs pemscl, checks the data, runs all notebooks "
                          "(profile quick, under an hour)",
                          "make test        # same .venv, runs the test suite (includes every notebook under the "
                          "smoke profile)"]


def test_the_rule_on_examples():
    c = lambda s: classify(parse_command("x.md", 1, s))[0]  # noqa: E731
    assert c(".venv/bin/python -m pemscl.data check") == "RUN"
    assert c("python -m pemscl.train --preset smoke --loss atl") == "RUN"
    assert c("python -m pemscl.train --preset cpu --loss atl --print-config") == "RUN"
    assert c("python -m pemscl.train --preset cpu --loss atl") == "PARSE"
    assert c("python -m pemscl.predict runs/<run folder> docs.json --help") == "PARSE"  # a placeholder
    assert c("OMP_NUM_THREADS=1 .venv/bin/python -m pemscl.experiments --profile cpu --workers 2") == "PARSE"
    assert c("python -m pemscl.export runs/x out --push-to-hub me/model") == "PARSE"
    assert c(".venv/bin/torchrun --standalone --nproc_per_node=N -m pemscl.train") == "TORCHRUN"
    assert c("make workbench PROFILE=cpu") == "MAKE"
    assert c('SEEDS="69 70" benchmarks/gpu_check.sh leaderboard') == "SCRIPT"
    assert c("pip install playwright") == "NOT_CHECKED"
    assert c("frobnicate --all") == "UNKNOWN"
    cmd = parse_command("x.md", 1, "OMP_NUM_THREADS=1 python benchmarks/bench_step.py [--train-layers 2]  # s/doc")
    assert cmd.env == {"OMP_NUM_THREADS": "1"} and cmd.argv == ["python", "benchmarks/bench_step.py",
                                                                 "--train-layers", "2"]


@pytest.mark.parametrize("bad", [
    "python -m pemscl.data check --no-such-flag",
    "python -m pemscl.data stats no-such-regime",
    "python -m pemscl.experiments --profile cpu --no-such-flag 2",
    "python -m pemscl.train --preset cpu --loss no-such-loss",
    "python -m pemscl.evaluate only-one.json",
    "python benchmarks/bench_step.py --no-such-flag",
    "make no-such-target",
    "make workbench NO_SUCH_VARIABLE=1",
    "benchmarks/gpu_check.sh no-such-part",
    "NO_SUCH_VAR=1 benchmarks/gpu_check.sh leaderboard",
    "benchmarks/no_such_script.sh tests",
])
def test_a_documented_command_that_does_not_parse_fails(bad, scratch):
    with pytest.raises(AssertionError):
        check(parse_command("x.md", 1, bad), scratch)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#+\s+(.+?)\s*$", re.sub(r"```.*?```", "", page.read_text(), flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_relative_links_resolve():
    """Every relative link of README.md and docs/*.md names a file there, and a #fragment one of
    that page's headings."""
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, frag = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            if not path.exists() or (frag and path.suffix == ".md" and frag not in _anchors(path)):
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, broken


def _table_widths(text: str) -> list[tuple[int, list[int]]]:
    """Each markdown table of `text` (outside code blocks): its first line's number and the cell
    count of every line (code spans and escaped pipes do not split cells)."""
    tables, run = [], []
    lines = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S).split("\n")
    for i, line in enumerate(lines + [""], 1):
        if line.strip().startswith("|"):
            cells = re.sub(r"`[^`]*`", "", line.strip()).replace("\\|", "")
            run.append((i, cells.strip("|").count("|") + 1))
        elif run:
            tables.append((run[0][0], [n for _, n in run]))
            run = []
    return tables


def test_markdown_tables_have_as_many_cells_as_their_header():
    """A row with a cell too many or too few renders as a broken table (GitHub drops or shifts
    cells): every table of the pages and of the generated results has one width."""
    bad = []
    for page in [*PAGES, REPO / "results" / "results.md"]:
        for line, widths in _table_widths(page.read_text()):
            if len(set(widths)) > 1:
                bad.append(f"{page.relative_to(REPO)}:{line}: cells per line {widths}")
    assert not bad, bad


def test_table_width_rule_by_hand():
    text = "x\n| a | `b|c` | d \\| e |\n|---|---|---|\n| 1 | 2 | 3 |\n\n```\n| not | a table\n```\n| p | q |\n| r |\n"
    assert _table_widths(text) == [(2, [3, 3, 3]), (9, [2, 1])]


def test_anchor_rule_by_hand(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Fairness notes\n\n## Results (profile `cpu`)\n```bash\n# not a heading\n```\n")
    assert _anchors(page) == {"fairness-notes", "results-profile-cpu"}
