"""The official DocRED scorer on hand-worked examples and on the real Re-DocRED / DocRED files.

Every expected number below is worked out by hand in the comments next to it.
"""

import json

import numpy as np
import pytest

from pemscl import evaluate as E


def ment(name, sent_id):
    return {"name": name, "pos": [0, 1], "sent_id": sent_id, "type": "LOC"}


def lab(h, t, r):
    return {"h": h, "t": t, "r": r, "evidence": []}


# Two gold documents.
#   Alpha: 0 Paris (sent 0) | 1 France (sent 0), French Republic (sent 2) | 2 Seine (sent 1), the Seine (sent 2)
#          facts (0,1,P17) [labelled twice], (2,1,P17), (0,1,P131)   -> 3 unique
#   Beta:  0 Berlin (sent 0) | 1 Germany (sent 1)
#          facts (0,1,P17)                                           -> 1
#   unique gold facts: 4
ALPHA = {"title": "Alpha", "sents": [["w"]] * 3,
         "vertexSet": [[ment("Paris", 0)], [ment("France", 0), ment("French Republic", 2)],
                       [ment("Seine", 1), ment("the Seine", 2)]],
         "labels": [lab(0, 1, "P17"), lab(0, 1, "P17"), lab(2, 1, "P17"), lab(0, 1, "P131")]}
BETA = {"title": "Beta", "sents": [["w"]] * 2,
        "vertexSet": [[ment("Berlin", 0)], [ment("Germany", 1)]],
        "labels": [lab(0, 1, "P17")]}
GOLD = [ALPHA, BETA]


def pred(title, h, t, r, **extra):
    return {"title": title, "h_idx": h, "t_idx": t, "r": r, **extra}


# Predictions: 6 rows, 5 unique (one exact duplicate), 3 correct, 1 gold fact missed.
PREDS = [
    pred("Alpha", 0, 1, "P17", score=0.9),  # correct (extra key ignored)
    pred("Alpha", 0, 1, "P17"),             # duplicate of the row above: counted once
    pred("Alpha", 2, 1, "P17"),             # correct
    pred("Alpha", 2, 1, "P131"),            # wrong relation for a gold pair
    pred("Beta", 0, 1, "P17"),              # correct
    pred("Beta", 1, 0, "P17"),              # wrong direction
]                                           # missed: Alpha (0,1,P131)

# A training document whose mention names make exactly 2 of the 3 correct predictions "in train":
#   (Berlin, Germany, P17)          -> Beta (0,1,P17) correct: in train
#   (Germany, Berlin, P17)          -> matches only the WRONG Beta (1,0,P17): never counted
#   (Paris, French Republic, P17)   -> Alpha (0,1,P17) through France's second mention: in train
#   (Seine, France, P131)           -> names of Alpha (2,1) but the correct prediction there is P17: not
TRAIN = [{"title": "T", "sents": [["w"]],
          "vertexSet": [[ment("Berlin", 0)], [ment("Germany", 0)], [ment("Paris", 0)],
                        [ment("French Republic", 0)], [ment("Seine", 0)], [ment("France", 0)]],
          "labels": [lab(0, 1, "P17"), lab(1, 0, "P17"), lab(2, 3, "P17"), lab(4, 5, "P131")]}]


# --------------------------------------------------------------------------- (1) P / R / F1
def test_worked_example_precision_recall_f1():
    s = E.score(PREDS, GOLD)
    # 5 unique predictions, 4 unique gold facts, 3 correct
    assert (s["n_pred"], s["n_gold"], s["n_correct"]) == (5, 4, 3)
    assert s["precision"] == pytest.approx(3 / 5)
    assert s["recall"] == pytest.approx(3 / 4)
    # F1 = 2 * 0.6 * 0.75 / (0.6 + 0.75) = 0.9 / 1.35 = 2/3
    assert s["f1"] == pytest.approx(2 / 3)
    # no training set: nothing is in train, Ign equals the plain numbers
    assert s["n_correct_in_train"] == 0 and s["n_train_facts"] == 0
    assert s["ign_f1"] == pytest.approx(s["f1"])


