"""A data set of one's own, with its own relation set: BC5CDR ("cdr") and a tiny registered one.

The expected counts are computed here from the raw JSON, independently of pemscl.data's cleaning.
"""

import copy
import json

import pytest

from pemscl import config as CF
from pemscl import data as D

SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def raw_cdr(data_dir):
    out = {}
    for s in SPLITS:
        with open(data_dir / "cdr" / f"{s}.json") as f:
            out[s] = json.load(f)
    return out


@pytest.fixture(scope="module")
def cdr(data_dir):
    return D.load_regime("cdr", root=data_dir)


def _expected_cleaning(docs, no_relation):
    """What loading must remove, counted the plain way: per document, the label entries."""
    n_na = n_na_on_pos = n_dup = n_kept = 0
    for d in docs:
        labs = [(lab["h"], lab["t"], lab["r"]) for lab in d["labels"]]
        pos = [k for k in labs if k[2] != no_relation]
        pos_pairs = {(h, t) for h, t, _ in pos}
        na = [k for k in labs if k[2] == no_relation]
        n_na += len(na)
        n_na_on_pos += sum((h, t) in pos_pairs for h, t, _ in na)
        n_kept += len(set(pos))
        n_dup += len(pos) - len(set(pos))
    return {"no_relation": n_na, "no_relation_on_positive_pair": n_na_on_pos, "duplicates": n_dup, "kept": n_kept}


# --------------------------------------------------------------------------- BC5CDR
def test_cdr_sizes_relations_and_counted_cleaning(cdr, raw_cdr):
    assert (len(cdr.train), len(cdr.dev), len(cdr.test)) == (500, 500, 500)
    assert cdr.rel2id == {"Na": 0, "CID": 1} and cdr.relation_ids() == {"Na": 0, "CID": 1}
    assert cdr.label_source == {"train": "gold", "dev": "gold", "test": "gold"}
    for s in SPLITS:
        raw, c = raw_cdr[s], cdr.cleaning[s]
        exp = _expected_cleaning(raw, "NR")
        assert {k: c[k] for k in exp} == exp, s
        assert c["labels_in_file"] == sum(len(d["labels"]) for d in raw)
        assert c["labels_in_file"] == c["no_relation"] + c["duplicates"] + c["kept"]
        # the loaded labels: no NR left, no duplicates, exactly the unique CID facts of the file
        docs = cdr.split(s)
        assert {lab["r"] for d in docs for lab in d["labels"]} == {"CID"}
        assert sum(len(d["labels"]) for d in docs) == exp["kept"]
        assert all(len({(x["h"], x["t"], x["r"]) for x in d["labels"]}) == len(d["labels"]) for d in docs)
        assert D.relation_counts(docs) == {"CID": exp["kept"]}
        assert D.split_stats(docs)["positive_facts"] == exp["kept"]
        # CDR writes evidence [None]: the None entries are gone from every kept label
        assert all(lab["evidence"] == [] for d in docs for lab in d["labels"])
        assert c["evidence_none"] == exp["kept"] and c["missing_labels"] == 0
    # the numbers found in the files (train / dev / test); also in the data README's table
    assert [cdr.cleaning[s]["no_relation"] for s in SPLITS] == [4202, 4075, 4138]
    assert [cdr.cleaning[s]["duplicates"] for s in SPLITS] == [16, 15, 10]
    assert [cdr.cleaning[s]["no_relation_on_positive_pair"] for s in SPLITS] == [1, 6, 0]


def test_cdr_input_untouched_and_same_documents(cdr, raw_cdr):
    for s in SPLITS:
        for raw, doc in zip(raw_cdr[s], cdr.split(s)):
            assert doc["title"] == raw["title"] and doc["vertexSet"] == raw["vertexSet"]
    # a NR label that shares its pair with a CID label: the CID stands, the NR goes
    nr_pos = [(i, lab["h"], lab["t"]) for i, d in enumerate(raw_cdr["dev"]) for lab in d["labels"]
              if lab["r"] == "NR" and any(x["r"] == "CID" and (x["h"], x["t"]) == (lab["h"], lab["t"])
                                          for x in d["labels"])]
    assert len(nr_pos) == 6
    for i, h, t in nr_pos:
        assert [x["r"] for x in cdr.dev[i]["labels"] if (x["h"], x["t"]) == (h, t)] == ["CID"]


