# %% [markdown]
# # 02 · Train one model
# The profile's headline PEMSCL model (cpu: MiniLM, full fine-tuning on redocred-mini; paper: RoBERTa-large on
# Re-DocRED, use a GPU). A finished run folder is reused.

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper (the pipeline sets it)

# %%
from pemscl import experiments, figures, fmt, report, runner
from pemscl.pipeline import write_summary
from pemscl.utils import resolve_device, resolve_precision
FIG = figures.figures_dir()
saved = {}  # figure name -> files written, for the summary at the end

# %%
cfg = next(c for c in experiments.headline(profile) if c.label == "PEMSCL")
device = resolve_device(cfg.device)
amp = resolve_precision(cfg.precision, device)
print("device:", device, "| precision:", str(amp).replace("torch.", "") if amp else "fp32")
if device.type == "cuda" and profile != "paper":
    print("a GPU is present: profile='paper' trains the paper's configuration")
print(cfg)

# %%
run = runner.run_all([cfg])[0]
print(run.dir)

# %% [markdown]
# ## Learning curves
# Loss should fall every epoch; the dev F1 peak is the epoch kept (`best_epoch`).

# %%
fig = figures.learning_curves({"PEMSCL": run.history}, metrics=("dev_f1",))
saved["02_learning_curves"] = figures.save_figure(fig, "02_learning_curves", FIG)
fig

# %% [markdown]
# ## Scores
# Dev picks the epoch, test is reported. Head/mid/tail are paper Table 3's relation groups; intra/inter split
# facts by whether head and tail share a sentence.

# %%
KEYS = ["ign_f1", "f1", "precision", "recall", "head_f1", "mid_f1", "tail_f1", "intra_f1", "inter_f1"]
score_rows = [{"split": s, **{k: fmt.pct(run.scores[s].get(k)) for k in KEYS}} for s in ("dev", "test")
              if s in run.scores]
print(f"best epoch {run.scores['best_epoch']}, {run.scores['seconds']:.0f}s on {run.scores['device']}, "
      f"peak RSS {run.scores['peak_rss_mb']:.0f} MB")
report.show_table(score_rows, [("split", "split")] + [(k, k) for k in KEYS])

# %%
write_summary("02_train", {"run": str(run.dir), "scores": run.scores, "epochs": len(run.history),
                           "figures": saved}, profile)
