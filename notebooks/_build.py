"""Writes notebooks 00-04 and 07 (without outputs) from the cell lists below.

    python notebooks/_build.py            # rewrite them; then commit the .ipynb files

Notebooks stay thin: a parameters cell, calls into pemscl, tables and figures, a line or
two on what to look at. Logic belongs in the package, where it is tested. 05 and 06 are
written by hand and are not touched here.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

PARAMS = 'profile = "cpu"  # smoke | cpu | paper (the pipeline sets it)'
SETUP = """\
import os
from pemscl import data as D, evaluate as E, experiments as X, figures as F, results as R, train as T
from pemscl.pipeline import write_summary
FIG = F.figures_dir()
saved = {}  # figure name -> files written, for the summary at the end"""


def save(name: str) -> str:
    return f'saved["{name}"] = F.save_figure(fig, "{name}", FIG)\nfig'


NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}

NOTEBOOKS["00_data"] = [
    ("md", "# 00 · Data\nThe real DocRE files this workbench runs on: where they come from, whether they are intact, "
           "how big they are, how long-tailed the relations are, and how many true facts the original DocRED "
           "labels miss."),
    ("params", PARAMS),
    ("code", SETUP),
    ("md", "## Files and checksums\nEvery file listed in `SHA256SUMS` must read `ok`; the full DocRED / Re-DocRED "
           "files are optional (`absent`) and only the `paper` profile needs them."),
    ("code", """\
rows, all_ok = D.check()
print("data directory:", D.data_dir(), "| all listed files ok:", all_ok)
R.show_table(rows, [("file", "file"), ("bytes", "bytes"), ("status", "status")])"""),
    ("md", "## Per-file statistics (compare paper Table 1)\nPaper Table 1 counts 3,053 train and 500/1,000 dev and "
           "test documents; here are the files at hand. `na_pairs` dominate: most entity pairs hold no relation."),
    ("code", """\
FILES = {"docred/train_annotated.subset.json": "original", "docred/dev.subset.json": "original",
         "redocred/dev_revised.json": "gold", "redocred/test_revised.json": "gold",
         "redocred/train_revised.json": "gold", "docred/train_annotated.json": "original", "docred/dev.json": "original"}
stats = []
for rel, source in FILES.items():
    try:
        stats.append({"file": rel, "labels": source, **D.split_stats(D.load_docs(rel))})
    except D.DataNotFoundError:
        pass  # optional full files
cols = [(k, k) for k in stats[0]]
R.show_table(stats, cols)"""),
    ("md", "## The long tail\nRelations ranked by how many training entity pairs carry them (redocred-mini train). "
           "The dashed lines cut head (top 10) / mid / tail (bottom 20), the groups of paper Table 3."),
    ("code", """\
train_docs = D.load_regime("redocred-mini").train
groups = E.relation_groups(train_docs, relations=D.load_rel2id())
counts = {r: 0 for rels in groups.values() for r in rels}  # unseen relations count 0 (not drawn on a log axis)
counts.update(D.relation_counts(train_docs))
total = sum(counts.values())
share = {g: sum(counts[r] for r in rels) / total for g, rels in groups.items()}
print("share of training facts: " + ", ".join(f"{g} {100 * s:.0f}%" for g, s in share.items()),
      "(paper, full Re-DocRED train: head 64%, tail 2%)")
fig = F.long_tail(counts, groups, names=D.relation_names())
""" + save("00_relation_long_tail")),
    ("md", "## Original vs gold labels on the same documents\nDocRED dev documents that Re-DocRED re-annotated, "
           "paired by title and identical entities. `missing_from_original` is the share of true facts labelled "
           "\"no relation\" in DocRED: the false negatives that OOG/OGG train on."),
    ("code", """\
original = D.load_docs("docred/dev.subset.json")
gold = D.load_docs("redocred/dev_revised.json") + D.load_docs("redocred/test_revised.json")
comparison = D.label_comparison(original, gold)
R.show_table([comparison], [(k, k) for k in comparison])"""),
    ("code", """\
per_rel = D.label_comparison_per_relation(original, gold, names=D.relation_names())
fig = F.label_comparison(per_rel, x="name", top=30)
""" + save("00_original_vs_gold")),
    ("code", """\
write_summary("00_data", {"all_files_ok": all_ok, "files": stats, "groups": {g: len(v) for g, v in groups.items()},
                          "share": share, "label_comparison": comparison, "figures": saved}, profile)"""),
]

