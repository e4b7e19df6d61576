"""ATLOP preprocessing on real documents (MiniLM WordPiece) and a tiny byte-level BPE built here."""

import copy
from pathlib import Path

import numpy as np
import pytest

from pemscl import data as D
from pemscl import features as F


@pytest.fixture(scope="module")
def tok():
    return F.load_tokenizer(F.default_encoder())


@pytest.fixture(scope="module")
def rel2id(data_dir):
    return D.load_rel2id(data_dir)


@pytest.fixture(scope="module")
def test_docs(data_dir):
    return D.load_docs("redocred/test_revised.json", root=data_dir)


@pytest.fixture(scope="module")
def test_feats(test_docs, tok, rel2id):
    return F.featurize(test_docs, tok, rel2id)


# Alice met Bob . / Bob lives in Paris .   entities: Alice, Bob (2 mentions), Paris
HAND_DOC = {
    "title": "hand",
    "sents": [["Alice", "met", "Bob", "."], ["Bob", "lives", "in", "Paris", "."]],
    "vertexSet": [[{"name": "Alice", "pos": [0, 1], "sent_id": 0, "type": "PER"}],
                  [{"name": "Bob", "pos": [2, 3], "sent_id": 0, "type": "PER"},
                   {"name": "Bob", "pos": [0, 1], "sent_id": 1, "type": "PER"}],
                  [{"name": "Paris", "pos": [3, 4], "sent_id": 1, "type": "LOC"}]],
    "labels": [{"h": 1, "t": 2, "r": "P551", "evidence": [1]}, {"h": 1, "t": 2, "r": "P551", "evidence": []},
               {"h": 1, "t": 2, "r": "P27", "evidence": []}, {"h": 0, "t": 1, "r": "P3373", "evidence": [0]}],
}


def test_default_encoder_is_the_minilm_folder(tok):
    assert (Path(F.default_encoder()) / "vocab.txt").is_file()
    assert F.special_ids(tok) == (tok.cls_token_id, tok.sep_token_id) == (101, 102)
    assert F.marker_ids(tok) == tok.convert_tokens_to_ids(["*"])


def test_hand_document_by_hand(tok, rel2id):
    (f,) = F.featurize([HAND_DOC], tok, rel2id)
    tokens = "[CLS] * alice * met * bob * . * bob * lives in * paris * . [SEP]".split()
    assert f["input_ids"] == tok.convert_tokens_to_ids(tokens)
    # indices: 1 *, 2 alice, 3 *, 5 *, 6 bob, 7 *, 9 *, 10 bob, 11 *, 14 *, 15 paris, 16 *
    assert f["entity_pos"] == [[(1, 4)], [(5, 8), (9, 12)], [(14, 17)]]
    assert f["hts"] == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    lab = f["labels"]
    assert lab.dtype == np.uint8 and lab.shape == (6, 97)
    expected = np.zeros((6, 97), np.uint8)
    expected[3, rel2id["P551"]] = 1  # (1, 2): the duplicated P551 is still a single 1
    expected[3, rel2id["P27"]] = 1
    expected[0, rel2id["P3373"]] = 1  # (0, 1)
    expected[[1, 2, 4, 5], 0] = 1  # the other pairs are NA
    assert (lab == expected).all()
    assert f["title"] == "hand" and f["doc_index"] == 0 and f["truncated"] is False


def test_truncation_boundary(tok, rel2id):
    # the hand document is 19 ids long: it fits max_len=19 exactly and is cut at 18
    (f,) = F.featurize([HAND_DOC], tok, rel2id, max_len=19)
    assert not f["truncated"] and len(f["input_ids"]) == 19
    with pytest.warns(UserWarning, match="1 document"):
        (f,) = F.featurize([HAND_DOC], tok, rel2id, max_len=8)
    # [CLS] * alice * met * bob [SEP]: Bob's first mention keeps its start (end clipped to SEP),
    # his second mention and Paris' only one fall past the cut
    assert f["input_ids"] == tok.convert_tokens_to_ids("[CLS] * alice * met * bob [SEP]".split())
    assert f["truncated"] is True
    assert f["entity_pos"] == [[(1, 4)], [(5, 7)], []]
    assert len(f["hts"]) == 6 and f["labels"].shape == (6, 97)  # pairs and labels are untouched


