"""Pair embeddings and their separation measures.

Separation is checked on synthetic clusters where the answer is known (and on a hand
example for multi-label purity); pair_embeddings runs an untrained MiniLM model on two
real documents, where only the bookkeeping can be checked: unit rows, the exact x_ht of
the model's head, and each pair's relations against the documents' own labels.
"""

import numpy as np
import pytest
import torch

from pemscl import embeddings as EMB


def clusters(n_per=30, n_clusters=4, dim=16, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:n_clusters]  # orthogonal directions: cosine-separated
    x = np.concatenate([c + spread * rng.normal(size=(n_per, dim)) for c in centres])
    y = np.repeat(np.arange(1, n_clusters + 1), n_per)
    return x.astype(np.float32), y


def test_separated_clusters_are_pure():
    x, y = clusters()
    s = EMB.separation(x, y, k=10)
    assert s["knn_purity"] == 1.0
    assert s["silhouette"] > 0.8
    # chance = (30 - 1) / (120 - 1): a random other point shares the relation
    assert s["chance"] == pytest.approx(29 / 119)
    assert (s["n"], s["k"], s["n_relations"]) == (120, 10, 4)


def test_separation_from_a_gram_matrix_matches_vectors():
    x, y = clusters(spread=0.5)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    a = EMB.separation(x, y, k=5)
    b = EMB.separation(None, y, k=5, gram=xn @ xn.T)
    assert a["knn_purity"] == b["knn_purity"] and a["chance"] == b["chance"]
    assert b["silhouette"] == pytest.approx(a["silhouette"], abs=1e-4)
    # a subset averages over its own points; neighbours still come from everyone
    sub = EMB.separation(x, y, k=5, subset=y == 1)
    assert sub["n"] == 30 and sub["n_relations"] == 1


def test_shuffled_labels_give_chance_purity():
    x, y = clusters()
    y = np.random.default_rng(1).permutation(y)
    s = EMB.separation(x, y, k=10)
    assert abs(s["knn_purity"] - s["chance"]) < 0.1
    assert s["silhouette"] < 0.1


def test_multilabel_purity_by_hand():
    # five points on a line of angles; k=1 nearest neighbours are: 0<->1, 2->1 or 3, ...
    ang = np.array([0.0, 0.1, 0.5, 0.6, 1.5])
    x = np.stack([np.cos(ang), np.sin(ang)], 1)
    labels = [{1, 2}, {2}, {3}, {1, 3}, {4}]
    # nearest neighbours: 0->1, 1->0, 2->3, 3->2, 4->3
    # shares a relation?   yes    yes    yes    yes    no   -> purity 4/5
    s = EMB.separation(x, labels, k=1)
    assert s["knn_purity"] == pytest.approx(4 / 5)
    # others sharing: 0:{1,3}=2, 1:{0}=1, 2:{3}=1, 3:{0,2}=2, 4:{}=0 -> (2+1+1+2+0)/(5*4)
    assert s["chance"] == pytest.approx(6 / 20)
    # k=2: 0->{1,2}: 1 yes 2 no; 1->{0,2}: yes,no; 2->{3,1}: yes,no; 3->{2,1}: yes,no; 4->{3,2}: no,no
    assert EMB.separation(x, labels, k=2)["knn_purity"] == pytest.approx(4 / 10)


def test_projection_pca_and_umap_are_deterministic():
    x, _ = clusters(n_per=10, n_clusters=3)
    p = EMB.umap_2d(x, method="pca")
    assert p.shape == (30, 2)
    u1 = EMB.umap_2d(x, seed=3, n_neighbors=5)
    u2 = EMB.umap_2d(x, seed=3, n_neighbors=5)
    assert u1.shape == (30, 2) and np.array_equal(u1, u2)
    assert EMB.umap_2d(x[:2]).shape == (2, 2)  # too few points for a graph: falls back to PCA


