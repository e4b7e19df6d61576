# %% [markdown]
# # 07 · Results
# Every run of this profile's experiments (local run folders and the record `results/runs.jsonl`), gathered
# into the paper's tables, a verdict per claim, `results/results.{json,md}`, `docs/results.md` and the README's
# results in short.
# Nothing is trained here.

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper (the pipeline sets it)

# %%
import os
from pemscl import claims, faithfulness, figures, leaderboard, published, report, runs as run_record
from pemscl.pipeline import write_summary
from pemscl.runs import gather_runs
from pemscl.tables import build_tables
from pemscl.utils import atomic_write_json, results_dir, runs_dir
FIG = figures.figures_dir()
saved = {}  # figure name -> files written, for the summary at the end

# %%
runs = gather_runs()  # local folders, then recorded runs without a folder here
tables = build_tables(runs, profile)
verdicts = claims.judge(runs, profile)
missing = {k: v for k, v in tables["missing"].items() if v}
print(f"{len(runs)} runs (folders under {runs_dir()} and {run_record.record_path()}); "
      f"missing for profile {profile}: {missing or 'none'}")
print(report.record_line(run_record.record_summary()))

# %% [markdown]
# ## Claims
# Each claim is A − B between two rows, on gold test, over seed-matched pairs of runs, with a 95% interval that
# counts both sources of chance (a document bootstrap, and the scatter of the per-seed differences) and the
# minimum detectable effect (MDE). *holds* / *contradicted*: the interval excludes 0
# on the paper's / the other side; *not measurable here*: it contains 0 and the MDE is more than twice the
# paper's effect; *not resolved*: it contains 0 although the paper's effect was within reach.

# %%
report.show_table(verdicts, report.CLAIM_COLS)

# %%
fig = figures.forest_plot(claims.forest_rows(verdicts))
saved["07_claims_forest"] = figures.save_figure(fig, "07_claims_forest", FIG)
fig

# %%
report.show_table(tables["table2"], report.TABLE2_COLS)

# %%
report.show_table(tables["table3"], report.TABLE3_COLS)

# %%
report.show_table(tables["groups"], report.GROUP_COLS)

# %%
report.show_table(tables["table4"], report.TABLE4_COLS)

# %% [markdown]
# ## Leaderboard: which loss to train with
# Every loss on the same encoder, seeds, schedule and optimiser settings (chosen on ATL), on gold labels and on
# incomplete ones (original labels, selected on original dev as a user without gold labels would; gold-dev
# selection beside). Each row's interval counts documents and seeds; *vs reference* is the seed-paired
# difference to the row best on dev (never chosen on test). Hollow markers: each method's published number
# (full data, its own encoder): a level that does not compare, an ordering that may.

# %%
tables["leaderboard"] = board = leaderboard.build(runs, profile)
print(leaderboard.markdown(board))
tables["probe"] = leaderboard.probe_rows(board)  # the decision probe of these runs, where it was run
print(leaderboard.probe_markdown(tables["probe"]) if tables["probe"] else "(decision probe: not run on these runs)")

# %%
fig = figures.leaderboard_plot(board["rows"], published.LEADERBOARD_PUBLISHED)
saved["07_leaderboard"] = figures.save_figure(fig, "07_leaderboard", FIG)
fig

# %% [markdown]
# ## Convergence
# How many runs of each kind converged, and how many epochs they needed to reach their best epoch; below, every
# run's selection dev curve, so a "cut short" can be told from a noisy plateau by eye.

# %%
report.show_table(tables["convergence"], report.CONVERGENCE_COLS)
print(report.dev_noise_line(tables["dev_noise"]))

# %%
fig = figures.convergence_grid(tables["curves"])
saved["07_convergence"] = figures.save_figure(fig, "07_convergence", FIG)
fig

# %% [markdown]
# ## This workbench vs the paper
# Absolute numbers differ by design (encoder, data size); the ordering of the bars is what should carry over.

# %%
pairs = [{"label": f"{t}: {r['label']}" + (f" ({r['regime']})" if "regime" in r else ""),
          "ours": None if r.get(k) is None else 100 * r[k], "paper": (r.get("paper") or {}).get(k)}
         for t, k in (("Table 2", "test_f1"), ("Table 3", "dev_f1"), ("Table 4", "test_f1"))
         for r in tables[{"Table 2": "table2", "Table 3": "table3", "Table 4": "table4"}[t]]]
fig = figures.paired_bars(pairs, title="F1: this workbench vs the paper (RoBERTa-large, full data)")
saved["07_paper_vs_ours"] = figures.save_figure(fig, "07_paper_vs_ours", FIG)
fig

# %% [markdown]
# ## Cost
# Seconds and peak memory per run: what a rerun of this profile costs.

# %%
cost = tables["cost"]
print(f"{cost['n_runs']} runs, {cost['total_seconds'] / 60:.1f} min in total, "
      f"peak RSS {cost['peak_rss_mb'] or 0:.0f} MB")
# a row's name, seed and regime name a run; a cut-short run stood in for by its longer run is "replaced"
fig = figures.cost_bars([{**r, "label": f"{r['label']} s{r['seed']} {r['regime']}"
                          + (" (replaced)" if r["experiments"] == ["replaced"] else "")} for r in cost["runs"]])
saved["07_cost"] = figures.save_figure(fig, "07_cost", FIG)
fig

# %% [markdown]
# ## Written files
# The README's summary, docs/results.md and docs/FAITHFULNESS.md are updated only for the cpu and paper profiles
# (or when PEMSCL_README points elsewhere: the docs move with it), so smoke numbers never land in them.

# %%
paths = report.write_results(tables, verdicts, runs=runs)  # merges this profile's runs into runs.jsonl
paths["leaderboard"] = results_dir() / "leaderboard.json"
atomic_write_json(paths["leaderboard"], board)
readme = results_doc = faith_doc = None
if profile in ("cpu", "paper") or os.environ.get("PEMSCL_README"):
    written = report.write_docs(tables, verdicts)  # docs/results.md (the whole section), the README's summary
    readme, results_doc = written["readme"], written["results_doc"]
    faith_doc = faithfulness.write_doc(tables)  # docs/FAITHFULNESS.md beside the README, with the measured effects
print(paths, readme, results_doc, faith_doc)

# %%
write_summary("07_results", {"results": {k: str(v) for k, v in paths.items()}, "readme": str(readme),
                             "results_doc": str(results_doc),
                             "faithfulness_doc": str(faith_doc),
                             "verdicts": {c["id"]: c["verdict"] for c in verdicts}, "figures": saved}, profile)
