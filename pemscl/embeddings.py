"""Entity-pair embeddings: do relations form clusters, with and without SCL? (paper Sec. 3.4)

SCL pulls together the L2-normalised pair embeddings x_ht = concat_k vec(z_h^k ⊗ z_t^k)
of pairs that share a relation. This module measures whether that happened:

    emb = embeddings.pair_embeddings(model, docs, train_docs=regime.train)
    embeddings.separation(emb["x"], emb["relations"])   # silhouette, kNN purity, chance
    proj = embeddings.umap_2d(emb["x"], seed=0)
    fig = embeddings.embedding_figure(proj_a, proj_b, emb["relation"], groups=emb["group"], ...)

`compare(models, docs, ...)` does all of it for two models on the same documents;
`experiments.scl_configs(profile)` names the two runs (the ablation's PEMSCL and -SCL rows) and
`split_docs(cfg)` the documents they were tested on. A model trained on a regime with its own
relations (e.g. "cdr") is read with that relation set: pass `rel2id=data.regime_rel2id(cfg.regime)`.

x_ht has K*b*b entries (24,576 for MiniLM with b=64), so it is materialised a batch of
pairs at a time and, when memory matters, randomly projected to `dims` as it goes; the
separation numbers use exact cosines from the group factors (losses.pair_gram) instead.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from . import data as D
from . import evaluate as E
from .losses import group_outer, pair_gram
from .train import predict

GROUPS = ("head", "mid", "tail")


# --------------------------------------------------------------------------- embeddings
def _materialise(zh: torch.Tensor, zt: torch.Tensor, dims: int | None, seed: int, chunk: int = 512) -> np.ndarray:
    """Normalised x_ht for the given pairs, chunk by chunk; optionally Gaussian-projected.

    A Gaussian random projection keeps inner products of unit vectors up to O(1/sqrt(dims))
    (Johnson-Lindenstrauss), so cosine structure survives while the full K*b*b matrix never
    exists for all pairs at once. Rows are renormalised after projecting.
    """
    n, k, b = zh.shape
    full = k * b * b
    proj = None
    if dims is not None and dims < full:
        g = torch.Generator().manual_seed(seed)
        proj = torch.randn(full, dims, generator=g) / dims ** 0.5
    out = []
    for i in range(0, n, chunk):
        x = group_outer(zh[i: i + chunk].float(), zt[i: i + chunk].float())  # the x_ht SCL sees
        x = torch.nn.functional.normalize(x, dim=1)
        if proj is not None:
            x = torch.nn.functional.normalize(x @ proj, dim=1)
        out.append(x.numpy())
    return np.concatenate(out) if out else np.zeros((0, dims or full), np.float32)


def model_rel2id(model, rel2id: Mapping[str, int] | None = None) -> dict[str, int]:
    """The relation set to read `model`'s columns with: `rel2id` (the run's regime, e.g.
    data.regime_rel2id(cfg.regime)), else DocRED's, which must then fit the model's width."""
    rel2id = dict(rel2id) if rel2id is not None else D.load_rel2id()
    n = getattr(getattr(model, "config", None), "num_classes", None)
    if n is not None and n != len(rel2id):
        raise ValueError(f"the model has {n} classes but the relation set has {len(rel2id)}: pass "
                         "rel2id=data.regime_rel2id(cfg.regime) of the run's regime")
    return rel2id


def _group_of(train_docs: Sequence[dict], rel2id: Mapping[str, int] | None = None) -> dict[int, str]:
    rel2id = dict(rel2id) if rel2id is not None else D.load_rel2id()
    groups = E.relation_groups(train_docs, relations=rel2id)
    # relation_groups may name relations by id or by code; map both onto ids
    out: dict[int, str] = {}
    for g, rels in groups.items():
        for r in rels:
            out[int(r) if not isinstance(r, str) else rel2id[r]] = g
    return out


def relation_labels(rel2id: Mapping[str, int] | None = None) -> dict[int, str]:
    """{relation id: readable name} (0 = "NA") of `rel2id` (default DocRED's), falling back to
    the relation code (a data set of one's own has no names in meta/rel_info.json)."""
    rel2id = dict(rel2id) if rel2id is not None else D.load_rel2id()
    try:
        names = D.relation_names()
    except Exception:  # names are only decoration
        names = {}
    out = {}
    for code, i in rel2id.items():
        if isinstance(names, dict):
            out[i] = names.get(code, names.get(i, code))
        else:
            out[i] = names[i] if i < len(names) else code
    out[0] = "NA"
    return out


def _predict_chunks(model, docs: list[dict], batch_size: int, precision: str, chunk: int = 32,
                    rel2id: Mapping[str, int] | None = None):
    """(out, feats) of train.predict over `chunk` documents at a time."""
    for i in range(0, len(docs), chunk):
        _, out, feats = predict(model, docs[i: i + chunk], return_logits=True, batch_size=batch_size,
                                precision=precision, rel2id=rel2id)
        yield out, feats  # feats[k]["doc_index"] is k: positions within this chunk


def pair_embeddings(model, docs: Sequence[dict], only_positive: bool = True, max_pairs: int | None = None,
                    seed: int = 0, dims: int | None = None, train_docs: Sequence[dict] | None = None,
                    batch_size: int = 4, precision: str = "fp32", outputs: tuple | None = None,
                    chunk_docs: int = 32, rel2id: Mapping[str, int] | None = None) -> dict:
    """Normalised pair embeddings of `model` on `docs`, with each pair's gold relations.

    Returns a dict of equal-length arrays/lists, one entry per kept pair:
      x          (n, K*b*b) or (n, dims) float32, unit rows
      relation   the pair's first (lowest-id) gold relation, 0 for NA
      relations  tuple of all its gold relation ids (the multi-label set; () for NA)
      group      "head" / "mid" / "tail" of `relation` by training frequency ("na" for NA)
      doc, title, h, t   where the pair comes from (doc = index into `docs`)
      zh, zt     the kept pairs' group factors (N, K, b): exact cosines via losses.pair_gram
    plus `names` {relation id: readable name}.
    Head/mid/tail use `train_docs` (the frequencies the model was trained on); without
    them, the documents themselves. `outputs` = (out, feats) of an earlier
    `train.predict(model, docs, return_logits=True)` skips the forward pass; otherwise the
    documents run `chunk_docs` at a time and only the kept pairs' group factors are held.
    `rel2id`: the relation set of the model's regime (data.regime_rel2id(cfg.regime)); None
    means DocRED's.
    """
    docs = list(docs)
    rel2id = model_rel2id(model, rel2id)
    chunks = [outputs] if outputs is not None else _predict_chunks(model, docs, batch_size, precision, chunk_docs,
                                                                   rel2id)
    doc, title, hs, ts, rels, zh, zt = [], [], [], [], [], [], []
    offset = 0  # documents in earlier chunks
    for out, feats in chunks:
        rows, r = [], 0
        for k, f in enumerate(feats):
            i = offset + int(f.get("doc_index", k))
            lab = np.asarray(f["labels"])
            for j, (h, t) in enumerate(f["hts"]):
                ids = tuple(int(c) for c in np.flatnonzero(lab[j, 1:]) + 1)
                if ids or not only_positive:
                    rows.append(r)
                    doc.append(i)
                    title.append(f["title"])
                    hs.append(int(h))
                    ts.append(int(t))
                    rels.append(ids)
                r += 1
        offset += len(feats)
        # keep only the chosen pairs' factors: all pairs of a large test set would not fit
        sel = torch.as_tensor(rows, dtype=torch.long)
        zh.append(out["zh"][sel].float())
        zt.append(out["zt"][sel].float())
    if not zh:
        raise ValueError("pair_embeddings needs at least one document")
    zh, zt = torch.cat(zh), torch.cat(zt)
    keep = np.arange(len(rels))
    if max_pairs is not None and len(rels) > max_pairs:
        # a fixed random subset, in document order, so two models see the same pairs
        keep = np.sort(np.random.default_rng(seed).choice(len(rels), max_pairs, replace=False))
    idx = torch.as_tensor(keep, dtype=torch.long)
    x = _materialise(zh[idx], zt[idx], dims, seed)
    relations = [rels[i] for i in keep]
    relation = np.array([rs[0] if rs else 0 for rs in relations], dtype=np.int64)
    group_of = _group_of(train_docs if train_docs is not None else docs, rel2id)
    return {
        "x": x,
        "relation": relation,
        "relations": relations,
        "group": np.array([group_of.get(int(r), "tail") if r else "na" for r in relation], dtype=object),
        "doc": np.array([doc[i] for i in keep], dtype=np.int64),
        "title": [title[i] for i in keep],
        "h": np.array([hs[i] for i in keep], dtype=np.int64),
        "t": np.array([ts[i] for i in keep], dtype=np.int64),
        "zh": zh[idx],
        "zt": zt[idx],
        "names": relation_labels(rel2id),
    }


# --------------------------------------------------------------------------- separation
def _label_sets(labels) -> list[frozenset]:
    out = []
    for lab in labels:
        if isinstance(lab, (set, frozenset, tuple, list, np.ndarray)):
            out.append(frozenset(int(v) for v in lab))
        else:
            out.append(frozenset([int(lab)]))
    return out


def separation(x: np.ndarray | None, labels, k: int = 10, chunk: int = 1024, subset=None,
               gram: np.ndarray | None = None) -> dict:
    """How well the gold relations separate the embeddings (cosine geometry).

    labels: one relation per row, or one set of relations per row (multi-label).
    knn_purity: mean fraction of a point's k nearest neighbours (itself excluded) that share
      at least one relation with it, the same notion of "positive" as SCL's S_ht.
    chance: the purity a random neighbour would give (fraction of all other points sharing
      a relation), so purity is read against it rather than against 0.
    silhouette: sklearn's cosine silhouette over each point's first (lowest) relation;
      NaN when there are fewer than 2 or as many labels as points.
    subset: a boolean mask; the scores are averaged over those points only, their
      neighbours still drawn from all points (e.g. how well tail pairs find their kind).
    gram: the (n, n) cosine similarities, when known exactly (losses.pair_gram from the
      group factors), instead of x.
    """
    from sklearn.metrics import silhouette_samples

    if gram is not None:
        gram = np.asarray(gram, dtype=np.float32)
        n = gram.shape[0]
    else:
        x = np.asarray(x, dtype=np.float32)
        n = x.shape[0]
    sets = _label_sets(labels)
    assert len(sets) == n, "one label (set) per row"
    first = np.array([min(s) if s else -1 for s in sets])
    n_labels = len(set(first.tolist()))
    mask = np.ones(n, bool) if subset is None else np.asarray(subset, bool)
    sil = float("nan")
    if 2 <= n_labels <= n - 1 and mask.any():
        if gram is not None:
            dist = np.clip(1.0 - gram, 0.0, None)
            np.fill_diagonal(dist, 0.0)
            sil = float(silhouette_samples(dist, first, metric="precomputed")[mask].mean())
        else:
            sil = float(silhouette_samples(x, first, metric="cosine")[mask].mean())

    # label indicator matrix: "shares a relation" is a positive entry of Y Y^T
    vocab = {v: j for j, v in enumerate(sorted(set().union(*sets)))} if sets else {}
    Y = np.zeros((n, max(1, len(vocab))), np.float32)
    for i, s in enumerate(sets):
        for v in s:
            Y[i, vocab[v]] = 1.0
    if gram is None:
        xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k = min(k, n - 1)
    purity, chance = np.zeros(n), np.zeros(n)
    for i in range(0, n, chunk):
        sim = gram[i: i + chunk].copy() if gram is not None else xn[i: i + chunk] @ xn.T
        share = (Y[i: i + chunk] @ Y.T) > 0
        rows = np.arange(sim.shape[0])
        sim[rows, rows + i] = -np.inf  # a point is not its own neighbour
        share[rows, rows + i] = False
        if k > 0:
            nn = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            purity[i: i + chunk] = share[rows[:, None], nn].mean(1)
        chance[i: i + chunk] = share.sum(1) / max(1, n - 1)
    some = mask.any()
    return {"silhouette": sil, "knn_purity": float(purity[mask].mean()) if some else float("nan"),
            "chance": float(chance[mask].mean()) if some else float("nan"), "k": int(k), "n": int(mask.sum()),
            "n_relations": int(len(set(first[mask].tolist())))}


def exact_gram(emb: dict, max_n: int = 5000) -> np.ndarray | None:
    """Exact cosines of the full x_ht from the group factors (losses.pair_gram, never
    materialising x), or None above max_n pairs (an n x n matrix: 100 MB at 5,000)."""
    if len(emb["relation"]) > max_n:
        return None
    with torch.no_grad():
        return pair_gram((emb["zh"], emb["zt"])).numpy()


def separation_by_group(emb: dict, k: int = 10, gram: np.ndarray | None = None) -> dict[str, dict]:
    """separation() averaged over the pairs of each frequency group (head / mid / tail)."""
    g = np.asarray(emb["group"], dtype=object)
    return {name: separation(emb["x"], emb["relations"], k=k, subset=g == name, gram=gram)
            for name in GROUPS if (g == name).any()}


# --------------------------------------------------------------------------- 2-d projection
def umap_2d(x: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1,
            method: str = "umap", pca_dims: int = 50) -> np.ndarray:
    """(n, 2) coordinates for plotting.

    method="umap": cosine UMAP with a fixed random_state (reproducible, single-threaded).
    Very wide inputs are first reduced to `pca_dims` by PCA; for unit rows Euclidean
    distance is monotone in cosine, so UMAP then runs Euclidean on the PCA scores.
    method="pca": the first two principal components, no JIT compile; for smoke runs
    and for inputs too small for a neighbour graph.
    """
    from sklearn.decomposition import PCA

    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    if n == 0:
        return np.zeros((0, 2), np.float32)
    if method == "pca" or n < 4:
        if n < 2:
            return np.zeros((n, 2), np.float32)
        c = min(2, n, x.shape[1])
        z = PCA(n_components=c, random_state=seed).fit_transform(x)
        return np.pad(z, ((0, 0), (0, 2 - c))).astype(np.float32)
    if method != "umap":
        raise ValueError(f"method must be 'umap' or 'pca', got {method!r}")
    import umap

    metric = "cosine"
    if x.shape[1] > pca_dims and n > pca_dims:
        x = PCA(n_components=pca_dims, random_state=seed).fit_transform(x)
        metric = "euclidean"
    reducer = umap.UMAP(n_neighbors=max(2, min(n_neighbors, n - 1)), min_dist=min_dist, metric=metric,
                        random_state=seed, n_jobs=1)
    return reducer.fit_transform(x).astype(np.float32)


# --------------------------------------------------------------------------- figure
def _stats_text(s: dict | None) -> str:
    if not s:
        return ""
    return (f"silhouette {s['silhouette']:.2f} · {s['k']}-NN purity {s['knn_purity']:.2f}"
            f" (chance {s['chance']:.2f})")


def embedding_figure(proj_a: np.ndarray, proj_b: np.ndarray, labels, titles=("with SCL", "without SCL"),
                     groups=None, group: str | None = None, names: dict | None = None,
                     stats: tuple[dict, dict] | None = None, hover: Sequence[str] | None = None):
    """Two 2-d projections side by side, one colour per relation (same colour in both).

    labels: one relation id per point (the same pairs in both panels).
    groups: head/mid/tail per point; with it the figure gets a dropdown that shows all
      pairs or one group. group="head" etc. draws only that group (no dropdown).
    One trace per (panel, relation): the legend toggles a relation in both panels at once.
    """
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    proj_a, proj_b = np.asarray(proj_a), np.asarray(proj_b)
    labels = np.asarray(labels)
    assert len(proj_a) == len(proj_b) == len(labels), "both panels show the same pairs"
    groups = None if groups is None else np.asarray(groups, dtype=object)
    keep = np.ones(len(labels), bool)
    if group is not None:
        if groups is None:
            raise ValueError("group= needs groups")
        keep = groups == group
    names = names or {}
    titles = list(titles)
    if stats is not None:
        titles = [f"{t}<br><sup>{_stats_text(s)}</sup>" for t, s in zip(titles, stats)]
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles, horizontal_spacing=0.06)
    palette = qualitative.Dark24 + qualitative.Light24
    # most frequent relations first, so they get the distinct colours and lead the legend
    rels, counts = np.unique(labels[keep], return_counts=True)
    rels = rels[np.argsort(-counts, kind="stable")]
    trace_group = []
    for col, proj in ((1, proj_a), (2, proj_b)):
        for ci, r in enumerate(rels):
            m = keep & (labels == r)
            name = str(names.get(int(r), r))
            name = name if len(name) <= 30 else name[:29] + "…"  # long names squeeze the panels
            fig.add_trace(go.Scattergl(
                x=proj[m, 0], y=proj[m, 1], mode="markers", name=name, legendgroup=str(r),
                showlegend=col == 1, marker=dict(size=6, color=palette[ci % len(palette)], opacity=0.8),
                text=None if hover is None else [hover[i] for i in np.flatnonzero(m)],
                hovertemplate="%{text}<extra>" + name + "</extra>" if hover is not None else None,
            ), row=1, col=col)
            g = groups[m][0] if groups is not None and m.any() else None
            trace_group.append(g)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(height=520, legend=dict(title="relation", itemsizing="constant"),
                      margin=dict(t=110))
    if groups is not None and group is None:
        # a relation belongs to exactly one frequency group, so visibility is per trace
        present = [g for g in GROUPS if g in set(trace_group)]
        buttons = [dict(label="all relations", method="update", args=[{"visible": [True] * len(trace_group)}])]
        for g in present:
            buttons.append(dict(label=f"{g} relations", method="update",
                                args=[{"visible": [tg == g for tg in trace_group]}]))
        fig.update_layout(updatemenus=[dict(buttons=buttons, direction="down", x=0.0, xanchor="left",
                                            y=1.25, yanchor="top", showactive=True)])
    return fig


# --------------------------------------------------------------------------- which runs
def split_docs(cfg, split: str = "test") -> list[dict]:
    """The documents of `split` a run of `cfg` was scored on (its regime, its document limit)."""
    docs = getattr(D.load_regime(cfg.regime), split)
    limit = getattr(cfg, f"max_{split}_docs", None)
    return docs[:limit] if limit else docs


# --------------------------------------------------------------------------- two models
def compare(models: Sequence, docs: Sequence[dict], titles: Sequence[str] = ("with SCL", "without SCL"),
            train_docs: Sequence[dict] | None = None, max_pairs: int | None = 2000, seed: int = 0,
            dims: int | None = 1024, k: int = 10, method: str = "umap", n_neighbors: int = 15,
            min_dist: float = 0.1, rel2id: Mapping[str, int] | None = None) -> dict:
    """Embeddings, separation, 2-d projections and the side-by-side figure for two models
    (`rel2id`: the relation set of their regime, None = DocRED's).

    Both models see the same documents and, by the shared seed, the same sampled pairs.
    Separation is measured in the embedding space, not on the 2-d map: on exact cosines of
    the full x_ht (up to 5,000 pairs), else on the `dims`-wide random projection.
    """
    embs = [pair_embeddings(m, docs, max_pairs=max_pairs, seed=seed, dims=dims, train_docs=train_docs,
                            rel2id=rel2id) for m in models]
    a, b = embs
    assert np.array_equal(a["relation"], b["relation"]), "the two models must see the same pairs"
    grams = [exact_gram(e) for e in embs]
    seps = [separation(e["x"], e["relations"], k=k, gram=g) for e, g in zip(embs, grams)]
    projs = [umap_2d(e["x"], seed=seed, n_neighbors=n_neighbors, min_dist=min_dist, method=method) for e in embs]
    names = a["names"]
    hover = [f"{t} ({h}→{tt}): {', '.join(names.get(r, str(r)) for r in rs)}"
             for t, h, tt, rs in zip(a["title"], a["h"], a["t"], a["relations"])]
    fig = embedding_figure(projs[0], projs[1], a["relation"], titles=titles, groups=a["group"], names=names,
                           stats=tuple(seps), hover=hover)
    by_group = {t: separation_by_group(e, k=k, gram=g) for t, e, g in zip(titles, embs, grams)}
    return {"embeddings": embs, "separation": dict(zip(titles, seps)), "by_group": by_group,
            "projections": projs, "figure": fig}


def separation_table(seps: dict, by_group: dict | None = None) -> str:
    """A small plain-text table of separation numbers: one row per model (and per group)."""
    w = max([24] + [len(n) + 8 for n in seps])
    lines = [f"{'model':<{w}}{'pairs':>6}{'silhouette':>12}{'kNN purity':>12}{'chance':>9}"]
    rows = []
    for name, s in seps.items():
        rows.append((name, s))
        for g, gs in ((by_group or {}).get(name) or {}).items():
            rows.append((f"  {g}", gs))
    for name, s in rows:
        lines.append(f"{name:<{w}}{s['n']:>6}{s['silhouette']:>12.3f}{s['knn_purity']:>12.3f}{s['chance']:>9.3f}")
    return "\n".join(lines)