# --------------------------------------------------------------------------- (2) Ign F1
def test_ign_f1_leaves_out_correct_predictions_seen_in_train():
    s = E.score(PREDS, GOLD, train_docs=TRAIN)
    assert s["n_correct_in_train"] == 2
    # Ign P = (3 - 2) / (5 - 2) = 1/3; recall is not adjusted: 3/4
    assert s["ign_precision"] == pytest.approx(1 / 3)
    assert s["ign_recall"] == s["recall"] == pytest.approx(3 / 4)
    # Ign F1 = 2 * (1/3) * (3/4) / (1/3 + 3/4) = (1/2) / (13/12) = 6/13
    assert s["ign_f1"] == pytest.approx(6 / 13)
    # the plain scores do not move
    assert s["f1"] == pytest.approx(2 / 3)


def test_train_fact_set_and_precomputed_facts_agree():
    facts = E.train_fact_set(TRAIN)
    assert facts == {("Berlin", "Germany", "P17"), ("Germany", "Berlin", "P17"),
                     ("Paris", "French Republic", "P17"), ("Seine", "France", "P131")}
    from_facts = E.score(PREDS, GOLD, train_facts=[list(f) for f in facts])  # as a .fact file holds them
    assert from_facts == E.score(PREDS, GOLD, train_docs=TRAIN)
    with pytest.raises(ValueError, match="not both"):
        E.score(PREDS, GOLD, train_docs=TRAIN, train_facts=facts)


def test_train_fact_set_takes_every_mention_pair():
    # head with 2 mentions, tail with 3 -> 2 * 3 = 6 name facts from one label
    doc = {"title": "x", "vertexSet": [[ment("a", 0), ment("A", 0)], [ment("b", 0), ment("B", 0), ment("bb", 0)]],
           "labels": [lab(0, 1, "P1")]}
    assert len(E.train_fact_set([doc])) == 6


# --------------------------------------------------------------------------- (3) empty
def test_empty_predictions_score_zero_without_error():
    s = E.score([], GOLD, train_docs=TRAIN)
    for key in ("precision", "recall", "f1", "ign_precision", "ign_recall", "ign_f1"):
        assert s[key] == 0.0, key
    assert (s["n_pred"], s["n_gold"], s["n_correct"], s["n_correct_in_train"]) == (0, 4, 0, 0)
    # and no gold at all: every denominator is 0, still 0 not NaN
    s = E.score([], [dict(BETA, labels=[])])
    assert s["f1"] == 0.0 and s["recall"] == 0.0


# --------------------------------------------------------------------------- (4) titles
def test_unknown_title_is_an_error_naming_it():
    with pytest.raises(ValueError, match="Gamma"):
        E.score(PREDS + [pred("Gamma", 0, 1, "P17")], GOLD)


def test_duplicate_titles_need_doc_index():
    a = {"title": "Same", "vertexSet": [[ment("x", 0)], [ment("y", 0)]], "labels": [lab(0, 1, "P17")]}
    b = {"title": "Same", "vertexSet": [[ment("x", 0)], [ment("y", 0)]], "labels": [lab(1, 0, "P27")]}
    p = pred("Same", 0, 1, "P17")
    with pytest.raises(ValueError, match="doc_index"):
        E.score([p], [a, b])
    # doc_index wins: the same fact is right in document 0 and wrong in document 1
    assert E.score([dict(p, doc_index=0)], [a, b])["n_correct"] == 1
    assert E.score([dict(p, doc_index=1)], [a, b])["n_correct"] == 0
    # gold holds 2 facts, one per document: P = 1/1, R = 1/2
    s = E.score([dict(p, doc_index=0)], [a, b])
    assert (s["precision"], s["recall"]) == (1.0, 0.5)
    # a doc_index whose document has another title is a misalignment
    with pytest.raises(ValueError, match="disagrees"):
        E.score([dict(pred("Alpha", 0, 1, "P17"), doc_index=1)], GOLD)


def test_misaligned_predictions_and_unlabelled_gold_are_errors():
    with pytest.raises(ValueError, match="outside"):
        E.score([pred("Beta", 0, 2, "P17")], GOLD)  # Beta has 2 entities
    with pytest.raises(ValueError, match="no 'r'"):
        E.score([{"title": "Beta", "h_idx": 0, "t_idx": 1}], GOLD)
    with pytest.raises(ValueError, match="no 'labels'"):
        E.score([], [{"title": "test doc", "vertexSet": []}])


