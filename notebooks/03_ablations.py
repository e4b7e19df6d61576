# %% [markdown]
# # 03 · Losses and ablations
# Paper Table 2 (which loss) and Table 3 (what EM and SCL add) at this profile's scale, then the released code's
# options. Rows average over seeds: read differences against the ± spread.

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper (the pipeline sets it)

# %%
from pemscl import experiments, figures, report, runner
from pemscl.tables import build_tables
from pemscl.pipeline import write_summary
FIG = figures.figures_dir()
saved = {}  # figure name -> files written, for the summary at the end

# %% [markdown]
# ## Losses on gold labels (Table 2)
# ATL is ATLOP's adaptive threshold, BCE a tuned global threshold, NCRL and PEMSCL the pairwise alternatives.

# %%
runs = runner.run_all(experiments.headline(profile))  # every run this notebook shows, for build_tables

# %% [markdown]
# ## Ablation over seeds (Table 3)
# The paper's claim: each of EM and SCL helps, most on tail relations.

# %%
runs += runner.run_all(experiments.ablation(profile))

# %%
tables = build_tables(runs, profile)
report.show_table(tables["table2"], report.TABLE2_COLS)

# %%
report.show_table(tables["table3"], report.TABLE3_COLS)

# %% [markdown]
# Head / mid / tail F1 beside each group's number of gold facts on that split: a tail group of a few dozen facts
# moves by points with every fact found or missed.

# %%
report.show_table([r for r in tables["groups"] if r["experiment"] == "ablation"], report.GROUP_COLS)

# %%
fig = figures.grouped_bars(tables["table3"], metrics=["dev_f1", "dev_head_f1", "dev_mid_f1", "dev_tail_f1"],
                           names={"dev_f1": "all", "dev_head_f1": "head", "dev_mid_f1": "mid", "dev_tail_f1": "tail"},
                           title="Ablation: dev F1 by relation group (mean ± std over seeds)")
saved["03_ablation"] = figures.save_figure(fig, "03_ablation", FIG)
fig

# %%
fig = figures.grouped_bars(tables["table2"], metrics=["test_ign_f1", "test_f1"],
                           names={"test_ign_f1": "Ign F1", "test_f1": "F1"}, title="Losses on gold labels: test")
saved["03_headline"] = figures.save_figure(fig, "03_headline", FIG)
fig

# %% [markdown]
# ## Paper vs released code (exploratory: fast path, one seed)
# Each row changes one behaviour to what the authors' code does (FAITHFULNESS.md); Δ is against the paper
# default of the same setting.

# %%
runs += runner.run_all(experiments.faithfulness(profile))
tables = build_tables(runs, profile)
report.show_table(tables["faithfulness"], report.FAITH_COLS)

# %% [markdown]
# ## Fast path vs full fine-tuning
# The same PEMSCL config trained end to end and with only the top layers trained on cached lower layers: how
# much F1 the fast path used by the ablations, seeds and sweeps gives up, and what it saves.

# %%
runs += runner.run_all(experiments.layers(profile))
tables = build_tables(runs, profile)
report.show_table(tables["layers"], report.LAYER_COLS)

# %% [markdown]
# ## A small search on dev
# Where the ablation disagrees with the paper, scale and hyperparameters come before conclusions: SCL's weight λ
# and temperature τ, and ATL on the same fast path as the ablation rows (one seed each; read against the seed
# spread of Table 3).

# %%
runs += runner.run_all(experiments.search(profile))
tables = build_tables(runs, profile)
report.show_table(tables["search"], report.SEARCH_COLS)

# %%
write_summary("03_ablations", {"table2": tables["table2"], "table3": tables["table3"],
                               "faithfulness": tables["faithfulness"], "layers": tables["layers"],
                               "search": tables["search"], "figures": saved}, profile)
