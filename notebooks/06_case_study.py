# %% [markdown]
# # 06 · Case study: logits against the NA threshold
# Paper Fig. 3: for one entity pair, every relation's logit under ATL (ATLOP's loss) and PEMSCL, with each
# model's NA logit as the threshold a relation must beat. A larger gap between the gold relation and NA is the
# discriminability PEMSCL aims for. Any two models can be compared instead: set `models` to their run folders or
# exported folders (`python -m pemscl.export`).

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper (the pipeline sets it)
interactive = True  # False: only the fixed example, no widgets (headless runs skip them anyway)
models = []  # two run or exported folders (python -m pemscl.export) to compare instead of the profile's runs

# %%
from IPython.display import HTML, display
from pemscl import casestudy, experiments, export, figures, runner
from pemscl.pipeline import write_summary
saved = {}

# %%
if models:  # given folders, named by their labels, on the test documents the first was scored on
    runs = list(models)
    study = casestudy.CaseStudy(*runs, casestudy.split_docs(export.load_config(runs[0]), "test"))
else:
    cfg_atl, cfg_pemscl = experiments.headline_configs(profile)  # picked by loss kind, first seed
    # a run known only from the record is trained here for its model; the recorded run stays the judged one
    runs = runner.run_all([cfg_atl, cfg_pemscl], need_weights=True)  # loaded below: local runs only
    study = casestudy.CaseStudy(*runs, casestudy.split_docs(cfg_atl, "test"), names=("ATL", "PEMSCL"))

# %% [markdown]
# A fixed example: a gold pair one model gets and the other misses (else any disagreement). Bars above the
# dashed line are predicted; hatched bars with a star are gold.

# %%
ex = casestudy.static_example(study)
display(HTML(ex["html"]))
fig = ex["figure"]
saved["06_case_study"] = figures.save_figure(fig, "06_case_study", width=1100)
fig

# %% [markdown]
# Browse any document and pair (★ = pairs with gold relations, listed first).

# %%
if interactive and not casestudy.headless():  # papermill / the pipeline: no one to click
    display(casestudy.browser(study))

# %%
v = ex["view"]
write_summary("06_case_study", {"runs": [str(getattr(r, "dir", r)) for r in runs], "example": {
    "title": v["title"], "h": v["h"], "t": v["t"], "gold": v["gold"],
    "runs": [{k: r[k] for k in ("name", "na", "pred", "correct")} for r in v["runs"]]},
    "figures": saved}, profile)
