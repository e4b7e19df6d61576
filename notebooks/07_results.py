# %% [markdown]
# # 07 · Results
# Every run of this profile's experiments, gathered into the paper's tables, a verdict per claim,
# `results/results.{json,md}` and the README's results section. Nothing is trained here.

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper (the pipeline sets it)

# %%
import os
from pemscl import figures, results, train
from pemscl.pipeline import write_summary
from pemscl.utils import runs_dir
FIG = figures.figures_dir()
saved = {}  # figure name -> files written, for the summary at the end

# %%
runs = train.list_runs()
tables = results.build_tables(runs, profile)
verdicts = results.claims(tables)
missing = {k: v for k, v in tables["missing"].items() if v}
print(f"{len(runs)} run folders under {runs_dir()}; missing for profile {profile}: {missing or 'none'}")

# %% [markdown]
# ## Claims
# *holds* / *does not hold* need a difference beyond 2 standard errors of the seed spread; otherwise
# *inconclusive*.

# %%
results.show_table(verdicts, results.CLAIM_COLS)

# %%
results.show_table(tables["table2"], results.TABLE2_COLS)

# %%
results.show_table(tables["table3"], results.TABLE3_COLS)

# %%
results.show_table(tables["table4"], results.TABLE4_COLS)

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
fig = figures.cost_bars([{**r, "label": f"{r['label']} s{r['seed']}"} for r in cost["runs"]])
saved["07_cost"] = figures.save_figure(fig, "07_cost", FIG)
fig

# %% [markdown]
# ## Written files
# The README is updated only for the cpu and paper profiles (or when PEMSCL_README points elsewhere), so smoke
# numbers never land in it.

# %%
paths = results.write_results(tables, verdicts, runs=runs)  # + runs.jsonl: every run's config, scores, curve
md = results.markdown(tables, verdicts, level=3)
readme = None
if profile in ("cpu", "paper") or os.environ.get("PEMSCL_README"):
    readme = results.update_readme(md)
print(paths, readme)

# %%
write_summary("07_results", {"results": {k: str(v) for k, v in paths.items()}, "readme": str(readme),
                             "verdicts": {c["id"]: c["verdict"] for c in verdicts}, "figures": saved}, profile)