NOTEBOOKS["01_regimes"] = [
    ("md", "# 01 · Data regimes\nWhat each experiment trains, selects and tests on. `label_source` says whether a "
           "split carries original (DocRED) or gold (Re-DocRED) labels; the mini regimes fit the shared data."),
    ("params", PARAMS),
    ("code", SETUP),
    ("md", "## Regimes at hand\nFull regimes appear only when their files are present (see 00)."),
    ("code", """\
regimes, rows = {}, []
for name in D.REGIMES:
    try:
        regimes[name] = D.load_regime(name)
    except D.DataNotFoundError as e:
        print(f"{name}: not available ({str(e).split('.')[0]})")
        continue
    rows += D.regime_stats(regimes[name])
    print(f"{name}: {regimes[name].description}")
R.show_table(rows, [(k, k) for k in rows[0]])"""),
    ("md", "## Facts per document\nOriginal-label splits carry far fewer facts per document than gold ones: the "
           "same documents, fewer labels."),
    ("code", """\
for r in rows:
    r["facts_per_doc"] = r["positive_facts"] / max(1, r["docs"])
    r["name"] = f'{r["regime"]}/{r["split"]} ({r["label_source"]})'
fig = F.grouped_bars(rows, x="name", metrics=["facts_per_doc"], error=None, scale=1.0, y_title="facts per document",
                     title="Labelled facts per document, by regime and split")
""" + save("01_facts_per_doc")),
    ("md", "## Simulated noise\n`D.noisy` drops a fraction of the training facts to NA (seeded), a controlled "
           "stand-in for DocRED's false negatives; the dotted line is the real rate measured in 00."),
    ("code", """\
base = regimes["redocred-mini"]
real = D.label_comparison(D.load_docs("docred/dev.subset.json"),
                          D.load_docs("redocred/dev_revised.json") + D.load_docs("redocred/test_revised.json"))
noise_rows = []
for drop in (0.0, 0.1, 0.3, 0.5, 0.63):
    st = D.split_stats(D.noisy(base, drop=drop, seed=0).train)
    noise_rows.append({"drop": drop, "positive_facts": st["positive_facts"], "na_pairs": st["na_pairs"],
                       "kept": st["positive_facts"] / D.split_stats(base.train)["positive_facts"]})
R.show_table(noise_rows, [(k, k) for k in noise_rows[0]])"""),
    ("code", """\
fig = F.grouped_bars([{"label": f"drop {r['drop']:g}", "kept": r["kept"]} for r in noise_rows], metrics=["kept"],
                     error=None, y_title="training facts kept (%)", title="Noise simulator on redocred-mini train",
                     reference={"DocRED original labels": 100 * (1 - real["missing_from_original"])})
""" + save("01_noise_simulator")),
    ("code", """\
write_summary("01_regimes", {"regimes": sorted(regimes), "stats": rows, "noise": noise_rows, "figures": saved},
              profile)"""),
]

NOTEBOOKS["02_train"] = [
    ("md", "# 02 · Train one model\nThe profile's headline PEMSCL model (cpu: MiniLM, full fine-tuning on "
           "redocred-mini; paper: RoBERTa-large on Re-DocRED, use a GPU). A finished run folder is reused."),
    ("params", PARAMS),
    ("code", SETUP + "\nfrom pemscl.utils import resolve_device, resolve_precision"),
    ("code", """\
cfg = next(c for c in X.headline(profile) if c.label == "PEMSCL")
device = resolve_device(cfg.device)
amp = resolve_precision(cfg.precision, device)
print("device:", device, "| precision:", str(amp).replace("torch.", "") if amp else "fp32")
if device.type == "cuda" and profile != "paper":
    print("a GPU is present: profile='paper' trains the paper's configuration")
print(cfg)"""),
    ("code", "run = X.run_all([cfg])[0]\nprint(run.dir)"),
    ("md", "## Learning curves\nLoss should fall every epoch; the dev F1 peak is the epoch kept (`best_epoch`)."),
    ("code", """\
fig = F.learning_curves({"PEMSCL": run.history}, metrics=("dev_f1",))
""" + save("02_learning_curves")),
    ("md", "## Scores\nDev picks the epoch, test is reported. Head/mid/tail are paper Table 3's relation groups; "
           "intra/inter split facts by whether head and tail share a sentence."),
    ("code", """\
KEYS = ["ign_f1", "f1", "precision", "recall", "head_f1", "mid_f1", "tail_f1", "intra_f1", "inter_f1"]
score_rows = [{"split": s, **{k: R.pct(run.scores[s].get(k)) for k in KEYS}} for s in ("dev", "test")
              if s in run.scores]
print(f"best epoch {run.scores['best_epoch']}, {run.scores['seconds']:.0f}s on {run.scores['device']}, "
      f"peak RSS {run.scores['peak_rss_mb']:.0f} MB")
R.show_table(score_rows, [("split", "split")] + [(k, k) for k in KEYS])"""),
    ("code", """\
write_summary("02_train", {"run": str(run.dir), "scores": run.scores, "epochs": len(run.history),
                           "figures": saved}, profile)"""),
]

