"""A dry run of a GPU profile on a CPU: every config trains for two optimiser steps and is scored
once on a few documents, with tiny random-init models of the paper's encoder classes, on stand-in
files for the full data sets; then the notebooks run on those runs.

    python -m pemscl.pipeline --profile paper --dry-run      # or: make workbench PROFILE=paper DRY_RUN=1
    python -m pemscl.dryrun --profile paper                  # the training part alone

What it checks before hours of GPU time are spent: every config of the profile builds, its data
regime loads from the files the real run will read (redocred/train_revised.json, docred/dev.json, ...),
its encoder class runs the ATLOP code path (RoBERTa, DeBERTa v1, DeBERTa-v2 windows and attention),
its loss trains and evaluates, and the notebooks turn the runs into tables, claims and figures.

The mechanism is one environment variable, PEMSCL_DRY_RUN=<folder> (`tiny.dry_run_folder`), read
by `experiments.get_profile` (which then returns `experiments.shrink(profile)`) and by
`model.resolve_encoder` (which then maps every encoder name to a tiny folder of its family,
`tiny.tiny_encoder`). This module prepares the folder and trains; `pipeline.dry_run` adds the
notebooks. Everything a
dry run reads or writes lives in that folder: PEMSCL_DATA, PEMSCL_RUNS, PEMSCL_RESULTS,
PEMSCL_FIGURES, PEMSCL_README and PEMSCL_CACHE all point into it (`DryRun.env`), so the
repository's runs/, results/, figures/ and README.md are never touched. Every config carries
`dry_run=True`, which enters its hash: a dry run can never be mistaken for a real run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from . import data as D
from . import experiments as X
from . import runner as R
from . import tiny
from .tiny import DRY_RUN_ENV as ENV
from .utils import REPO, environment

EVAL_DOCS = X.DRY_EVAL_DOCS  # dev and test documents per split (and per stand-in dev / test file)
TOKENIZER_DOCS = 30  # Re-DocRED dev documents whose text trains the tiny tokenizers
README_COPY = "README.md"

# The files `data.load_regime` reads for the full regimes (redocred, docred, oog, ogg) and the
# mini regimes the notebooks also show; meta/ is copied as it is.
META_FILES = ("meta/rel2id.json", "meta/rel_info.json")


# --------------------------------------------------------------------------- the profile
def extra_configs(profile: str = "paper") -> list:
    """Configs a dry run adds to the profile's: the DocRED PEMSCL row with the released code's
    encoder (preset paper-docred-released, DeBERTa-v2; FAITHFULNESS #10), so the v2 classes are
    exercised too. Empty for a profile without DocRED columns."""
    p = X.get_profile(profile)
    if not p.docred_regime:
        return []
    preset = "paper-docred-released"
    return [X.make_config(p, "PEMSCL (DocRED, released encoder)", X.make_loss(p, "pemscl", preset=preset),
                          regime=p.docred_regime, seed=p.seeds[0], preset=preset, eval_test=False)]


def dry_configs(profile: str = "paper") -> list:
    """Every config of the (shrunk) profile, then the extra ones, duplicates removed. Needs an
    active dry run: outside one these would be the real configs."""
    if tiny.dry_run_folder() is None:
        raise RuntimeError(f"dry_configs needs an active dry run (${ENV}); use `with activated(prepare()):`")
    out = X.all_configs(profile)
    keys = {c.key() for c in out}
    return out + [c for c in extra_configs(profile) if c.key() not in keys]


# --------------------------------------------------------------------------- the folder
@dataclass
class DryRun:
    """A dry run's folder and where each kind of output goes inside it."""

    root: Path
    source: Path  # the real data folder the stand-in documents come from

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def readme(self) -> Path:
        return self.root / README_COPY

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def executed(self) -> Path:
        return self.root / "executed"

    @property
    def encoders(self) -> Path:
        return tiny.encoders_dir(self.root)

    def env(self) -> dict[str, str]:
        return {ENV: str(self.root), "PEMSCL_DATA": str(self.data), "PEMSCL_RUNS": str(self.runs),
                "PEMSCL_RESULTS": str(self.results), "PEMSCL_FIGURES": str(self.figures),
                "PEMSCL_README": str(self.readme), "PEMSCL_CACHE": str(self.cache)}

    def where(self, executed: str | Path | None = None) -> str:
        rows = [("stand-in data", self.data), ("tiny encoders", self.encoders), ("runs", self.runs),
                ("results", self.results), ("figures", self.figures), ("README + docs", self.readme),
                ("executed notebooks", executed or self.executed), ("caches", self.cache)]
        return "dry run outputs (nothing in the repository was written):\n" + "\n".join(
            f"  {name:<19}{path}" for name, path in rows)


def stand_in_docs(source: str | Path, n_train: int, n_eval: int = EVAL_DOCS) -> dict[str, list[dict]]:
    """{data file: a few real documents} for every file the full and mini regimes read.

    The full Re-DocRED / DocRED files are not in the shared data, so each is stood in for by real
    documents of the same kind: Re-DocRED train by Re-DocRED dev documents (gold labels), DocRED
    train by the DocRED train subset (original labels). DocRED dev and Re-DocRED dev hold the same
    documents with identical entities (original vs gold labels), so the OOG regime pairs them as it
    pairs the real files; Re-DocRED train keeps apart from them.
    """
    load = lambda rel: D.load_docs(rel, source)  # noqa: E731 (checksum-verified in the source folder)
    gold_dev, orig_dev = load("redocred/dev_revised.json"), load("docred/dev.subset.json")
    all_pairs = D.paired_documents(orig_dev, gold_dev)
    pairs = [pair for _, pair in _fewest_entities([gold_dev[j] for _, j in all_pairs], all_pairs, n_eval)]
    paired = {j for _, j in pairs}
    dev_gold, dev_orig = [gold_dev[j] for _, j in pairs], [orig_dev[i] for i, _ in pairs]
    gold_train = [d for j, d in enumerate(gold_dev) if j not in paired][:n_train]
    orig_train = load("docred/train_annotated.subset.json")[:n_train]
    few = lambda docs: [d for d, _ in _fewest_entities(docs, docs, n_eval)]  # noqa: E731
    return {
        "redocred/train_revised.json": gold_train,
        "redocred/dev_revised.json": dev_gold,
        "redocred/test_revised.json": few(load("redocred/test_revised.json")),
        "docred/train_annotated.json": orig_train,
        "docred/dev.json": dev_orig,
        "docred/test.json": few(load("docred/test.json")),
        "docred/train_annotated.subset.json": orig_train,
        "docred/dev.subset.json": dev_orig,
    }


def _fewest_entities(docs: Sequence[dict], items: Sequence, n: int) -> list[tuple[dict, object]]:
    """(doc, item) for the n documents with the fewest entities, in file order. Scoring is
    the slow part of a dry run: an untrained model predicts most of its 96 relations for every
    entity pair, so evaluation documents are picked small (training documents are not)."""
    pick = sorted(sorted(range(len(docs)), key=lambda i: (len(docs[i]["vertexSet"]), i))[:n])
    return [(docs[i], items[i]) for i in pick]


def write_data(dest: str | Path, source: str | Path, n_train: int, n_eval: int = EVAL_DOCS) -> dict[str, str]:
    """Write the stand-in files and meta/ into dest with a SHA256SUMS listing them, so checksum
    verification runs (and passes) exactly as on the real folder. Returns {file: sha256}."""
    dest, source = Path(dest), Path(source)
    files = {rel: json.dumps(docs).encode() for rel, docs in stand_in_docs(source, n_train, n_eval).items()}
    files.update({rel: D.data_file(rel, source).read_bytes() for rel in META_FILES})
    sums = {}
    for rel, blob in files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
        sums[rel] = hashlib.sha256(blob).hexdigest()
    (dest / D.SUMS_FILE).write_text("".join(f"{h}  ./{rel}\n" for rel, h in sorted(sums.items())))
    return sums


def prepare(root: str | Path | None = None, profile: str = "paper", source: str | Path | None = None) -> DryRun:
    """A dry-run folder (a new temporary one by default): stand-in data sized for the profile,
    a copy of the README, and the four tiny encoders (tokenizers trained on TOKENIZER_DOCS real
    Re-DocRED dev documents of `source`, default the data folder in use)."""

    root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="pemscl-dryrun-"))
    root.mkdir(parents=True, exist_ok=True)
    dr = DryRun(root=root.resolve(), source=Path(source) if source is not None else D.data_dir())
    p = X.PROFILES[profile] if isinstance(profile, str) else profile
    write_data(dr.data, dr.source, n_train=X.dry_train_docs(p))
    shutil.copyfile(REPO / "README.md", dr.readme)
    docs = D.load_docs("redocred/dev_revised.json", dr.source)[:TOKENIZER_DOCS]
    for family in tiny.FAMILIES:
        tiny.make_tiny_encoder(family, dr.encoders / family, docs=docs)
    return dr


