# %% [markdown]
# # 00 · Data
# The real DocRE files this workbench runs on: where they come from, whether they are intact, how big they are,
# how long-tailed the relations are, and how many true facts the original DocRED labels miss.

# %% tags=["parameters"]
profile = "cpu"  # smoke | cpu | paper (the pipeline sets it)

# %%
from pemscl import data, evaluate, figures, report
from pemscl.pipeline import write_summary
FIG = figures.figures_dir()
saved = {}  # figure name -> files written, for the summary at the end

# %% [markdown]
# ## Files and checksums
# Every file listed in `SHA256SUMS` must read `ok`; the full DocRED / Re-DocRED files are optional (`absent`)
# and only the `paper` profile needs them.

# %%
rows, all_ok = data.check()
print("data directory:", data.data_dir(), "| all listed files ok:", all_ok)
report.show_table(rows, [("file", "file"), ("bytes", "bytes"), ("status", "status")])

# %% [markdown]
# ## Per-file statistics (compare paper Table 1)
# Paper Table 1 counts 3,053 train and 500/1,000 dev and test documents; here are the files at hand. `na_pairs`
# dominate: most entity pairs hold no relation.

# %%
FILES = {"docred/train_annotated.subset.json": "original", "docred/dev.subset.json": "original",
         "redocred/dev_revised.json": "gold", "redocred/test_revised.json": "gold",
         "redocred/train_revised.json": "gold", "docred/train_annotated.json": "original",
         "docred/dev.json": "original"}
stats = []
for rel, source in FILES.items():
    try:
        stats.append({"file": rel, "labels": source, **data.split_stats(data.load_docs(rel))})
    except data.DataNotFoundError:
        pass  # optional full files
cols = [(k, k) for k in stats[0]]
report.show_table(stats, cols)

# %% [markdown]
# ## The long tail
# Relations ranked by how many training entity pairs carry them (redocred-mini train). The dashed lines cut head
# (top 10) / mid / tail (bottom 20), the groups of paper Table 3.

# %%
train_docs = data.load_regime("redocred-mini").train
groups = evaluate.relation_groups(train_docs, relations=data.load_rel2id())
counts = {r: 0 for rels in groups.values() for r in rels}  # unseen relations count 0 (not drawn on a log axis)
counts.update(data.relation_counts(train_docs))
total = sum(counts.values())
share = {g: sum(counts[r] for r in rels) / total for g, rels in groups.items()}
print("share of training facts: " + ", ".join(f"{g} {100 * s:.0f}%" for g, s in share.items()),
      "(paper, full Re-DocRED train: head 64%, tail 2%)")
fig = figures.long_tail(counts, groups, names=data.relation_names())
saved["00_relation_long_tail"] = figures.save_figure(fig, "00_relation_long_tail", FIG)
fig

# %% [markdown]
# ## Original vs gold labels on the same documents
# DocRED dev documents that Re-DocRED re-annotated, paired by title and identical entities.
# `missing_from_original` is the share of true facts labelled "no relation" in DocRED: the false negatives that
# OOG/OGG train on.

# %%
original = data.load_docs("docred/dev.subset.json")
gold = data.load_docs("redocred/dev_revised.json") + data.load_docs("redocred/test_revised.json")
comparison = data.label_comparison(original, gold)
report.show_table([comparison], [(k, k) for k in comparison])

# %%
per_rel = data.label_comparison_per_relation(original, gold, names=data.relation_names())
fig = figures.label_comparison(per_rel, x="name", top=30)
saved["00_original_vs_gold"] = figures.save_figure(fig, "00_original_vs_gold", FIG)
fig

# %%
write_summary("00_data", {"all_files_ok": all_ok, "files": stats, "groups": {g: len(v) for g, v in groups.items()},
                          "share": share, "label_comparison": comparison, "figures": saved}, profile)