NOTEBOOKS["03_ablations"] = [
    ("md", "# 03 · Losses and ablations\nPaper Table 2 (which loss) and Table 3 (what EM and SCL add) at this "
           "profile's scale, then the released code's options. Rows average over seeds: read differences against "
           "the ± spread."),
    ("params", PARAMS),
    ("code", SETUP),
    ("md", "## Losses on gold labels (Table 2)\nATL is ATLOP's adaptive threshold, BCE a tuned global threshold, "
           "NCRL and PEMSCL the pairwise alternatives."),
    ("code", "runs = X.run_all(X.headline(profile))  # every run this notebook shows, for build_tables"),
    ("md", "## Ablation over seeds (Table 3)\nThe paper's claim: each of EM and SCL helps, most on tail relations."),
    ("code", "runs += X.run_all(X.ablation(profile))"),
    ("code", """\
tables = R.build_tables(runs, profile)
R.show_table(tables["table2"], R.TABLE2_COLS)"""),
    ("code", "R.show_table(tables[\"table3\"], R.TABLE3_COLS)"),
    ("code", """\
fig = F.grouped_bars(tables["table3"], metrics=["dev_f1", "dev_head_f1", "dev_mid_f1", "dev_tail_f1"],
                     names={"dev_f1": "all", "dev_head_f1": "head", "dev_mid_f1": "mid", "dev_tail_f1": "tail"},
                     title="Ablation: dev F1 by relation group (mean ± std over seeds)")
""" + save("03_ablation")),
    ("code", """\
fig = F.grouped_bars(tables["table2"], metrics=["test_ign_f1", "test_f1"], names={"test_ign_f1": "Ign F1", "test_f1": "F1"},
                     title="Losses on gold labels: test")
""" + save("03_headline")),
    ("md", "## Paper vs released code\nEach row changes one behaviour to what the authors' code does "
           "(FAITHFULNESS.md); Δ is against the paper default of the same setting."),
    ("code", """\
runs += X.run_all(X.faithfulness(profile))
tables = R.build_tables(runs, profile)
R.show_table(tables["faithfulness"], R.FAITH_COLS)"""),
    ("md", "## Fast path vs full fine-tuning\nThe same PEMSCL config trained end to end and with only the top "
           "layers trained on cached lower layers: how much F1 the fast path used by the ablations, seeds and "
           "sweeps gives up, and what it saves."),
    ("code", """\
runs += X.run_all(X.layers(profile))
tables = R.build_tables(runs, profile)
R.show_table(tables["layers"], R.LAYER_COLS)"""),
    ("md", "## A small search on dev\nWhere the ablation disagrees with the paper, scale and hyperparameters "
           "come before conclusions: SCL's weight λ and temperature τ, and ATL on the same fast path as the "
           "ablation rows (one seed each; read against the seed spread of Table 3)."),
    ("code", """\
runs += X.run_all(X.search(profile))
tables = R.build_tables(runs, profile)
R.show_table(tables["search"], R.SEARCH_COLS)"""),
    ("code", """\
write_summary("03_ablations", {"table2": tables["table2"], "table3": tables["table3"],
                               "faithfulness": tables["faithfulness"], "layers": tables["layers"],
                               "search": tables["search"], "figures": saved}, profile)"""),
]

NOTEBOOKS["04_noisy_labels"] = [
    ("md", "# 04 · Training on original labels\nOOG: train and select on DocRED's original labels, test on gold. "
           "OGG: same training, select on gold dev. Paper Table 4 and Figure 2."),
    ("params", PARAMS),
    ("code", SETUP),
    ("code", "noisy_runs = X.run_all(X.noisy(profile))\nsweep_runs = X.run_all(X.ratio_sweep(profile))"),
    ("md", "## Table 4\nCompare original dev with gold dev/test: the gap is what the missing labels cost; PEMSCL+NS "
           "(negative sampling) is the paper's fix."),
    ("code", """\
tables = R.build_tables(noisy_runs + sweep_runs, profile)
R.show_table(tables["table4"], R.TABLE4_COLS)"""),
    ("code", """\
fig = F.noisy_bars(tables["table4"], metric="test_f1", error="test_f1_std")
""" + save("04_noisy_regimes")),
    ("md", "## Figure 2: the sampling ratio\nDashed: original dev F1, the only signal without gold labels. Solid: "
           "gold test F1. If their peaks sit at different ratios, original dev misleads the choice."),
    ("code", """\
R.show_table(tables["figure2"], R.FIGURE2_COLS)"""),
    ("code", """\
fig = F.ratio_sweep(tables["figure2"], model="model", x="ratio", dev="dev_f1", test="test_f1")
""" + save("04_ratio_sweep")),
    ("md", "## Per epoch: original dev vs gold\nOne PEMSCL+NS run scored on all three sets after every epoch."),
    ("code", """\
ns = next(r for r in noisy_runs if r.config.label == "PEMSCL+NS")
fig = F.learning_curves({"PEMSCL+NS": ns.history}, metrics=("dev_f1", "dev_gold_f1", "test_f1"),
                        title="PEMSCL+NS on OOG: original dev (solid), gold dev (dash), gold test (dot)")
""" + save("04_dev_vs_gold_curves")),
    ("code", """\
write_summary("04_noisy_labels", {"table4": tables["table4"], "figure2": tables["figure2"], "figures": saved},
              profile)"""),
]