# --------------------------------------------------------------------------- (5) real data
@pytest.fixture(scope="module")
def redocred_dev(data_dir):
    return json.loads((data_dir / "redocred/dev_revised.json").read_text())


def test_perfect_predictions_on_real_redocred_dev(redocred_dev):
    unique = {(d["title"], l["h"], l["t"], l["r"]) for d in redocred_dev for l in d["labels"]}
    s = E.score(E.predictions_from_labels(redocred_dev), redocred_dev)
    assert s["f1"] == 1.0 and s["precision"] == 1.0 and s["recall"] == 1.0
    assert s["n_gold"] == s["n_pred"] == s["n_correct"] == len(unique)


def test_ign_against_real_docred_fact_file(redocred_dev, data_dir):
    facts = E.read_fact_file(data_dir / "docred/train_annotated.fact")
    assert len(facts) == 52293  # the README's count; the file has no duplicates
    gold = E.predictions_from_labels(redocred_dev)
    gold_keys = {(p["title"], p["h_idx"], p["t_idx"], p["r"]) for p in gold}
    # all gold facts plus every reversed pair that is not itself gold (wrong predictions)
    wrong = [pred(p["title"], p["t_idx"], p["h_idx"], p["r"]) for p in gold
             if (p["title"], p["t_idx"], p["h_idx"], p["r"]) not in gold_keys]
    n_wrong = len({(p["title"], p["h_idx"], p["t_idx"], p["r"]) for p in wrong})
    # count the correct facts seen in train directly from the mention names
    by_title = {d["title"]: d for d in redocred_dev}
    k = 0
    for title, h, t, r in gold_keys:
        ents = by_title[title]["vertexSet"]
        k += any((m["name"], n["name"], r) in facts for m in ents[h] for n in ents[t])
    assert 0 < k < len(gold_keys)

    s = E.score(gold + wrong, redocred_dev, train_facts=facts)
    c = len(gold_keys)
    assert s["n_correct_in_train"] == k
    assert s["recall"] == 1.0 and s["ign_recall"] == 1.0
    assert s["precision"] == pytest.approx(c / (c + n_wrong))
    assert s["ign_precision"] == pytest.approx((c - k) / (c + n_wrong - k))
    assert s["ign_f1"] < s["f1"] < 1.0


def test_train_docs_rebuild_the_official_fact_file(data_dir):
    # the .fact file was written by the official scorer from the full DocRED train set; the
    # facts we build from a subset of those documents must all be in it
    subset = json.loads((data_dir / "docred/train_annotated.subset.json").read_text())
    ours = E.train_fact_set(subset)
    assert len(ours) > 10000
    assert ours <= E.read_fact_file(data_dir / "docred/train_annotated.fact")


# --------------------------------------------------------------------------- (6) breakdowns
def test_relation_groups_rank_by_entity_pairs():
    d0 = {"title": "d0", "vertexSet": [[ment("a", 0)]] * 4,
          "labels": [lab(0, 1, "P17"), lab(0, 1, "P17"),      # same pair twice: 1 pair
                     lab(0, 2, "P17"), lab(0, 1, "P27"),
                     lab(1, 2, "P131"), lab(2, 3, "P6")]}
    d1 = {"title": "d1", "vertexSet": [[ment("a", 0)]] * 3,
          "labels": [lab(0, 1, "P17"),                        # same (h, t) as in d0, another doc: new pair
                     lab(0, 1, "P27"), lab(0, 1, "P131"), lab(1, 2, "P19")]}
    # pairs: P17 3, P27 2, P131 2, P6 1, P19 1; ties by number (P27 before P131, P6 before P19)
    g = E.relation_groups([d0, d1], n_head=2, n_tail=2)
    assert g == {"head": ["P17", "P27"], "mid": ["P131"], "tail": ["P6", "P19"]}
    # with a vocabulary ("Na" skipped), an unseen relation counts 0 and lands at the very end
    vocab = {"Na": 0, "P6": 1, "P17": 2, "P19": 3, "P27": 4, "P131": 5, "P999": 6}
    g = E.relation_groups([d0, d1], n_head=2, n_tail=2, relations=vocab)
    assert g == {"head": ["P17", "P27"], "mid": ["P131", "P6"], "tail": ["P19", "P999"]}
    # fewer relations than n_head + n_tail: head fills first
    assert E.relation_groups([d0, d1], n_head=4, n_tail=20) == {
        "head": ["P17", "P27", "P131", "P6"], "mid": [], "tail": ["P19"]}