def test_real_documents(test_docs, test_feats, tok, rel2id):
    mark = F.marker_ids(tok)[0]
    first_words = []
    for d, f in zip(test_docs, test_feats):
        ids = f["input_ids"]
        assert ids[0] == 101 and ids[-1] == 102 and len(ids) <= 1024 and not f["truncated"]
        assert len(f["entity_pos"]) == len(d["vertexSet"])
        for ent, pos in zip(d["vertexSet"], f["entity_pos"]):
            assert len(pos) == len(ent)
            for m, (start, end) in zip(ent, pos):
                assert ids[start] == mark and ids[end - 1] == mark and start < end
                first_words.append((d["sents"][m["sent_id"]][m["pos"][0]], ids[start + 1]))
        n = len(d["vertexSet"])
        assert len(f["hts"]) == n * (n - 1)
        lab = f["labels"]
        assert lab.shape == (n * (n - 1), 97)
        assert ((lab[:, 0] == 1) == (lab[:, 1:].sum(1) == 0)).all()
        assert int(lab[:, 1:].sum()) == len({(x["h"], x["t"], x["r"]) for x in d["labels"]})
    # the token after a start marker is the first word piece of the mention's first word
    pieces = tok([w for w, _ in first_words], add_special_tokens=False)["input_ids"]
    assert all(p[0] == got for p, (_, got) in zip(pieces, first_words) if p)
    assert len(first_words) == 13_018  # mentions in Re-DocRED test


def test_real_labels_spot_checks(test_docs, test_feats, rel2id):
    d, f = test_docs[0], test_feats[0]
    row = {p: i for i, p in enumerate(f["hts"])}
    for lab in d["labels"][:3]:
        r = f["labels"][row[(lab["h"], lab["t"])]]
        assert r[rel2id[lab["r"]]] == 1 and r[0] == 0
    positive = {(x["h"], x["t"]) for x in d["labels"]}
    na = [p for p in f["hts"] if p not in positive][:3]
    for p in na:
        assert f["labels"][row[p]].tolist() == [1] + [0] * 96


def test_real_truncation_warns(test_docs, tok, rel2id):
    with pytest.warns(UserWarning, match=r"3 document\(s\) longer than max_len=64"):
        feats = F.featurize(test_docs[:3], tok, rel2id, max_len=64, source="cut")
    for d, f in zip(test_docs[:3], feats):
        assert f["truncated"] and len(f["input_ids"]) == 64 and f["input_ids"][-1] == 102
        assert len(f["entity_pos"]) == len(d["vertexSet"])
        assert all(s < 63 and e <= 63 for pos in f["entity_pos"] for s, e in pos)
        assert any(pos == [] for pos in f["entity_pos"])  # entities wholly past the cut stay, empty


def test_unknown_relation_is_an_error(tok, rel2id):
    doc = copy.deepcopy(HAND_DOC)
    doc["labels"][0]["r"] = "P0"
    with pytest.raises(ValueError, match="P0"):
        F.featurize([doc], tok, rel2id)


