"""pemscl.data on the real shared data: validation, checksums, regimes, noise, statistics, CLI."""

import copy
import hashlib
import json
import logging
import os
import shutil
import urllib.error
import urllib.request

import pytest

from pemscl import data as D
from pemscl.features import docs_hash


def _facts(docs):
    return {(i, lab["h"], lab["t"], lab["r"]) for i, d in enumerate(docs) for lab in d.get("labels", [])}


def _core_vertexset(doc):
    return [[(m["name"], tuple(m["pos"]), m["sent_id"], m["type"]) for m in e] for e in doc["vertexSet"]]


@pytest.fixture(scope="module")
def redocred_dev(data_dir):
    with open(data_dir / "redocred/dev_revised.json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def mini(data_dir):
    return D.load_regime("redocred-mini", root=data_dir)


@pytest.fixture(scope="module")
def oog(data_dir):
    return D.load_regime("oog-mini", root=data_dir)


def _link_tree(src, dst, files):
    """A data folder holding only `files` (symlinked from src) plus their SHA256SUMS lines."""
    lines = [ln for ln in (src / "SHA256SUMS").read_text().splitlines() if ln.split()[1][2:] in files]
    for f in files:
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src / f, dst / f)
    (dst / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return dst


# --------------------------------------------------------------------------- relations
def test_relation_vocabulary(data_dir):
    rel2id = D.load_rel2id(data_dir)
    assert len(rel2id) == D.NUM_CLASSES == 97 and rel2id[D.NA] == 0
    assert sorted(rel2id.values()) == list(range(97))
    inv = D.id2rel(rel2id)
    assert inv[0] == "Na" and inv[rel2id["P17"]] == "P17"
    names = D.relation_names(data_dir)
    assert names["Na"] == "no relation" and names["P17"] == "country" and len(names) == 97


def test_rel2id_must_be_exactly_the_docred_vocabulary(tmp_path, data_dir):
    rel2id = json.loads((data_dir / "meta/rel2id.json").read_text())
    del rel2id["P17"]
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/rel2id.json").write_text(json.dumps(rel2id))
    with pytest.raises(ValueError, match="Na"):
        D.load_rel2id(tmp_path)


# --------------------------------------------------------------------------- data directory
def test_data_dir_resolution(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("PEMSCL_DATA", str(data_dir))
    assert D.data_dir() == data_dir
    monkeypatch.setenv("PEMSCL_DATA", str(tmp_path / "nope"))
    with pytest.raises(D.DataNotFoundError, match="PEMSCL_DATA"):
        D.data_dir()
    monkeypatch.delenv("PEMSCL_DATA")
    repo = tmp_path / "ws" / "repo"
    (repo / "data").mkdir(parents=True)
    monkeypatch.setattr(D, "REPO", repo)
    with pytest.raises(D.DataNotFoundError) as e:  # no <repo>/data/meta, no ../shared/data
        D.data_dir()
    assert "PEMSCL_DATA" in str(e.value) and "thunlp/DocRED" in str(e.value)
    (tmp_path / "ws/shared/data").mkdir(parents=True)
    assert D.data_dir() == tmp_path / "ws/shared/data"
    (repo / "data/meta").mkdir()
    (repo / "data/meta/rel2id.json").write_text("{}")
    assert D.data_dir() == repo / "data"  # a filled <repo>/data wins over ../shared/data


# --------------------------------------------------------------------------- files and checksums
@pytest.mark.parametrize("rel, source", [("redocred/train_revised.json", "https://github.com/tonytan48/Re-DocRED"),
                                         ("docred/dev.json", "https://github.com/thunlp/DocRED"),
                                         ("meta/rel_info.json", "https://github.com/guojiapub/PEMSCL")])
def test_missing_file_names_file_folder_and_source(tmp_path, rel, source):
    with pytest.raises(D.DataNotFoundError) as e:
        D.data_file(rel, root=tmp_path)
    msg = str(e.value)
    assert rel in msg and str(tmp_path) in msg and source in msg
    assert isinstance(e.value, FileNotFoundError)


def test_checksum_mismatch_and_cache(tmp_path, data_dir):
    src = (data_dir / "meta/rel2id.json").read_bytes()
    expected = hashlib.sha256(src).hexdigest()
    (tmp_path / "meta").mkdir()
    target = tmp_path / "meta/rel2id.json"
    target.write_bytes(src)
    (tmp_path / "SHA256SUMS").write_text(f"{expected}  ./meta/rel2id.json\n")
    assert D.data_file("meta/rel2id.json", root=tmp_path) == target
    assert len(D.load_rel2id(tmp_path)) == 97

    bad = bytearray(src)
    bad[10] ^= 0x01  # one flipped bit, same size
    st = target.stat()
    target.write_bytes(bytes(bad))
    # same (path, mtime, size): the cached verdict stands, which is what makes reloads cheap
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert D.data_file("meta/rel2id.json", root=tmp_path) == target
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    actual = hashlib.sha256(bytes(bad)).hexdigest()
    with pytest.raises(D.ChecksumError) as e:
        D.data_file("meta/rel2id.json", root=tmp_path)
    assert "meta/rel2id.json" in str(e.value) and expected in str(e.value) and actual in str(e.value)
    assert D.data_file("meta/rel2id.json", root=tmp_path, verify=False) == target


def test_unlisted_file_loads_with_one_logged_warning(tmp_path, data_dir, caplog):
    _link_tree(data_dir, tmp_path, ["meta/rel2id.json", "redocred/test_revised.json"])
    (tmp_path / "docred").mkdir()
    os.symlink(data_dir / "docred/dev.subset.json", tmp_path / "docred/dev.json")
    with caplog.at_level(logging.WARNING, logger="pemscl.data"):
        docs = D.load_docs("docred/dev.json", root=tmp_path)
        D.load_docs("docred/dev.json", root=tmp_path)
    assert len(docs) == 316
    msgs = [r.getMessage() for r in caplog.records if "not listed" in r.getMessage()]
    assert len(msgs) == 1 and "docred/dev.json" in msgs[0] and "published 4,287,303" in msgs[0]


# --------------------------------------------------------------------------- validation
def _break(fn):
    def apply(doc):
        fn(doc)
        return doc
    return apply


def _pop_mention_key(key):
    return _break(lambda d: d["vertexSet"][1][0].pop(key))


BROKEN = {
    "missing title": (_break(lambda d: d.pop("title")), "title", False),
    "missing sents": (_break(lambda d: d.pop("sents")), "sents", True),
    "missing vertexSet": (_break(lambda d: d.pop("vertexSet")), "vertexSet", True),
    "empty vertexSet": (_break(lambda d: d.update(vertexSet=[], labels=[])), "vertexSet", True),
    "entity without mentions": (_break(lambda d: d["vertexSet"].__setitem__(1, [])), "vertexSet[1]", True),
    "mention without pos": (_pop_mention_key("pos"), "vertexSet[1][0].pos", True),
    "mention without sent_id": (_pop_mention_key("sent_id"), "vertexSet[1][0].sent_id", True),
    "mention without name": (_pop_mention_key("name"), "vertexSet[1][0].name", True),
    "sent_id out of range": (_break(lambda d: d["vertexSet"][1][0].update(sent_id=len(d["sents"]))),
                             "vertexSet[1][0].sent_id", True),
    "span past its sentence": (_break(lambda d: d["vertexSet"][1][0].update(
        pos=[0, len(d["sents"][d["vertexSet"][1][0]["sent_id"]]) + 1])), "vertexSet[1][0].pos", True),
    "empty span": (_break(lambda d: d["vertexSet"][1][0].update(pos=[2, 2])), "vertexSet[1][0].pos", True),
    "negative start": (_break(lambda d: d["vertexSet"][1][0].update(pos=[-1, 1])), "vertexSet[1][0].pos", True),
    "head out of range": (_break(lambda d: d["labels"][0].update(h=len(d["vertexSet"]))), "labels[0].h", True),
    "tail out of range": (_break(lambda d: d["labels"][0].update(t=-1)), "labels[0].t", True),
    "head equals tail": (_break(lambda d: d["labels"][0].update(t=d["labels"][0]["h"])), "labels[0].h", True),
    "unknown relation": (_break(lambda d: d["labels"][0].update(r="P999999")), "labels[0].r", True),
    "Na as a label": (_break(lambda d: d["labels"][0].update(r="Na")), "labels[0].r", True),
    "label without r": (_break(lambda d: d["labels"][0].pop("r")), "labels[0].r", True),
    "label without h": (_break(lambda d: d["labels"][0].pop("h")), "labels[0].h", True),
    "label without t": (_break(lambda d: d["labels"][0].pop("t")), "labels[0].t", True),
    # found by tests/test_fuzz_inputs.py: each was accepted, or raised TypeError, before
    "word not a string": (_break(lambda d: d["sents"][1].__setitem__(2, 7)), "sents[1][2]", True),
    "sentence not a list": (_break(lambda d: d["sents"].__setitem__(1, "a b")), "sents[1]", True),
    "name not a string": (_break(lambda d: d["vertexSet"][1][0].update(name=["x"])), "vertexSet[1][0].name", True),
    "type not a string": (_break(lambda d: d["vertexSet"][1][0].update(type=None)), "vertexSet[1][0].type", True),
    "sent_id a bool": (_break(lambda d: d["vertexSet"][1][0].update(sent_id=True)), "vertexSet[1][0].sent_id", True),
    "head a bool": (_break(lambda d: d["labels"][0].update(h=False)), "labels[0].h", True),
    "relation a list": (_break(lambda d: d["labels"][0].update(r=["P17"])), "labels[0].r", True),
    "evidence not a list": (_break(lambda d: d["labels"][0].update(evidence="0")), "labels[0].evidence", True),
    "evidence past the sentences": (_break(lambda d: d["labels"][0].update(evidence=[len(d["sents"])])),
                                    "labels[0].evidence[0]", True),
    "lone surrogate in a word": (_break(lambda d: d["sents"][0].__setitem__(0, "\ud83d")), "sents[0][0]", True),
    "lone surrogate in the title": (_break(lambda d: d.update(title="x\udc80")), "title", False),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_validate_names_source_index_title_and_field(kind, redocred_dev):
    breaker, fld, has_title = BROKEN[kind]
    docs = copy.deepcopy(redocred_dev[:3])
    title = docs[2]["title"]
    docs[2] = breaker(docs[2])
    with pytest.raises(D.DocumentError) as e:
        D.validate_docs(docs, source="my-file.json")
    msg = str(e.value)
    assert "my-file.json" in msg and "document 2" in msg and f"field {fld}:" in msg
    assert (repr(title) in msg) == has_title


def test_validate_rejects_non_dict_and_accepts_missing_labels(redocred_dev):
    with pytest.raises(D.DocumentError, match=r"src: document 1 .*field <document>"):
        D.validate_docs([redocred_dev[0], ["not", "a", "doc"]], source="src")
    unlabelled = {k: v for k, v in redocred_dev[0].items() if k != "labels"}
    docs = [unlabelled]
    assert D.validate_docs(docs, source="test") is docs
    assert "labels" not in docs[0]  # returned unchanged


def test_validate_uses_the_given_vocabulary(redocred_dev, data_dir):
    doc = copy.deepcopy(redocred_dev[0])
    with pytest.raises(D.DocumentError, match="unknown relation"):
        D.validate_docs([doc], rel2id={"Na": 0, "P999": 1})
    doc["labels"] = [{"h": 0, "t": 1, "r": "CID"}]
    D.validate_docs([doc], rel2id=D.CDR_REL2ID)
    with pytest.warns(D.DataCleaningWarning, match="cdr/dev.json: 91 duplicate labels removed"):  # NR ones too
        assert len(D.load_docs("cdr/dev.json", root=data_dir)) == 500  # CDR's own vocabulary is applied by load_docs


def test_duplicate_titles_warn_once_and_stay_apart(redocred_dev):
    docs = [redocred_dev[0], redocred_dev[1], copy.deepcopy(redocred_dev[0])]
    with pytest.warns(UserWarning, match="1 duplicate titles") as rec:
        out = D.validate_docs(docs, source="dups")
    assert len(rec) == 1 and redocred_dev[0]["title"] in str(rec[0].message)
    assert len(out) == 3


def test_duplicate_labels_are_dropped_counted_and_reported(redocred_dev, data_dir, tmp_path, capsys):
    # DocRED-format files as BC5CDR's: the first of each (h, t, r) kept, the rest counted and reported
    docs = copy.deepcopy(redocred_dev[:3])
    docs[0]["labels"] += [copy.deepcopy(docs[0]["labels"][1]), copy.deepcopy(docs[0]["labels"][1])]
    docs[2]["labels"].insert(0, copy.deepcopy(docs[2]["labels"][-1]))
    docs[1]["labels"][0]["evidence"] = [None, 0]
    n_file = sum(len(d["labels"]) for d in docs)
    path = tmp_path / "dups.json"
    path.write_text(json.dumps(docs))
    with pytest.warns(D.DataCleaningWarning) as rec:
        out = D.load_docs(path, root=data_dir)
    assert len(rec) == 1 and rec[0].message.counts["duplicates"] == 3 and rec[0].message.counts["evidence_none"] == 1
    assert str(path) in str(rec[0].message) and "3 duplicate labels removed" in str(rec[0].message)
    assert sum(len(d["labels"]) for d in out) == n_file - 3
    assert out[0]["labels"] == docs[0]["labels"][:-2] and out[2]["labels"] == docs[2]["labels"][:-1]
    assert out[1]["labels"][0]["evidence"] == [0]
    assert D.load_docs(path, root=data_dir, clean=False) == docs  # as in the file when asked
    assert docs[0]["labels"][-1] == docs[0]["labels"][1]  # the input is not modified

    # the regimes count them per split, in cleaning and notes, as the cdr regime does
    _link_tree(data_dir, tmp_path / "root", ["meta/rel2id.json", "redocred/test_revised.json"])
    (tmp_path / "root/redocred/dev_revised.json").write_text(json.dumps(docs))
    with pytest.warns(D.DataCleaningWarning, match="3 duplicate labels removed"):
        reg = D.load_regime("redocred-mini", root=tmp_path / "root")
    assert reg.cleaning == {"train": {"docs": 3, "labels_in_file": n_file, "no_relation": 0,
                                      "no_relation_on_positive_pair": 0, "duplicates": 3, "kept": n_file - 3,
                                      "evidence_none": 1, "missing_labels": 0}}
    assert reg.notes == [f"train: 3 duplicate labels removed; None removed from the evidence of 1 labels; "
                         f"{n_file - 3} labels kept."]
    assert [d["labels"] for d in reg.train] == [d["labels"] for d in out]
    with pytest.warns(D.DataCleaningWarning):
        assert D.main(["--data", str(tmp_path / "root"), "stats", "redocred-mini"]) == 0
    assert "3 duplicate labels removed" in capsys.readouterr().out


def test_document_file_that_is_not_json_names_it(tmp_path, data_dir):
    path = tmp_path / "broken.json"
    for content in (b'[{"title": "a",', b"\xff\xfe[]", "\ufeff[]".encode()):
        path.write_bytes(content)
        with pytest.raises(D.DocumentError, match=f"^{path}: not a valid UTF-8 JSON file"):
            D.load_docs(path, root=data_dir)


# --------------------------------------------------------------------------- regimes
def test_redocred_mini_split(mini, redocred_dev, data_dir):
    assert (len(mini.train), len(mini.dev), len(mini.test)) == (400, 100, 500)
    tr, dv = {d["title"] for d in mini.train}, {d["title"] for d in mini.dev}
    assert not tr & dv and tr | dv == {d["title"] for d in redocred_dev}
    # the documented rule: the 400 titles with the smallest sha256 train
    ranked = sorted(redocred_dev, key=lambda d: hashlib.sha256(d["title"].encode()).hexdigest())
    assert tr == {d["title"] for d in ranked[:400]}
    again = D.load_regime("redocred-mini", root=data_dir)
    assert [d["title"] for d in again.train] == [d["title"] for d in mini.train]
    assert mini.label_source == {"train": "gold", "dev": "gold", "test": "gold"} and mini.dev_gold is None
    # Table 1 of the paper: Re-DocRED dev 193,232 and test 198,670 entity pairs
    assert D.split_stats(mini.test)["entity_pairs"] == 198_670
    assert D.split_stats(mini.train)["entity_pairs"] + D.split_stats(mini.dev)["entity_pairs"] == 193_232


def test_oog_and_ogg_mini(oog, data_dir):
    assert (len(oog.train), len(oog.dev), len(oog.test), len(oog.dev_gold)) == (761, 138, 500, 138)
    assert oog.label_source == {"train": "original", "dev": "original", "test": "gold", "dev_gold": "gold"}
    with open(data_dir / "docred/dev.subset.json") as f:
        original = {d["title"]: d for d in json.load(f)}
    with open(data_dir / "redocred/dev_revised.json") as f:
        gold = {d["title"]: d for d in json.load(f)}
    n_gold_more = 0
    for o, g in zip(oog.dev, oog.dev_gold):
        assert o["title"] == g["title"] and _core_vertexset(o) == _core_vertexset(g)
        assert o["labels"] == original[o["title"]]["labels"] and g["labels"] == gold[g["title"]]["labels"]
        n_gold_more += len(g["labels"]) > len(o["labels"])
    assert n_gold_more > 100  # gold labels are denser on most documents
    assert not {d["title"] for d in oog.train} & ({d["title"] for d in oog.dev} | {d["title"] for d in oog.test})
    ogg = D.load_regime("ogg-mini", root=data_dir)
    assert ogg.label_source["dev"] == "gold" and ogg.dev_gold is None
    assert ogg.dev == oog.dev_gold and ogg.train == oog.train
    rows = D.regime_stats(oog)
    assert [r["split"] for r in rows] == ["train", "dev", "test", "dev_gold"]
    assert rows[1]["entity_pairs"] == rows[3]["entity_pairs"] and rows[1]["positive_facts"] < rows[3]["positive_facts"]
    assert oog.split("dev_gold") is oog.dev_gold
    with pytest.raises(KeyError):
        ogg.split("dev_gold")


def test_unknown_regime_lists_known_names():
    with pytest.raises(ValueError) as e:
        D.load_regime("redocred-tiny")
    assert all(n in str(e.value) for n in D.REGIMES) and "cdr" in str(e.value)


def test_docred_regimes_use_the_docred_relation_set(mini, data_dir):
    # rel2id None means meta/rel2id.json's 97 classes; nothing is cleaned on DocRED's files
    assert mini.rel2id is None and mini.cleaning == {} and mini.notes == []
    assert mini.relation_ids(data_dir) == D.load_rel2id(data_dir) == D.regime_rel2id("redocred-mini", data_dir)
    assert len(mini.relation_ids(data_dir)) == D.NUM_CLASSES
    assert D.cleaning_stats(mini) == []


@pytest.mark.parametrize("name, missing", [("redocred", ["redocred/train_revised.json"]),
                                           ("docred", ["docred/train_annotated.json", "docred/dev.json"]),
                                           ("oog", ["docred/train_annotated.json", "docred/dev.json"]),
                                           ("ogg", ["docred/train_annotated.json"])])
def test_full_regimes_need_the_full_files(tmp_path, data_dir, name, missing):
    _link_tree(data_dir, tmp_path, ["meta/rel2id.json", "redocred/dev_revised.json", "redocred/test_revised.json",
                                    "docred/test.json"])
    with pytest.raises(D.DataNotFoundError) as e:
        D.load_regime(name, root=tmp_path)
    msg = str(e.value)
    assert all(m in msg for m in missing) and str(tmp_path) in msg
    assert "redocred/dev_revised.json" not in msg  # only the missing files are named


def test_full_regimes_load_when_present(tmp_path, data_dir):
    # stand-ins for the full files (the subsets under the full names) exercise the same code
    _link_tree(data_dir, tmp_path, ["meta/rel2id.json", "redocred/dev_revised.json", "redocred/test_revised.json",
                                    "docred/test.json"])
    os.symlink(data_dir / "docred/train_annotated.subset.json", tmp_path / "docred/train_annotated.json")
    os.symlink(data_dir / "docred/dev.subset.json", tmp_path / "docred/dev.json")
    full = D.load_regime("oog", root=tmp_path)
    assert (len(full.train), len(full.dev), len(full.dev_gold)) == (761, 138, 138)
    docred = D.load_regime("docred", root=tmp_path)
    assert docred.label_source["test"] == "none" and len(docred.test) == 1000
    assert D.split_stats(docred.test)["positive_facts"] == 0
    assert D.load_regime("ogg", root=tmp_path).label_source == {"train": "original", "dev": "gold", "test": "gold"}


# --------------------------------------------------------------------------- noise
def test_noisy_drops_exactly_and_deterministically(mini):
    before = docs_hash(mini.train)
    n = len(_facts(mini.train))
    noisy = D.noisy(mini, drop=0.3, seed=1)
    kept = _facts(noisy.train)
    assert len(kept) == n - round(0.3 * n) and kept < _facts(mini.train)
    assert docs_hash(mini.train) == before  # input untouched
    assert noisy.name == "redocred-mini+drop0.3s1"
    assert noisy.label_source == {"train": "gold-dropped", "dev": "gold", "test": "gold"}
    assert noisy.dev == mini.dev and noisy.test == mini.test
    assert _facts(D.noisy(mini, drop=0.3, seed=1).train) == kept
    assert _facts(D.noisy(mini, drop=0.3, seed=2).train) != kept
    # kept labels are the original entries, evidence included
    for d_new, d_old in zip(noisy.train, mini.train):
        assert all(lab in d_old["labels"] for lab in d_new["labels"])


def test_noisy_extremes_and_hand_example(mini):
    assert D.noisy(mini, drop=0.0).train == mini.train
    none_left = D.noisy(mini, drop=1.0, splits=("train", "dev"))
    assert not _facts(none_left.train) and not _facts(none_left.dev) and none_left.test == mini.test
    assert none_left.name == "redocred-mini+drop1s0[train,dev]"
    with pytest.raises(ValueError):
        D.noisy(mini, drop=1.5)
    # 3 unique facts, one of them labelled twice: dropping 2/3 removes round(2) facts,
    # and the duplicated fact's two entries go together or stay together
    doc = {"title": "t", "sents": [["a", "b", "c"]], "vertexSet": [[{"name": "a", "pos": [0, 1], "sent_id": 0}],
                                                                   [{"name": "b", "pos": [1, 2], "sent_id": 0}]],
           "labels": [{"h": 0, "t": 1, "r": "P17"}, {"h": 0, "t": 1, "r": "P17"}, {"h": 0, "t": 1, "r": "P27"},
                      {"h": 1, "t": 0, "r": "P17"}]}
    reg = D.Regime("hand", [doc], [], [], {"train": "gold"})
    for seed in range(6):
        out = D.noisy(reg, drop=2 / 3, seed=seed).train[0]["labels"]
        assert len({(x["h"], x["t"], x["r"]) for x in out}) == 1
        assert len(out) == (2 if out[0] == {"h": 0, "t": 1, "r": "P17"} else 1)
    assert len(reg.train[0]["labels"]) == 4


# --------------------------------------------------------------------------- statistics
def test_split_stats_and_relation_counts_by_hand():
    m = lambda i: [{"name": "x", "pos": [i, i + 1], "sent_id": 0}]  # noqa: E731
    doc = {"title": "t", "sents": [["a", "b", "c"]], "vertexSet": [m(0), m(1), m(2) + m(1)],
           "labels": [{"h": 0, "t": 1, "r": "P17"}, {"h": 0, "t": 1, "r": "P27"}, {"h": 0, "t": 1, "r": "P17"},
                      {"h": 2, "t": 0, "r": "P17"}]}
    st = D.split_stats([doc, {**doc, "labels": []}])
    # 3 entities -> 6 ordered pairs per doc; facts {(0,1,P17),(0,1,P27),(2,0,P17)}; pairs {(0,1),(2,0)}
    assert st == {"docs": 2, "entities": 6, "mentions": 8, "entity_pairs": 12, "positive_facts": 3,
                  "positive_pairs": 2, "na_pairs": 10}
    assert D.relation_counts([doc]) == {"P17": 2, "P27": 1}


def test_label_comparison_matches_the_readme(data_dir):
    original = D.load_docs("docred/dev.subset.json", root=data_dir)
    gold = D.load_docs("redocred/dev_revised.json", root=data_dir) + D.load_docs("redocred/test_revised.json",
                                                                               root=data_dir)
    c = D.label_comparison(original, gold)
    assert (c["n_docs"], c["original_facts"], c["gold_facts"], c["both"]) == (283, 3627, 9936, 3608)
    assert c["vertexset_differs"] == 33 and c["missing_from_original"] == pytest.approx(1 - 3608 / 9936)
    pairs = D.paired_documents(original, gold)
    assert sum(j < 500 for _, j in pairs) == 138  # 138 in Re-DocRED dev, 145 in test
    for i, j in D.match_documents(original, gold).vertexset_differs:
        assert original[i]["title"] == gold[j]["title"] and _core_vertexset(original[i]) != _core_vertexset(gold[j])
    rows = D.label_comparison_per_relation(original, gold, D.relation_names(data_dir))
    assert sum(r["gold"] for r in rows) == 9936 and sum(r["original"] for r in rows) == 3627
    assert sum(r["both"] for r in rows) == 3608
    assert rows[0]["gold"] == max(r["gold"] for r in rows) and rows[0]["name"] != rows[0]["relation"]


# --------------------------------------------------------------------------- command line
def test_cli_check_and_stats(data_dir, capsys):
    assert D.main(["--data", str(data_dir), "check"]) == 0
    out = capsys.readouterr().out
    assert "redocred/dev_revised.json" in out and "all listed files verified" in out
    assert D.main(["--data", str(data_dir), "stats", "redocred-mini"]) == 0
    out = capsys.readouterr().out
    assert "redocred-mini" in out and "400" in out and "198,670" in out


def test_cli_check_reports_a_damaged_file(tmp_path, data_dir, capsys):
    (tmp_path / "meta").mkdir()
    shutil.copy(data_dir / "meta/rel2id.json", tmp_path / "meta/rel2id.json")
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  ./meta/rel2id.json\n" + "1" * 64 + "  ./cdr/dev.json\n")
    assert D.main(["--data", str(tmp_path), "check"]) == 1
    out = capsys.readouterr().out
    assert "CHECKSUM MISMATCH" in out and "MISSING" in out


def test_fetch_offline_is_a_clear_message(tmp_path, monkeypatch, capsys):
    def offline(*a, **k):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert D.main(["fetch", "--dest", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "https://raw.githubusercontent.com/tonytan48/Re-DocRED/main/data/train_revised.json" in out
    assert "by hand" in out and "thunlp/DocRED" in out and "Traceback" not in out
    assert not list((tmp_path / "redocred").iterdir())  # no partial files left behind