def test_cdr_stats_notes_and_cli(cdr, data_dir, capsys):
    rows = D.cleaning_stats(cdr)
    assert [r["split"] for r in rows] == list(SPLITS) and rows[0]["no_relation"] == 4202
    assert [r["positive_facts"] for r in D.regime_stats(cdr)] == [cdr.cleaning[s]["kept"] for s in SPLITS]
    # CDR orients each pair by first mention, so some CID labels have the disease as head
    pairs = D.label_type_pairs(cdr.train)["CID"]
    assert set(pairs) == {"CHEM->DISE", "DISE->CHEM"} and sum(pairs.values()) == cdr.cleaning["train"]["kept"]
    assert any("DISE->CHEM" in n for n in cdr.notes) and any("4,202 explicit 'NR'" in n for n in cdr.notes)
    assert D.main(["--data", str(data_dir), "stats", "cdr"]) == 0
    out = capsys.readouterr().out
    assert "relations: 1 besides 'Na' (CID)" in out and "no_relation" in out and "4,202" in out


def test_regime_rel2id_without_loading(monkeypatch):
    # declared relation sets are known without reading a document
    monkeypatch.setattr(D, "load_docs", lambda *a, **k: pytest.fail("regime_rel2id read documents"))
    assert D.regime_rel2id("cdr") == {"Na": 0, "CID": 1}
    assert "cdr" in D.regime_names() and set(D.REGIMES) < set(D.regime_names())
    with pytest.raises(ValueError, match="unknown regime 'nope'.*cdr"):
        D.regime_rel2id("nope")


def test_regime_rel2id_docred(data_dir):
    assert D.regime_rel2id("redocred-mini", root=data_dir) == D.load_rel2id(data_dir)


def test_noisy_keeps_the_relation_set(cdr):
    n = D.noisy(cdr, drop=0.5, seed=1)
    assert n.rel2id == {"Na": 0, "CID": 1} and n.cleaning == cdr.cleaning
    assert D.split_stats(n.train)["positive_facts"] == round(cdr.cleaning["train"]["kept"] / 2)


# --------------------------------------------------------------------------- a tiny data set of one's own
RELS = {"P17": "country", "P131": "located_in", "P27": "citizen_of"}


def _tiny_docs(redocred_dev):
    """8 Re-DocRED docs relabelled with 3 relations of their own names, plus an explicit
    no-relation label ("none"), a duplicate and a document without labels."""
    docs = []
    for d in copy.deepcopy(redocred_dev[:8]):
        d["labels"] = [{**lab, "r": RELS[lab["r"]]} for lab in d["labels"] if lab["r"] in RELS]
        docs.append(d)
    labelled = {(lab["h"], lab["t"]) for lab in docs[0]["labels"]}
    free = next((h, t) for h in range(len(docs[0]["vertexSet"])) for t in range(len(docs[0]["vertexSet"]))
                if h != t and (h, t) not in labelled)
    docs[0]["labels"] += [{"h": free[0], "t": free[1], "r": "none", "evidence": []}, dict(docs[0]["labels"][0])]
    del docs[5]["labels"]  # dev's first document
    return {"train": docs[:4], "dev": docs[4:6], "test": docs[6:8]}


@pytest.fixture
def tiny(tmp_path, data_dir):
    with open(data_dir / "redocred/dev_revised.json") as f:
        splits = _tiny_docs(json.load(f)[:8])
    paths = {}
    for s, docs in splits.items():
        paths[s] = tmp_path / f"{s}.json"
        paths[s].write_text(json.dumps(docs))
    spec = D.CustomRegime("tiny3-test", **paths, relations=tuple(RELS.values()), no_relation="none",
                          description="3 relations of my own")
    D.register_regime(spec, overwrite=True)
    yield spec, splits, paths
    D.unregister_regime("tiny3-test")


def test_tiny_custom_regime_loads_and_counts(tiny):
    spec, splits, _ = tiny
    reg = D.load_regime("tiny3-test")
    assert reg.rel2id == {"Na": 0, "country": 1, "located_in": 2, "citizen_of": 3} == D.regime_rel2id("tiny3-test")
    assert [len(reg.split(s)) for s in SPLITS] == [4, 2, 2]
    tr = reg.cleaning["train"]
    n_real = sum(len({(x["h"], x["t"], x["r"]) for x in d["labels"] if x["r"] != "none"}) for d in splits["train"])
    assert (tr["no_relation"], tr["duplicates"], tr["kept"]) == (1, 1, n_real)
    assert reg.cleaning["dev"]["missing_labels"] == 1 and reg.dev[1]["labels"] == []
    assert "labels" not in splits["dev"][1]  # the file's documents are not modified
    assert {lab["r"] for d in reg.train for lab in d["labels"]} <= set(RELS.values())


def test_relation_outside_the_declared_set_names_doc_and_field(tiny, tmp_path):
    spec, splits, paths = tiny
    bad = copy.deepcopy(splits["test"])
    bad[1]["labels"].append({"h": 0, "t": 1, "r": "P17", "evidence": []})
    paths["test"].write_text(json.dumps(bad))
    msg = r"test\.json: document 1 .*field labels\[\d+\]\.r: unknown relation 'P17'"
    with pytest.raises(D.DocumentError, match=msg):
        D.load_regime("tiny3-test")


