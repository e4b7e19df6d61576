# %% [markdown]
# # 01 · Data regimes
# What each experiment trains, selects and tests on. `label_source` says whether a split carries original
# (DocRED) or gold (Re-DocRED) labels; the mini regimes fit the shared data.

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper (the pipeline sets it)

# %%
from pemscl import data, figures, report
from pemscl.pipeline import write_summary
FIG = figures.figures_dir()
saved = {}  # figure name -> files written, for the summary at the end

# %% [markdown]
# ## Regimes at hand
# Full regimes appear only when their files are present (see 00).

# %%
regimes, rows = {}, []
for name in data.regime_names():
    try:
        regimes[name] = data.load_regime(name)
    except data.DataNotFoundError as e:
        print(f"{name}: not available ({str(e).split('.')[0]})")
        continue
    rows += data.regime_stats(regimes[name])
    print(f"{name}: {regimes[name].description}")
report.show_table(rows, [(k, k) for k in rows[0]])

# %% [markdown]
# ## Facts per document
# Original-label splits carry far fewer facts per document than gold ones: the same documents, fewer labels.

# %%
for r in rows:
    r["facts_per_doc"] = r["positive_facts"] / max(1, r["docs"])
    r["name"] = f'{r["regime"]}/{r["split"]} ({r["label_source"]})'
fig = figures.grouped_bars(rows, x="name", metrics=["facts_per_doc"], error=None, scale=1.0,
                           y_title="facts per document", title="Labelled facts per document, by regime and split")
saved["01_facts_per_doc"] = figures.save_figure(fig, "01_facts_per_doc", FIG)
fig

# %% [markdown]
# ## Simulated noise
# `data.noisy` drops a fraction of the training facts to NA (seeded), a controlled stand-in for DocRED's false
# negatives; the dotted line is the real rate measured in 00.

# %%
base = regimes["redocred-mini"]
real = data.label_comparison(data.load_docs("docred/dev.subset.json"),
                             data.load_docs("redocred/dev_revised.json") + data.load_docs("redocred/test_revised.json"))
noise_rows = []
for drop in (0.0, 0.1, 0.3, 0.5, 0.63):
    st = data.split_stats(data.noisy(base, drop=drop, seed=0).train)
    noise_rows.append({"drop": drop, "positive_facts": st["positive_facts"], "na_pairs": st["na_pairs"],
                       "kept": st["positive_facts"] / data.split_stats(base.train)["positive_facts"]})
report.show_table(noise_rows, [(k, k) for k in noise_rows[0]])

# %%
fig = figures.grouped_bars([{"label": f"drop {r['drop']:g}", "kept": r["kept"]} for r in noise_rows],
                           metrics=["kept"], error=None, y_title="training facts kept (%)",
                           title="Noise simulator on redocred-mini train",
                           reference={"DocRED original labels": 100 * (1 - real["missing_from_original"])})
saved["01_noise_simulator"] = figures.save_figure(fig, "01_noise_simulator", FIG)
fig

# %%
write_summary("01_regimes", {"regimes": sorted(regimes), "stats": rows, "noise": noise_rows, "figures": saved},
              profile)