def test_group_and_per_relation_scores():
    groups = {"g17": ["P17"], "g131": ["P131"]}
    s = E.group_scores(PREDS, GOLD, groups)
    # P17: predicted A(0,1) A(2,1) B(0,1) B(1,0) = 4, correct 3, gold 3 -> P 3/4, R 1, F1 6/7
    assert (s["g17"]["n_pred"], s["g17"]["n_correct"], s["g17"]["n_gold"]) == (4, 3, 3)
    assert s["g17"]["precision"] == pytest.approx(0.75) and s["g17"]["recall"] == 1.0
    assert s["g17"]["f1"] == pytest.approx(6 / 7)
    # P131: predicted A(2,1) wrong, gold A(0,1) missed -> all 0
    assert (s["g131"]["n_pred"], s["g131"]["n_correct"], s["g131"]["n_gold"]) == (1, 0, 1)
    assert s["g131"]["f1"] == 0.0
    pr = E.per_relation(PREDS, GOLD)
    assert set(pr) == {"P17", "P131"}
    assert (pr["P17"]["tp"], pr["P17"]["n_pred"], pr["P17"]["n_gold"]) == (3, 4, 3)
    assert pr["P17"]["f1"] == pytest.approx(6 / 7)
    assert (pr["P131"]["tp"], pr["P131"]["n_pred"], pr["P131"]["n_gold"]) == (0, 1, 1)


def test_intra_inter_split_by_shared_sentence():
    s = E.intra_inter_scores(PREDS, GOLD)
    # Alpha: Paris{0}, France{0,2}, Seine{1,2}: (0,1) shares sent 0, (2,1) shares sent 2 (second
    # mentions) -> every Alpha pair is intra. Beta: Berlin{0}, Germany{1} -> inter.
    # intra: gold 3 (A 0-1 P17, A 2-1 P17, A 0-1 P131); predicted 3 (A 0-1 P17, A 2-1 P17, A 2-1 P131), 2 correct
    assert (s["intra"]["n_pred"], s["intra"]["n_correct"], s["intra"]["n_gold"]) == (3, 2, 3)
    assert s["intra"]["precision"] == pytest.approx(2 / 3) and s["intra"]["recall"] == pytest.approx(2 / 3)
    # inter: gold 1 (B 0-1); predicted 2 (B 0-1 correct, B 1-0 wrong) -> P 1/2, R 1, F1 2/3
    assert (s["inter"]["n_pred"], s["inter"]["n_correct"], s["inter"]["n_gold"]) == (2, 1, 1)
    assert s["inter"]["precision"] == 0.5 and s["inter"]["recall"] == 1.0
    assert s["inter"]["f1"] == pytest.approx(2 / 3)


def test_full_report_is_flat_and_consistent():
    rep = E.full_report(PREDS, GOLD, train_docs=TRAIN)
    assert rep["f1"] == pytest.approx(2 / 3) and rep["ign_f1"] == pytest.approx(6 / 13)
    # TRAIN has P17 on 3 pairs and P131 on 1: with n_head=10 both are head relations, so head = all
    assert rep["head_f1"] == pytest.approx(rep["f1"]) and rep["head_n_gold"] == 4
    assert rep["mid_n_gold"] == 0 and rep["tail_n_gold"] == 0 and rep["tail_f1"] == 0.0
    assert rep["intra_n_correct"] == 2 and rep["inter_f1"] == pytest.approx(2 / 3)
    assert all(not isinstance(v, dict) for v in rep.values())
    # without training documents: no head/mid/tail keys, and nothing counts as in train
    rep = E.full_report(PREDS, GOLD)
    assert "head_f1" not in rep and rep["ign_f1"] == pytest.approx(rep["f1"])