def test_registration_rules(tiny):
    spec, _, _ = tiny
    with pytest.raises(ValueError, match="already registered"):
        D.register_regime(spec)
    with pytest.raises(ValueError, match="built in"):
        D.register_regime("redocred-mini", lambda root: None)
    with pytest.raises(ValueError, match="built in"):
        D.register_regime(D.CustomRegime("cdr", "a", "b", "c", relations=("X",)))
    with pytest.raises(ValueError, match="repeated"):
        D.make_rel2id(["a", "a"])
    with pytest.raises(ValueError, match="may not be one of its relations"):
        D.CustomRegime("x", "a", "b", "c", relations=("NR",), no_relation="NR").rel2id
    with pytest.raises(ValueError, match="not a registered regime"):
        D.unregister_regime("cdr")


def test_loader_registration_checks_labels(tiny, data_dir):
    # the other way in: any function of the data directory returning a Regime with its rel2id
    def loader(root):
        r = D.load_regime("tiny3-test")
        return D.Regime("mine", r.train, r.dev, r.test, r.label_source, rel2id={"Na": 0, "country": 1})

    D.register_regime("mine-test", loader)
    try:
        with pytest.raises(D.DocumentError, match="unknown relation"):  # located_in is not in its set
            D.load_regime("mine-test")
    finally:
        D.unregister_regime("mine-test")


def test_entity_types_are_checked(raw_cdr):
    docs = copy.deepcopy(raw_cdr["dev"][:3])
    docs[2]["vertexSet"][1][0]["type"] = "GENE"
    D.check_entity_types(docs[:2], ("CHEM", "DISE"), "x")
    with pytest.raises(D.DocumentError, match=r"document 2 .*vertexSet\[1\]\[0\]\.type: 'GENE'"):
        D.check_entity_types(docs, ("CHEM", "DISE"), "x")


# --------------------------------------------------------------------------- end to end: the smoke config
def _predicted_relations(run):
    return {p["r"] for s in ("dev", "test") for p in json.loads((run.dir / f"predictions_{s}.json").read_text())}


@pytest.fixture(scope="module")
def cdr_run(tmp_path_factory):
    from pemscl import train as T

    return T.train(CF.preset("smoke", regime="cdr", max_train_docs=4, max_dev_docs=2, max_test_docs=2,
                            label="test-cdr"), root=tmp_path_factory.mktemp("runs"), progress=False)


def test_cdr_trains_with_two_classes(cdr_run):
    from pemscl import train as T

    run = cdr_run
    assert {"f1", "ign_f1", "n_gold"} <= set(run.scores["test"]) and run.scores["dev"]["n_gold"] > 0
    model, cfg = T.load(run)
    assert model.config.num_classes == 2 and model.classifier.weight.shape[0] == 2
    assert _predicted_relations(run) <= {"CID"}
    assert run.scores["groups"] == {"head": ["CID"], "mid": [], "tail": []}


def test_case_study_and_embeddings_read_the_runs_relation_set(cdr_run):
    from pemscl import casestudy as C
    from pemscl import embeddings as EMB
    from pemscl import train as T

    study = C.CaseStudy(cdr_run, cdr_run, [], names=("a", "b"))
    assert study.rel2id == {"Na": 0, "CID": 1} and study.rel_names == {0: "NA", 1: "CID"}
    model, _ = T.load(cdr_run)
    assert EMB.model_rel2id(model, D.regime_rel2id("cdr")) == {"Na": 0, "CID": 1}
    with pytest.raises(ValueError, match="2 classes but the relation set has 97"):
        EMB.model_rel2id(model)  # DocRED's 97 columns would silently misname a CDR model's


def test_predict_on_labelled_cdr_documents(cdr_run, cdr):
    from pemscl import train as T

    model, cfg = T.load(cdr_run)
    preds = T.predict(model, cdr.test[:2], rel2id=D.regime_rel2id(cfg.regime))
    assert {p["r"] for p in preds} <= {"CID"}


def test_tiny_custom_regime_trains_end_to_end(tiny, tmp_path):
    from pemscl import train as T

    run = T.train(CF.preset("smoke", regime="tiny3-test", label="test-tiny3"), root=tmp_path / "runs",
                  progress=False)
    assert "f1" in run.scores["test"] and run.scores["n_docs"] == {"train": 4, "dev": 2, "test": 2}
    model, _ = T.load(run)
    assert model.config.num_classes == 4
    assert _predicted_relations(run) <= set(RELS.values())