# --------------------------------------------------------------------------- byte-level BPE
def _bpe(extra_text=()):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    text = ["Yesterday Alice met Bob .", "Bob lives in Paris and Alice lives in Rome ."] + list(extra_text)
    core.train_from_iterator(text * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


BPE_DOC = {
    "title": "bpe",
    "sents": [["Yesterday", "Alice", "met", "Bob", "."], ["Bob", "lives", "in", "Paris", "."]],
    "vertexSet": [[{"name": "Alice", "pos": [1, 2], "sent_id": 0}],
                  [{"name": "Bob", "pos": [3, 4], "sent_id": 0}, {"name": "Bob", "pos": [0, 1], "sent_id": 1}],
                  [{"name": "Paris", "pos": [3, 4], "sent_id": 1}]],
    "labels": [{"h": 1, "t": 2, "r": "P551"}],
}


@pytest.mark.parametrize("spaced_marker", [False, True])
def test_byte_level_bpe(rel2id, spaced_marker):
    tok = _bpe(["a * b * c"] * 20 if spaced_marker else [])
    mark = F.marker_ids(tok)
    # without "Ġ*" in the vocabulary the bare "*" marks; with it, the mid-text form
    assert mark == tok.convert_tokens_to_ids(["Ġ*" if spaced_marker else "*"])
    (f,) = F.featurize([BPE_DOC], tok, rel2id)
    ids = f["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    enc = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert enc(" Alice") != enc("Alice")  # the leading space matters to byte-level BPE
    # the first word of the text goes without its leading space, every later word with it
    expected = ([tok.bos_token_id] + enc("Yesterday") + mark + enc(" Alice") + mark + enc(" met") + mark
                + enc(" Bob") + mark + enc(" .") + mark + enc(" Bob") + mark + enc(" lives") + enc(" in") + mark
                + enc(" Paris") + mark + enc(" .") + [tok.eos_token_id])
    assert ids == expected
    assert not tok.convert_ids_to_tokens(ids)[1].startswith("Ġ")
    sp = " " if spaced_marker else ""
    assert tok.decode(ids[1:-1]) == (f"Yesterday{sp}* Alice{sp}* met{sp}* Bob{sp}* .{sp}* Bob{sp}* lives in"
                                     f"{sp}* Paris{sp}* .")
    for ent, pos in zip(BPE_DOC["vertexSet"], f["entity_pos"]):
        for m, (start, end) in zip(ent, pos):
            assert ids[start] == mark[0] and ids[end - 1] == mark[0]
            word = BPE_DOC["sents"][m["sent_id"]][m["pos"][0]]
            assert ids[start + 1] == tok(" " + word, add_special_tokens=False)["input_ids"][0]
    assert f["labels"][3, rel2id["P551"]] == 1


# --------------------------------------------------------------------------- cache
def test_docs_hash():
    a = copy.deepcopy(HAND_DOC)
    b = {k: a[k] for k in reversed(list(a))}  # same content, other key order
    assert F.docs_hash([a]) == F.docs_hash([b]) and len(F.docs_hash([a])) == 64
    b["labels"] = b["labels"][:-1]
    assert F.docs_hash([a]) != F.docs_hash([b])


def test_cache_hit_does_not_retokenise(tmp_path, monkeypatch, test_docs, rel2id):
    docs = test_docs[:4]
    first = F.load_features(docs, F.default_encoder(), rel2id=rel2id, cache_dir=tmp_path, progress=False)
    files = list((tmp_path / "features").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temp file left behind

    def boom(*a, **k):
        raise AssertionError("featurize called on a cache hit")

    monkeypatch.setattr(F, "featurize", boom)
    again = F.load_features(docs, F.default_encoder(), rel2id=rel2id, cache_dir=tmp_path, progress=False)
    assert len(again) == 4
    for x, y in zip(first, again):
        assert x["input_ids"] == y["input_ids"] and x["entity_pos"] == y["entity_pos"] and x["hts"] == y["hts"]
        assert (x["labels"] == y["labels"]).all() and x["title"] == y["title"]
    # anything in the key changing is a miss: other labels, other max_len
    changed = copy.deepcopy(docs)
    changed[0]["labels"].pop()
    with pytest.raises(AssertionError, match="cache hit"):
        F.load_features(changed, F.default_encoder(), rel2id=rel2id, cache_dir=tmp_path, progress=False)
    with pytest.raises(AssertionError, match="cache hit"):
        F.load_features(docs, F.default_encoder(), rel2id=rel2id, max_len=512, cache_dir=tmp_path, progress=False)


def test_cache_dir_from_environment(tmp_path, monkeypatch, rel2id):
    monkeypatch.setenv("PEMSCL_CACHE", str(tmp_path))
    F.load_features([HAND_DOC], F.default_encoder(), rel2id=rel2id, progress=False)
    assert len(list((tmp_path / "features").glob("*.npz"))) == 1


class _RunsCode:
    """Unpickling this creates `marker`: what a crafted cache file could do instead."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return Path.touch, (Path(self.marker),)


def _planted(kind: str, marker: Path) -> bytes:
    import io
    import pickle

    if kind == "pickle":  # the old cache format: a pickled dict
        return pickle.dumps({"key": "any", "features": [_RunsCode(marker)]})
    buf = io.BytesIO()  # an .npz whose array is a pickled object array
    np.savez(buf, meta=np.array([_RunsCode(marker)], dtype=object))
    return buf.getvalue()


def test_cache_round_trip_gives_featurize_output_exactly(tmp_path, test_docs, tok, rel2id):
    docs = [HAND_DOC, *test_docs[:6]]
    fresh = F.featurize(docs, tok, rel2id)
    F.load_features(docs, tok, rel2id=rel2id, cache_dir=tmp_path, progress=False)
    cached = F.load_features(docs, tok, rel2id=rel2id, cache_dir=tmp_path, progress=False)
    for x, y in zip(fresh, cached, strict=True):
        assert {k: v for k, v in x.items() if k != "labels"} == {k: v for k, v in y.items() if k != "labels"}
        assert type(y["hts"][0]) is tuple and type(y["entity_pos"][0][0]) is tuple  # tuples stay tuples
        assert y["labels"].dtype == np.uint8 and np.array_equal(x["labels"], y["labels"])


@pytest.mark.parametrize("kind", ["pickle", "npz-with-object-array"])
def test_planted_pickle_as_feature_cache_is_ignored_and_rebuilt_never_run(tmp_path, kind, tok, rel2id):
    import pickle

    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_RunsCode(probe)))
    assert probe.exists()  # the planted object does run code when unpickled
    marker = tmp_path / "marker"
    path = tmp_path / "features" / f"{F.features_key([HAND_DOC], tok, rel2id, 1024)}.npz"
    path.parent.mkdir()
    path.write_bytes(_planted(kind, marker))
    with pytest.warns(UserWarning, match=f"ignoring unreadable feature cache {path}"):
        (f,) = F.load_features([HAND_DOC], tok, rel2id=rel2id, cache_dir=tmp_path, progress=False)
    assert not marker.exists()
    assert f["input_ids"] == F.featurize([HAND_DOC], tok, rel2id)[0]["input_ids"]
    with np.load(path, allow_pickle=False) as z:  # rebuilt in place, in the safe format
        assert "meta" in z.files and z["labels"].dtype == np.uint8


def test_stale_pickle_cache_of_the_old_format_is_rebuilt_not_read(tmp_path, monkeypatch, tok, rel2id):
    marker = tmp_path / "marker"
    stem = tmp_path / "features" / F.features_key([HAND_DOC], tok, rel2id, 1024)
    stem.parent.mkdir()
    stem.with_suffix(".pkl").write_bytes(_planted("pickle", marker))  # where the old format kept these
    calls = []
    real = F.featurize
    monkeypatch.setattr(F, "featurize", lambda *a, **k: calls.append(1) or real(*a, **k))
    F.load_features([HAND_DOC], tok, rel2id=rel2id, cache_dir=tmp_path, progress=False)
    assert calls == [1] and not marker.exists()
    assert sorted(p.name for p in stem.parent.iterdir()) == [stem.name + ".npz"]  # the stale file is gone