@contextlib.contextmanager
def activated(dr: DryRun) -> Iterator[DryRun]:
    """Set the dry run's environment (subprocesses such as notebook kernels inherit it); restore
    the previous values on exit."""
    with environment(dr.env()):
        yield dr


# --------------------------------------------------------------------------- running
def train(profile: str = "paper", progress: bool = True) -> list:
    """Train every dry config (inside `activated`): one summary line per run."""
    cfgs = dry_configs(profile)
    if progress:
        print(f"dry run of profile {profile}: {len(cfgs)} configs", flush=True)
    return R.run_all(cfgs, progress=progress)


FULL_REGIMES = ("redocred", "docred", "oog", "ogg")


def check_profile(profile: str) -> None:
    """Only profiles on the full regimes have stand-in files: the mini regimes split Re-DocRED dev
    400 / 100, which a few stand-in documents cannot fill (and those profiles run on the shared
    data as they are: --profile smoke is their quick check)."""
    p = X.PROFILES[profile]
    regimes = [p.gold_regime, p.oog_regime, p.ogg_regime] + ([p.docred_regime] if p.docred_regime else [])
    if any(r not in FULL_REGIMES for r in regimes):
        raise ValueError(f"a dry run stands in for the full data sets of the paper profile; profile {profile!r} "
                         f"trains on {', '.join(sorted(set(regimes)))}, the shared data, and needs no stand-ins: "
                         "run it as it is (--profile smoke is the quick check)")


def train_only(profile: str = "paper", root: str | Path | None = None) -> dict:
    """prepare, then train every config in the dry run's folder (the notebooks are
    `pipeline.dry_run`'s part, on top of this). Returns {"dry_run": DryRun, "runs": [...]}."""
    check_profile(profile)
    dr = prepare(root, profile)
    print(f"dry run folder: {dr.root} (stand-in documents from {dr.source})", flush=True)
    with activated(dr):
        runs = train(profile)
    return {"dry_run": dr, "runs": runs}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pemscl.dryrun", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--root", default=None, help="the dry run's folder (default: a new temporary folder)")
    ap.add_argument("--train-only", action="store_true",
                    help="what this command does anyway (kept for scripts): train every config; "
                         "`python -m pemscl.pipeline --dry-run` also runs the notebooks")
    a = ap.parse_args(argv)
    try:
        check_profile(a.profile)
    except ValueError as e:
        print(f"\n✗ {e}", file=sys.stderr)
        return 2
    print(train_only(a.profile, root=a.root)["dry_run"].where(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