NOTEBOOKS["07_results"] = [
    ("md", "# 07 · Results\nEvery run of this profile's experiments, gathered into the paper's tables, a verdict per "
           "claim, `results/results.{json,md}` and the README's results section. Nothing is trained here."),
    ("params", PARAMS),
    ("code", SETUP),
    ("code", """\
runs = T.list_runs()
tables = R.build_tables(runs, profile)
verdicts = R.claims(tables)
missing = {k: v for k, v in tables["missing"].items() if v}
print(f"{len(runs)} run folders under {T.runs_dir()}; missing for profile {profile}: {missing or 'none'}")"""),
    ("md", "## Claims\n*holds* / *does not hold* need a difference beyond 2 standard errors of the seed spread; "
           "otherwise *inconclusive*."),
    ("code", "R.show_table(verdicts, R.CLAIM_COLS)"),
    ("code", "R.show_table(tables[\"table2\"], R.TABLE2_COLS)"),
    ("code", "R.show_table(tables[\"table3\"], R.TABLE3_COLS)"),
    ("code", "R.show_table(tables[\"table4\"], R.TABLE4_COLS)"),
    ("md", "## This workbench vs the paper\nAbsolute numbers differ by design (encoder, data size); the ordering "
           "of the bars is what should carry over."),
    ("code", """\
pairs = [{"label": f"{t}: {r['label']}" + (f" ({r['regime']})" if "regime" in r else ""),
          "ours": None if r.get(k) is None else 100 * r[k], "paper": (r.get("paper") or {}).get(k)}
         for t, k in (("Table 2", "test_f1"), ("Table 3", "dev_f1"), ("Table 4", "test_f1"))
         for r in tables[{"Table 2": "table2", "Table 3": "table3", "Table 4": "table4"}[t]]]
fig = F.paired_bars(pairs, title="F1: this workbench vs the paper (RoBERTa-large, full data)")
""" + save("07_paper_vs_ours")),
    ("md", "## Cost\nSeconds and peak memory per run: what a rerun of this profile costs."),
    ("code", """\
cost = tables["cost"]
print(f"{cost['n_runs']} runs, {cost['total_seconds'] / 60:.1f} min in total, peak RSS {cost['peak_rss_mb'] or 0:.0f} MB")
fig = F.cost_bars([{**r, "label": f"{r['label']} s{r['seed']}"} for r in cost["runs"]])
""" + save("07_cost")),
    ("md", "## Written files\nThe README is updated only for the cpu and paper profiles (or when PEMSCL_README "
           "points elsewhere), so smoke numbers never land in it."),
    ("code", """\
paths = R.write_results(tables, verdicts, runs=runs)  # + runs.jsonl: every run's config, scores, curve
md = R.markdown(tables, verdicts, level=3)
readme = None
if profile in ("cpu", "paper") or os.environ.get("PEMSCL_README"):
    readme = R.update_readme(md)
print(paths, readme)"""),
    ("code", """\
write_summary("07_results", {"results": {k: str(v) for k, v in paths.items()}, "readme": str(readme),
                             "verdicts": {c["id"]: c["verdict"] for c in verdicts}, "figures": saved}, profile)"""),
]


def build(name: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        if kind == "md":
            nb.cells.append(new_markdown_cell(src))
        elif kind == "params":
            nb.cells.append(new_code_cell(src, metadata={"tags": ["parameters"]}))
        else:
            nb.cells.append(new_code_cell(src))
    for i, c in enumerate(nb.cells):
        c["id"] = f"{name[:2]}-{i:02d}"  # stable ids: rebuilding does not churn the diff
    return nb


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        path = HERE / f"{name}.ipynb"
        nbformat.write(build(name, cells), path)
        print("wrote", path)


if __name__ == "__main__":
    main()