# --------------------------------------------------------------------------- (7) IO
def test_predictions_round_trip_and_validation(tmp_path):
    preds = E.predictions_from_labels(GOLD)
    # from_labels keeps label order, duplicates included: Alpha's 4 labels then Beta's 1
    assert len(preds) == 5 and preds[0] == {"title": "Alpha", "h_idx": 0, "t_idx": 1, "r": "P17"}
    preds.append(pred("Beta", np.int64(1), np.int64(0), "P17"))  # numpy ints from model code
    path = tmp_path / "out" / "predictions.json"
    E.write_predictions(preds, path)
    back = E.read_predictions(path)
    assert back == [dict(p, h_idx=int(p["h_idx"]), t_idx=int(p["t_idx"])) for p in preds]
    assert [p.name for p in path.parent.iterdir()] == ["predictions.json"]  # no temp file left
    # 6 rows: the 5 from labels are the 4 unique gold facts, the appended one is wrong: P 4/5, R 4/4
    s = E.score(back, GOLD)
    assert (s["precision"], s["recall"]) == (pytest.approx(0.8), 1.0)

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([pred("Alpha", 0, 1, "P17"), {"title": "Alpha", "h_idx": 0, "r": "P17"}]))
    with pytest.raises(ValueError, match=r"prediction 1 has no 't_idx'"):
        E.read_predictions(bad)
    bad.write_text(json.dumps({"title": "Alpha"}))
    with pytest.raises(ValueError, match="JSON list"):
        E.read_predictions(bad)
    bad.write_text(json.dumps([pred("Alpha", 0.5, 1, "P17")]))
    with pytest.raises(ValueError, match="h_idx must be an integer"):
        E.read_predictions(bad)


def test_prediction_errors_name_file_entry_and_field(tmp_path):
    path = tmp_path / "pred.json"
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps(GOLD))
    cases = [  # (row 1 of the file, field named) -- each raised TypeError or was accepted before
        (pred(["Alpha"], 0, 1, "P17"), "title"),         # TypeError: unhashable type: 'list'
        (pred(3, 0, 1, "P17"), "title"),
        (pred("Alpha", 0, 1, ""), "r"),                  # accepted as a (wrong) fact
        (pred("Alpha", 0, 1, "Na"), "r"),                # accepted as a (wrong) fact
        (pred("Alpha", 0, True, "P17"), "t_idx"),
        (pred("Alpha", 0, 3, "P17"), "t_idx"),           # out of range: named the pair, not the file
        (pred("Gamma", 0, 1, "P17"), "title"),           # unknown title
        (pred("Alpha", 0, 1, "P17", doc_index=2), "doc_index"),
        (pred("Beta", 0, 1, "P17", doc_index=0), "title"),
        ("Alpha", "<prediction>"),
    ]
    for row, field in cases:
        path.write_text(json.dumps([pred("Alpha", 0, 1, "P17"), row]))
        with pytest.raises(E.PredictionError) as e:
            E.main([str(path), str(gold)])
        assert (e.value.source, e.value.index, e.value.field) == (str(path), 1, field), (row, str(e.value))
        assert str(e.value).startswith(f"{path}: prediction 1") and field in str(e.value)
        assert isinstance(e.value, ValueError)
    # in memory: the same errors, without a file
    with pytest.raises(E.PredictionError, match=r"^prediction 0: field h_idx: entity pair \(5, 0\) outside"):
        E.score([pred("Beta", 5, 0, "P17")], GOLD)
    # an unknown relation is a wrong prediction, as in the official script -- or an error, given a vocabulary
    path.write_text(json.dumps([pred("Alpha", 0, 1, "P999")]))
    assert E.score(E.read_predictions(path), GOLD)["n_pred"] == 1
    rel2id = tmp_path / "rel2id.json"
    rel2id.write_text(json.dumps({"Na": 0, "P17": 1, "P131": 2}))
    with pytest.raises(E.PredictionError, match="field r: unknown relation 'P999'"):
        E.main([str(path), str(gold), "--relations", str(rel2id)])
    # the whole file: not JSON, not UTF-8
    for content in (b"[{", b"\xff[]"):
        path.write_bytes(content)
        with pytest.raises(E.PredictionError, match="not a valid UTF-8 JSON file") as e:
            E.read_predictions(path)
        assert (e.value.source, e.value.index) == (str(path), None) and str(path) in str(e.value)