def test_embedding_figure_traces_and_group_dropdown():
    x, y = clusters(n_per=5, n_clusters=4)
    groups = np.array(["head"] * 10 + ["mid"] * 5 + ["tail"] * 5, dtype=object)
    p = EMB.umap_2d(x, method="pca")
    seps = (EMB.separation(x, y, k=3), EMB.separation(x[::-1], y, k=3))
    fig = EMB.embedding_figure(p, p, y, titles=("A", "B"), groups=groups, names={1: "country"}, stats=seps)
    assert len(fig.data) == 2 * 4  # one trace per relation per panel
    assert [t.showlegend for t in fig.data] == [True] * 4 + [False] * 4
    assert fig.data[0].legendgroup == fig.data[4].legendgroup  # same relation, same colour, both panels
    assert fig.data[0].marker.color == fig.data[4].marker.color
    assert "country" in {t.name for t in fig.data}
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["all relations", "head relations", "mid relations", "tail relations"]
    tail_visible = buttons[3].args[0]["visible"]
    assert sum(tail_visible) == 2  # relation 4 in both panels
    assert "purity" in fig.layout.annotations[0].text
    only_head = EMB.embedding_figure(p, p, y, groups=groups, group="head")
    assert len(only_head.data) == 2 * 2 and not only_head.layout.updatemenus


# --------------------------------------------------------------------------- real model
@pytest.fixture(scope="module")
def minilm_model():
    from pemscl.model import DocREModel, ModelConfig

    torch.manual_seed(0)
    return DocREModel(ModelConfig(encoder="minilm")).eval()


@pytest.fixture(scope="module")
def two_docs(data_dir):
    from pemscl import data as D

    return D.load_regime("redocred-mini").dev[:2]


def test_pair_embeddings_on_real_documents(minilm_model, two_docs):
    from pemscl import data as D
    from pemscl.train import predict

    # one forward pass, reused below through `outputs`
    _, out, feats = predict(minilm_model, two_docs, return_logits=True, precision="fp32")
    emb = EMB.pair_embeddings(minilm_model, two_docs, train_docs=two_docs, outputs=(out, feats))
    rel2id = D.load_rel2id()
    gold = {}
    for i, d in enumerate(two_docs):
        for lab in d["labels"]:
            gold.setdefault((i, lab["h"], lab["t"]), set()).add(rel2id[lab["r"]])
    n = len(emb["relation"])
    assert n == len(gold) and emb["x"].shape[0] == n
    assert np.allclose(np.linalg.norm(emb["x"], axis=1), 1.0, atol=1e-5)
    for i in range(n):
        key = (int(emb["doc"][i]), int(emb["h"][i]), int(emb["t"][i]))
        assert set(emb["relations"][i]) == gold[key]
        assert emb["relation"][i] == min(gold[key])
        assert emb["title"][i] == two_docs[key[0]]["title"]
        assert emb["group"][i] in ("head", "mid", "tail")

    # the rows are the model's own x_ht (normalised): recompute one pair from zh, zt
    d0, h0, t0 = int(emb["doc"][0]), int(emb["h"][0]), int(emb["t"][0])
    row = sum(len(f["hts"]) for f in feats[:d0]) + [tuple(p) for p in feats[d0]["hts"]].index((h0, t0))
    x = torch.einsum("ki,kj->kij", out["zh"][row], out["zt"][row]).reshape(-1)
    assert np.allclose(emb["x"][0], (x / x.norm()).numpy(), atol=1e-5)

    # sampling and projection: the same pairs for the same seed, unit rows of the asked width
    kw = dict(max_pairs=5, seed=1, dims=32, train_docs=two_docs, outputs=(out, feats))
    small, again = EMB.pair_embeddings(minilm_model, two_docs, **kw), EMB.pair_embeddings(minilm_model, two_docs, **kw)
    assert small["x"].shape == (5, 32)
    assert np.allclose(np.linalg.norm(small["x"], axis=1), 1.0, atol=1e-5)
    assert np.array_equal(small["h"], again["h"]) and np.allclose(small["x"], again["x"])
    assert set(zip(small["doc"], small["h"], small["t"])) <= set(zip(emb["doc"], emb["h"], emb["t"]))
    everything = EMB.pair_embeddings(minilm_model, two_docs, only_positive=False, train_docs=two_docs,
                                     outputs=(out, feats))
    assert len(everything["relation"]) == sum(len(f["hts"]) for f in feats)
    assert (everything["relation"] == 0).sum() == len(everything["relation"]) - n
    assert set(everything["group"][everything["relation"] == 0]) == {"na"}
    # the model run a document at a time (the default path, in chunks) gives the same rows
    chunked = EMB.pair_embeddings(minilm_model, two_docs, train_docs=two_docs, chunk_docs=1)
    assert np.array_equal(chunked["doc"], emb["doc"]) and np.array_equal(chunked["h"], emb["h"])
    assert np.allclose(chunked["x"], emb["x"], atol=1e-4)
    # exact cosines from the group factors agree with the materialised rows
    assert np.allclose(EMB.exact_gram(emb), emb["x"] @ emb["x"].T, atol=1e-4)