def test_cli_names_a_broken_gold_file_and_exits_2(tmp_path):
    import subprocess
    import sys

    from pemscl.data import DocumentError

    gold = json.loads(json.dumps(GOLD))
    del gold[1]["labels"][0]["h"]  # was a KeyError while scoring
    for name, obj in (("pred.json", PREDS), ("gold.json", gold)):
        (tmp_path / name).write_text(json.dumps(obj))
    with pytest.raises(DocumentError, match=rf"^{tmp_path / 'gold.json'}: document 1 \(title 'Beta'\): field labels\[0\].h: missing"):
        E.main([str(tmp_path / "pred.json"), str(tmp_path / "gold.json")])
    (tmp_path / "gold.json").write_text(json.dumps([dict(BETA, labels=[]), {k: v for k, v in ALPHA.items() if k != "labels"}]))
    with pytest.raises(DocumentError, match="document 1 .*field labels: missing"):
        E.main([str(tmp_path / "pred.json"), str(tmp_path / "gold.json")])
    # from the shell: one line on stderr, exit status 2
    (tmp_path / "pred.json").write_text("[{")
    (tmp_path / "gold.json").write_text(json.dumps(GOLD))
    out = subprocess.run([sys.executable, "-m", "pemscl.evaluate", str(tmp_path / "pred.json"),
                          str(tmp_path / "gold.json")], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith(f"error: {tmp_path / 'pred.json'}: not a valid UTF-8 JSON")
    assert "Traceback" not in out.stderr


def test_cli_scores_files(tmp_path, capsys):
    for name, obj in (("pred.json", PREDS), ("gold.json", GOLD), ("train.json", TRAIN)):
        (tmp_path / name).write_text(json.dumps(obj))
    rep = E.main([str(tmp_path / "pred.json"), str(tmp_path / "gold.json"), "--train", str(tmp_path / "train.json")])
    assert rep["ign_f1"] == pytest.approx(6 / 13)
    assert json.loads(capsys.readouterr().out)["f1"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- (8) per-document counts
# A third gold document with no prediction at all, so one row is all-missed.
GAMMA = {"title": "Gamma", "sents": [["w"]],
         "vertexSet": [[ment("Rome", 0)], [ment("Italy", 0)]], "labels": [lab(0, 1, "P17")]}


def test_doc_counts_hand_worked():
    c = E.doc_counts(PREDS, GOLD + [GAMMA], train_docs=TRAIN, groups={"head": ["P17"], "tail": ["P131"]})
    assert set(c) == {"all", "head", "tail"}
    # rows are [predicted, correct, correct_in_train, gold], one per document in gold order
    # Alpha: predicted (0,1,P17) (2,1,P17) (2,1,P131) = 3 (the duplicate once); correct 2; of those
    #        (0,1,P17) is in train via (Paris, French Republic); gold 3
    # Beta:  predicted (0,1,P17) (1,0,P17) = 2; correct 1, in train via (Berlin, Germany); gold 1
    # Gamma: nothing predicted, 1 gold fact
    assert c["all"] == [[3, 2, 1, 3], [2, 1, 1, 1], [0, 0, 0, 1]]
    # only P17 facts: Alpha loses the wrong P131 prediction and the missed P131 gold fact
    assert c["head"] == [[2, 2, 1, 2], [2, 1, 1, 1], [0, 0, 0, 1]]
    assert c["tail"] == [[1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    s = E.scores_from_counts(c["all"])
    # totals [5, 3, 2, 5]: P = 3/5, R = 3/5, F1 = 3/5; Ign P = (3-2)/(5-2) = 1/3,
    # Ign F1 = 2 * (1/3) * (3/5) / (1/3 + 3/5) = (2/5) / (14/15) = 3/7
    assert (s["n_pred"], s["n_correct"], s["n_correct_in_train"], s["n_gold"]) == (5, 3, 2, 5)
    assert s["f1"] == pytest.approx(3 / 5) and s["ign_precision"] == pytest.approx(1 / 3)
    assert s["ign_f1"] == pytest.approx(3 / 7) and s["ign_recall"] == s["recall"]
    full = E.score(PREDS, GOLD + [GAMMA], train_docs=TRAIN)
    assert s == {k: v for k, v in full.items() if k != "n_train_facts"}
    # no training set: nothing in train; both training sets at once: refused, as in score()
    assert [r[2] for r in E.doc_counts(PREDS, GOLD)["all"]] == [0, 0]
    with pytest.raises(ValueError, match="not both"):
        E.doc_counts(PREDS, GOLD, train_docs=TRAIN, train_facts=E.train_fact_set(TRAIN))
    with pytest.raises(ValueError, match='"all"'):
        E.doc_counts(PREDS, GOLD, groups={"all": ["P17"]})
    with pytest.raises(ValueError, match="has 3 fields, expected 4"):
        E.scores_from_counts([[1, 1, 0]])


def _perturbed(docs, rng):
    """Gold labels, some dropped, some reversed or relabelled (wrong), some duplicated."""
    out = []
    rels = sorted({l["r"] for d in docs for l in d["labels"]})
    for p in E.predictions_from_labels(docs):
        u = rng.random()
        if u < 0.2:
            continue                                                    # missed
        if u < 0.3:
            p = dict(p, h_idx=p["t_idx"], t_idx=p["h_idx"])             # usually wrong
        elif u < 0.4:
            p = dict(p, r=rels[int(rng.integers(len(rels)))])           # usually wrong
        out.append(p)
        if rng.random() < 0.05:
            out.append(dict(p))                                         # duplicate row
    return out


def test_summed_doc_counts_reproduce_score_on_real_data(redocred_dev, data_dir):
    docs = redocred_dev[:25]
    facts = E.read_fact_file(data_dir / "docred/train_annotated.fact")
    train = json.loads((data_dir / "docred/train_annotated.subset.json").read_text())
    rel2id = json.loads((data_dir / "meta/rel2id.json").read_text())
    groups = E.relation_groups(train, relations=rel2id)
    rng = np.random.default_rng(7)
    for _ in range(4):
        preds = _perturbed(docs, rng)
        c = E.doc_counts(preds, docs, train_facts=facts, groups=groups)
        assert len(c["all"]) == len(docs)
        s = E.score(preds, docs, train_facts=facts)
        assert 0 < s["n_correct_in_train"] < s["n_correct"] < s["n_pred"]  # Ign is exercised
        assert E.scores_from_counts(c["all"]) == {k: v for k, v in s.items() if k != "n_train_facts"}
        # the groups partition the whole vocabulary, so their rows add up to "all", row by row
        summed = np.sum([c[g] for g in ("head", "mid", "tail")], axis=0)
        assert summed.tolist() == c["all"]
        gs = E.group_scores(preds, docs, groups)
        for g in ("head", "mid", "tail"):
            t = E.scores_from_counts(c[g])
            assert (t["n_pred"], t["n_correct"], t["n_gold"]) == (
                gs[g]["n_pred"], gs[g]["n_correct"], gs[g]["n_gold"])
            assert t["f1"] == gs[g]["f1"]


def test_full_report_uses_precomputed_groups_verbatim():
    groups = {"head": ["P17"], "mid": [], "tail": ["P131"]}
    rep = E.full_report(PREDS, GOLD, train_docs=TRAIN, groups=groups)
    # ranked on TRAIN both relations would be head (see test_full_report_is_flat_and_consistent);
    # the given groups win: P17 -> predicted 4, correct 3, gold 3; P131 -> predicted 1, correct 0, gold 1
    assert (rep["head_n_pred"], rep["head_n_correct"], rep["head_n_gold"]) == (4, 3, 3)
    assert (rep["tail_n_pred"], rep["tail_n_correct"], rep["tail_n_gold"]) == (1, 0, 1)
    assert rep["mid_n_gold"] == 0 and rep["tail_f1"] == 0.0
    assert rep["ign_f1"] == pytest.approx(6 / 13)  # train_docs still serve Ign
    # groups need no training documents, and the same groups give the same keys on every split
    other = E.full_report(E.predictions_from_labels([BETA]), [BETA], groups=groups)
    assert {k for k in rep if k.startswith(("head_", "mid_", "tail_"))} == \
           {k for k in other if k.startswith(("head_", "mid_", "tail_"))}
    assert other["head_f1"] == 1.0 and other["tail_n_gold"] == 0
    with pytest.raises(ValueError, match="not both"):
        E.full_report(PREDS, GOLD, TRAIN, groups=groups, relations=["P17"])
    with pytest.raises(ValueError, match="intra"):
        E.full_report(PREDS, GOLD, groups={"intra": ["P17"]})
