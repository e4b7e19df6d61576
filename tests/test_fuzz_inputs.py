"""Input that cannot break it (issue 27, item 3): property-based mutation of real documents.

Seeds are real documents: 4 small Re-DocRED dev documents and 4 BC5CDR train documents (one of
them with a duplicate CID label in the file). Hypothesis mutates them and feeds the result to
the entry points that read outside data:

  - data.load_docs (a DocRED-format file: validate_docs, then duplicate labels dropped and
    counted), data.load_regime("redocred-mini") on a data folder holding the mutated file,
    features.featurize with the MiniLM tokenizer on whatever loads;
  - data.CustomRegime(... BC5CDR's settings ...).load (validation, entity types, NR removal,
    duplicates, evidence [None]);
  - evaluate.read_predictions, evaluate.score and the CLI (evaluate.main) on prediction files,
    and the CLI on a gold file mutated as the documents above.

The property, everywhere: either the input is accepted and the facts come out exactly as an
independent count over the mutated input says (labels in the file minus the reported
duplicates / NR labels; unique prediction facts), or the project's own error is raised
(data.DocumentError, evaluate.PredictionError) naming the file, the document or prediction
index and the field -- and then the independent checker here must agree that the input is
broken at that field. Any other exception, an accepted broken input or a refused valid one
fails the test.

Document mutation kinds (24): 1 drop a field (any depth), 2 retype a field (any depth: None,
bool, int, float, NaN, string, list, dict), 24 retype an index (sent_id, pos, h, t, evidence)
as a near-int (true, 1.0, "1", None, [1]), 3 remove a list element (sentence, word, entity,
mention, label, evidence), 4 index out of range (sent_id, pos start / end, h, t, evidence),
5 empty span, 6 reversed span, 7 overlapping span (an extra mention), 8 whole-sentence span,
9 unicode text (combining marks, RTL, emoji, ZWJ, zero-width, BOM, NUL, tabs) in title / words /
names / types, 10 lone surrogate, 11 huge document (+20-120 sentences, +5-40 entities),
12 duplicate labels, 13 duplicate entity (also labelled like the original), 14 head equals
tail, 15 unknown relation (also not a string: list, dict, int, None), 16 "Na" / "NR" as a label, 17 evidence None / [None], 18 head and
tail swapped, 19 empty containers (sents, a sentence, vertexSet, an entity, labels, evidence,
title), 20 extra fields (document, mention, label); at file level 21 invalid JSON / undecodable
bytes / BOM, 22 JSON that is not a list, 23 a document that is not a dict.
Prediction mutation kinds (13): 1 drop a key (title, h_idx, t_idx, r), 2 retype a key,
3 unknown title, 4 unicode variants of a title, 5 out-of-range h_idx / t_idx, 6 unknown
relation, 7 "Na" as r, 8 duplicate rows, 9 extra keys, 10 doc_index (wrong type, out of range,
disagreeing title, agreeing, null), 11 a row that is not an object; at file level 12 JSON that
is not a list, 13 invalid JSON / undecodable bytes.

Examples per run (derandomized, the same every run): 500 DocRED-format documents + 300 BC5CDR
+ 400 prediction files + 200 gold files for the CLI + 50 + 50 whole files = 1,500, about 25 s
on one core. About 30% of the
document examples are accepted (and then featurized); the rest must be refused at the right field.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import re
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pemscl import data as D
from pemscl import evaluate as E

# derandomize: CI sees the same examples every run; deadline off: the first example pays for
# imports and the tokenizer. function_scoped_fixture: the fixtures used are read-only seeds and
# folders rewritten from scratch in every example, so sharing them across examples is safe.
FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                   HealthCheck.data_too_large])

REDOCRED_SEEDS = (119, 96, 36, 213)  # small Re-DocRED dev documents (5-6 entities, 3-12 sentences)
CDR_SEEDS = (129, 66, 302, 289)      # small BC5CDR train documents; 302 labels one CID pair twice
MISSING = object()

UNICODE = ["e\u0301\u0301", "\u05e9\u05dc\u05d5\u05dd", "\u202eabc\u202c", "\U0001F600", "\U0001F468\u200d\U0001F469",
           "a\u200bb", "\u200b", "\ufeff", "x\x00y", "\x00", "", " ", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
           "\u00e9t\u00e9", "\u3042", "\t\n"]
OTHER_VALUES = [None, True, False, 0, 1, -1, 2 ** 40, 1.0, 0.5, float("nan"), "", "1", "x", [], [0, 1], ["a"],
                {}, {"a": 1}]


# --------------------------------------------------------------------------- independent checker
def _is_index(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _good_str(v) -> bool:
    # a lone surrogate (e.g. "\ud83d" left of a cut emoji escape) cannot be encoded as UTF-8
    return isinstance(v, str) and not any(0xD800 <= ord(c) <= 0xDFFF for c in v)


def doc_problems(doc, vocab, types=None) -> set[str]:
    """Every field path at which `doc` breaks the DocRED format as the data README documents it.

    Written apart from data.validate_docs on purpose: the test compares the two.
    """
    if not isinstance(doc, dict):
        return {"<document>"}
    P = set()
    if not _good_str(doc.get("title", MISSING)):
        P.add("title")
    sents = doc.get("sents", MISSING)
    lens = None
    if not isinstance(sents, list):
        P.add("sents")
    else:
        lens = []
        for s, sent in enumerate(sents):
            if not isinstance(sent, list):
                P.add(f"sents[{s}]")
                lens.append(None)
                continue
            lens.append(len(sent))
            P.update(f"sents[{s}][{w}]" for w, word in enumerate(sent) if not _good_str(word))
    ents = doc.get("vertexSet", MISSING)
    n_ent = None
    if not isinstance(ents, list) or not ents:
        P.add("vertexSet")
    else:
        n_ent = len(ents)
        for e, ent in enumerate(ents):
            if not isinstance(ent, list) or not ent:
                P.add(f"vertexSet[{e}]")
                continue
            for m, men in enumerate(ent):
                w = f"vertexSet[{e}][{m}]"
                if not isinstance(men, dict):
                    P.add(w)
                    continue
                P.update(f"{w}.{k}" for k in ("name", "sent_id", "pos") if k not in men)
                if "name" in men and not _good_str(men["name"]):
                    P.add(f"{w}.name")
                if types is not None:
                    if men.get("type") not in types or not _good_str(men.get("type")):
                        P.add(f"{w}.type")
                elif "type" in men and not _good_str(men["type"]):
                    P.add(f"{w}.type")
                sid = men.get("sent_id", MISSING)
                sid_ok = _is_index(sid) and lens is not None and 0 <= sid < len(lens)
                if "sent_id" in men and not sid_ok:
                    P.add(f"{w}.sent_id")
                if "pos" in men:
                    pos = men["pos"]
                    ok = isinstance(pos, list) and len(pos) == 2 and all(_is_index(p) for p in pos)
                    if ok and sid_ok and lens[sid] is not None:
                        ok = 0 <= pos[0] < pos[1] <= lens[sid]
                    if not ok:
                        P.add(f"{w}.pos")
    if "labels" in doc:
        labels = doc["labels"]
        if not isinstance(labels, list):
            P.add("labels")
            return P
        for k, lab in enumerate(labels):
            w = f"labels[{k}]"
            if not isinstance(lab, dict):
                P.add(w)
                continue
            P.update(f"{w}.{key}" for key in ("h", "t", "r") if key not in lab)
            for key in ("h", "t"):
                if key in lab and not (_is_index(lab[key]) and n_ent is not None and 0 <= lab[key] < n_ent):
                    P.add(f"{w}.{key}")
            if _is_index(lab.get("h")) and _is_index(lab.get("t")) and lab["h"] == lab["t"]:
                P.update((f"{w}.h", f"{w}.t"))
            if "r" in lab and not (isinstance(lab["r"], str) and lab["r"] in vocab and lab["r"] != "Na"):
                P.add(f"{w}.r")
            ev = lab.get("evidence")
            if ev is not None:  # absent or null: no evidence given
                if not isinstance(ev, list):
                    P.add(f"{w}.evidence")
                else:
                    P.update(f"{w}.evidence[{j}]" for j, x in enumerate(ev)
                             if x is not None and not (_is_index(x) and lens is not None and 0 <= x < len(lens)))
    return P


def _ancestors(path: str) -> set[str]:
    """'labels[2].evidence[0]' -> {'labels', 'labels[2]', 'labels[2].evidence', 'labels[2].evidence[0]'}."""
    cuts = [m.start() for m in re.finditer(r"[.\[]", path)] + [len(path)]
    return {path[:c] for c in cuts if c}


DOC_ERROR = re.compile(r"^(?P<src>.*?): document (?P<i>\d+) \(title (?P<title>.*)\): field (?P<field>\S+): ")


def assert_names_doc_and_field(err: Exception, source: str, i: int, doc, problems: set[str]) -> None:
    msg = str(err)
    m = DOC_ERROR.match(msg)
    assert m, f"the error does not name document and field: {msg!r}"
    assert m["src"].startswith(source), msg
    assert int(m["i"]) == i, f"blames document {m['i']}, the broken one is {i}: {msg!r}"
    title = doc.get("title") if isinstance(doc, dict) else None
    assert m["title"] == repr(title), msg
    field = m["field"]
    # the field named is one that is broken, or a container of one (a sentence that is not a list)
    assert problems, f"refused a valid document: {msg!r}"
    assert any(field in _ancestors(p) for p in problems), f"blames {field}, broken: {sorted(problems)}: {msg!r}"


# --------------------------------------------------------------------------- document mutations
def _sent_lens(doc):
    return [len(s) if isinstance(s, list) else 0 for s in doc["sents"]]


def _mentions(doc):
    return [(e, m) for e, ent in enumerate(doc["vertexSet"]) for m in range(len(ent))]


def _paths(doc):
    """(container, key, path) of the fields a mutation may drop or retype, a few per level."""
    out = [(doc, k, k) for k in list(doc)]
    s = len(doc["sents"]) - 1
    out.append((doc["sents"], s, f"sents[{s}]"))
    out.append((doc["sents"][0], 0, "sents[0][0]"))
    ents = doc["vertexSet"]
    e = len(ents) - 1
    out.append((ents, e, f"vertexSet[{e}]"))
    out.append((ents[e], 0, f"vertexSet[{e}][0]"))
    for k in list(ents[e][0]):
        out.append((ents[e][0], k, f"vertexSet[{e}][0].{k}"))
    if isinstance(ents[e][0].get("pos"), list):
        out.append((ents[e][0]["pos"], 1, f"vertexSet[{e}][0].pos[1]"))
    labels = doc.get("labels") or []
    if labels:
        k = len(labels) - 1
        out.append((labels, k, f"labels[{k}]"))
        for key in list(labels[k]):
            out.append((labels[k], key, f"labels[{k}].{key}"))
        if labels[k].get("evidence"):
            out.append((labels[k]["evidence"], 0, f"labels[{k}].evidence[0]"))
    return out


def m_drop_field(draw, doc, ctx):
    obj, key, path = draw(st.sampled_from([p for p in _paths(doc) if isinstance(p[0], dict)]))
    del obj[key]
    return f"drop {path}"


def m_retype_field(draw, doc, ctx):
    obj, key, path = draw(st.sampled_from(_paths(doc)))
    obj[key] = copy.deepcopy(draw(st.sampled_from(OTHER_VALUES)))
    return f"retype {path}"


def m_retype_index(draw, doc, ctx):
    # an index as a value that == an int but is not one (JSON true, 1.0, "1"): easy to take for valid
    where = draw(st.sampled_from(["sent_id", "pos", "h", "t", "evidence"]))
    value = draw(st.sampled_from([True, False, 0.0, 1.0, "0", "1", None, [1]]))
    if where in ("sent_id", "pos"):
        e, m = draw(st.sampled_from(_mentions(doc)))
        men = doc["vertexSet"][e][m]
        if where == "sent_id":
            men["sent_id"] = value
        else:
            men["pos"][draw(st.integers(0, 1))] = value
    elif doc.get("labels"):
        lab = doc["labels"][draw(st.integers(0, len(doc["labels"]) - 1))]
        if where == "evidence":
            lab["evidence"] = [value]
        else:
            lab[where] = value
    return f"retype index {where}"


def m_remove_element(draw, doc, ctx):
    what = draw(st.sampled_from(["sentence", "word", "entity", "mention", "label", "evidence"]))
    if what == "sentence":
        doc["sents"].pop(draw(st.integers(0, len(doc["sents"]) - 1)))
    elif what == "word":
        s = draw(st.integers(0, len(doc["sents"]) - 1))
        if doc["sents"][s]:
            doc["sents"][s].pop(draw(st.integers(0, len(doc["sents"][s]) - 1)))
    elif what == "entity":
        doc["vertexSet"].pop(draw(st.integers(0, len(doc["vertexSet"]) - 1)))
    elif what == "mention":
        e, m = draw(st.sampled_from(_mentions(doc)))
        doc["vertexSet"][e].pop(m)
    elif what == "label" and doc.get("labels"):
        doc["labels"].pop(draw(st.integers(0, len(doc["labels"]) - 1)))
    elif what == "evidence" and doc.get("labels"):
        ev = doc["labels"][0].get("evidence")
        if isinstance(ev, list) and ev:
            ev.pop()
    return f"remove a {what}"


def m_out_of_range(draw, doc, ctx):
    where = draw(st.sampled_from(["sent_id", "pos0", "pos1", "h", "t", "evidence"]))
    n_s, n_e = len(doc["sents"]), len(doc["vertexSet"])
    if where in ("sent_id", "pos0", "pos1"):
        e, m = draw(st.sampled_from(_mentions(doc)))
        men = doc["vertexSet"][e][m]
        n = n_s if where == "sent_id" else len(doc["sents"][men["sent_id"]])
        bad = draw(st.sampled_from([-1, n, n + 1, 10 ** 9, -(10 ** 9)]))
        if where == "sent_id":
            men["sent_id"] = bad
        else:
            men["pos"][0 if where == "pos0" else 1] = bad
    elif doc.get("labels"):
        lab = doc["labels"][draw(st.integers(0, len(doc["labels"]) - 1))]
        n = n_e if where in ("h", "t") else n_s
        bad = draw(st.sampled_from([-1, n, n + 3, 2 ** 63]))
        if where == "evidence":
            lab["evidence"] = [bad]
        else:
            lab[where] = bad
    return f"out of range {where}"


def m_span(draw, doc, ctx):
    kind = draw(st.sampled_from(["empty", "reversed", "overlapping", "whole sentence"]))
    e, m = draw(st.sampled_from(_mentions(doc)))
    men = doc["vertexSet"][e][m]
    a, b = men["pos"]
    if kind == "empty":
        men["pos"] = [a, a]
    elif kind == "reversed":
        men["pos"] = [b, a]
    elif kind == "overlapping":  # another entity's mention over part of this span: valid
        o = draw(st.integers(0, len(doc["vertexSet"]) - 1))
        doc["vertexSet"][o].append({"name": "overlap", "pos": [a, max(b - 1, a + 1)], "sent_id": men["sent_id"],
                                    "type": men.get("type", "MISC")})
    else:
        men["pos"] = [0, len(doc["sents"][men["sent_id"]])]
    return f"{kind} span"


def m_unicode(draw, doc, ctx):
    text = draw(st.sampled_from(UNICODE)) + draw(st.text(max_size=4))
    where = draw(st.sampled_from(["title", "word", "name", "type"] if ctx["types"] is None else
                                 ["title", "word", "name"]))
    if where == "title":
        doc["title"] = doc["title"] + text
    elif where == "word":
        s = draw(st.integers(0, len(doc["sents"]) - 1))
        if doc["sents"][s]:
            w = draw(st.integers(0, len(doc["sents"][s]) - 1))
            doc["sents"][s][w] = draw(st.sampled_from([text, doc["sents"][s][w] + text]))
    else:
        e, m = draw(st.sampled_from(_mentions(doc)))
        doc["vertexSet"][e][m][where] = text
    return f"unicode {where}"


def m_lone_surrogate(draw, doc, ctx):
    bad = draw(st.sampled_from(["\ud83d", "abc\udfff", "\udc80x"]))
    where = draw(st.sampled_from(["title", "word", "name"]))
    if where == "title":
        doc["title"] = bad
    elif where == "word":
        doc["sents"][0][0] = bad
    else:
        doc["vertexSet"][0][0]["name"] = bad
    return f"lone surrogate in {where}"


def m_huge(draw, doc, ctx):
    # many sentences and entities, bounded so one example stays well under a second
    n_sent = draw(st.integers(20, 120))
    words = [w for s in doc["sents"] for w in s] or ["w"]
    base = len(doc["sents"])
    for k in range(n_sent):
        doc["sents"].append([words[(k + j) % len(words)] for j in range(8 * (1 + k % 3))])
    n_ent = draw(st.integers(5, 40))
    t = ctx["types"][0] if ctx["types"] else "MISC"
    for k in range(n_ent):
        s = base + k % n_sent
        doc["vertexSet"].append([{"name": doc["sents"][s][0], "pos": [0, 1], "sent_id": s, "type": t}])
    return f"huge (+{n_sent} sentences, +{n_ent} entities)"


def m_duplicate_labels(draw, doc, ctx):
    if doc.get("labels"):
        for _ in range(draw(st.integers(1, 4))):
            doc["labels"].append(copy.deepcopy(draw(st.sampled_from(doc["labels"]))))
    return "duplicate labels"


def m_duplicate_entity(draw, doc, ctx):
    e = draw(st.integers(0, len(doc["vertexSet"]) - 1))
    doc["vertexSet"].append(copy.deepcopy(doc["vertexSet"][e]))
    if doc.get("labels") and draw(st.booleans()):  # and label the copy like the original
        n = len(doc["vertexSet"]) - 1
        for lab in list(doc["labels"]):
            if lab.get("h") == e and lab.get("t") != n:
                doc["labels"].append({**copy.deepcopy(lab), "h": n})
    return "duplicate entity"


def m_label_content(draw, doc, ctx):
    if not doc.get("labels"):
        return "no labels to change"
    lab = doc["labels"][draw(st.integers(0, len(doc["labels"]) - 1))]
    kind = draw(st.sampled_from(["head equals tail", "unknown relation", "relation not a string", "Na", "NR",
                                 "evidence None", "swap"]))
    if kind == "head equals tail":
        lab["t"] = lab["h"]
    elif kind == "unknown relation":
        lab["r"] = draw(st.sampled_from(["P999999", "p17", "P17 ", "", "CID\u200b", "cid"]))
    elif kind == "relation not a string":  # unhashable ones must not reach a `in vocab` test
        lab["r"] = copy.deepcopy(draw(st.sampled_from([["P17"], {"CID": 1}, 17, None, True])))
    elif kind in ("Na", "NR"):
        lab["r"] = kind
    elif kind == "evidence None":
        lab["evidence"] = draw(st.sampled_from([None, [None], [None, 0]]))
    else:
        lab["h"], lab["t"] = lab["t"], lab["h"]
    return f"label: {kind}"


def m_empty_container(draw, doc, ctx):
    where = draw(st.sampled_from(["sents", "sentence", "vertexSet", "entity", "labels", "evidence", "title"]))
    if where == "sents":
        doc["sents"] = []
    elif where == "sentence":
        doc["sents"].append([])  # an empty sentence no mention points into: valid
    elif where == "vertexSet":
        doc["vertexSet"] = []
    elif where == "entity":
        doc["vertexSet"][draw(st.integers(0, len(doc["vertexSet"]) - 1))] = []
    elif where == "labels":
        doc["labels"] = []
    elif where == "evidence" and doc.get("labels"):
        doc["labels"][0]["evidence"] = []
    elif where == "title":
        doc["title"] = ""
    return f"empty {where}"


def m_extra_field(draw, doc, ctx):
    key = draw(st.sampled_from(["extra", "\u200bx", ""]))
    val = copy.deepcopy(draw(st.sampled_from(OTHER_VALUES)))
    target = draw(st.sampled_from(["doc", "mention", "label"]))
    if target == "doc":
        doc[key] = val
    elif target == "mention":
        doc["vertexSet"][0][0][key] = val
    elif doc.get("labels"):
        doc["labels"][0][key] = val
    return f"extra field on {target}"


# drop and retype count three times: they have by far the most targets (every field at every level)
DOC_MUTATIONS = [m_drop_field] * 3 + [m_retype_field] * 3 + [m_retype_index, m_remove_element, m_out_of_range, m_span, m_unicode,
                 m_lone_surrogate, m_huge, m_duplicate_labels, m_duplicate_entity, m_label_content,
                 m_empty_container, m_extra_field]


def mutate(draw, doc, ctx) -> list[str]:
    done = []
    for _ in range(draw(st.integers(1, 3))):
        # later mutations need the structure the earlier ones may have broken: stop at the first break
        if doc_problems(doc, ctx["vocab"], ctx["types"]):
            break
        done.append(draw(st.sampled_from(DOC_MUTATIONS))(draw, doc, ctx))
        event(f"mutation: {done[-1].split(' (')[0]}")  # --hypothesis-show-statistics lists how often each ran
    return done


# --------------------------------------------------------------------------- expected facts
def _key(lab):
    return (lab["h"], lab["t"], lab["r"])


def expected_clean(doc, no_relation=None):
    """(labels kept in file order, duplicates dropped, no-relation labels dropped), counted here."""
    kept, seen, dups, nr = [], set(), 0, 0
    for lab in doc.get("labels", []):
        if lab["r"] == no_relation:
            nr += 1
            continue
        if _key(lab) in seen:
            dups += 1
            continue
        seen.add(_key(lab))
        kept.append(_key(lab))
    return kept, dups, nr


# --------------------------------------------------------------------------- fixtures
class _Seeds(dict):
    # a failing example prints its arguments: the seed documents' indices, not their full text
    def __repr__(self) -> str:
        return f"<seed documents: Re-DocRED dev {REDOCRED_SEEDS}, BC5CDR train {CDR_SEEDS}>"


@pytest.fixture(scope="module")
def seeds(data_dir):
    red = json.loads((data_dir / "redocred/dev_revised.json").read_text())
    cdr = json.loads((data_dir / "cdr/train.json").read_text())
    return _Seeds(redocred=[red[i] for i in REDOCRED_SEEDS], cdr=[cdr[i] for i in CDR_SEEDS])


class _Vocab(dict):
    def __repr__(self) -> str:
        return f"<meta/rel2id.json: {len(self)} classes>"


@pytest.fixture(scope="module")
def rel2id(data_dir):
    return _Vocab(D.load_rel2id(data_dir))


@pytest.fixture(scope="module")
def tokenizer():
    from pemscl.features import default_encoder, load_tokenizer

    return load_tokenizer(default_encoder())


@pytest.fixture(scope="module")
def folder(tmp_path_factory, data_dir):
    """A data folder: the real meta/ files, and redocred/dev_revised.json rewritten per example."""
    root = tmp_path_factory.mktemp("fuzzdata")
    (root / "meta").mkdir()
    (root / "redocred").mkdir()
    for f in ("meta/rel2id.json", "meta/rel_info.json"):
        (root / f).symlink_to(data_dir / f)
    # a small stand-in test split (redocred-mini needs one; reading the real 500 documents per
    # example would cost most of the time budget)
    test = json.loads((data_dir / "redocred/test_revised.json").read_text())[:2]
    (root / "redocred/test_revised.json").write_text(json.dumps(test))
    return root


def _write(path: Path, obj) -> None:
    # ensure_ascii (the default): lone surrogates and NUL travel as \u escapes, as JSON allows
    path.write_text(json.dumps(obj))


# --------------------------------------------------------------------------- DocRED-format documents
@settings(max_examples=500, **FUZZ)
@given(data=st.data())
def test_docred_documents_load_or_name_the_broken_field(data, seeds, rel2id, tokenizer, folder):
    draw = data.draw
    pool = copy.deepcopy(seeds["redocred"])
    order = draw(st.permutations(range(len(pool))))
    docs = [pool[k] for k in order][:3]
    i = draw(st.integers(0, len(docs) - 1))
    ctx = {"vocab": rel2id, "types": None}
    kinds = mutate(draw, docs[i], ctx)
    problems = doc_problems(docs[i], rel2id)
    path = folder / "redocred/dev_revised.json"
    _write(path, docs)
    src = "redocred/dev_revised.json"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = D.load_docs(src, root=folder)
        except D.DocumentError as e:
            event("refused")
            assert_names_doc_and_field(e, src, i, docs[i], problems)
            # the regime loader reads the same file: the same error
            with pytest.raises(D.DocumentError, match=re.escape(str(e))):
                D.load_regime("redocred-mini", root=folder)
            return
    assert not problems, f"{kinds}: accepted a document broken at {sorted(problems)}"
    event("accepted")
    # the same facts, counted independently: the file's labels minus the reported duplicates
    expected = [expected_clean(d) for d in docs]
    n_dups = sum(x[1] for x in expected)
    reported = [w.message for w in caught if isinstance(w.message, D.DataCleaningWarning)]
    if n_dups:
        assert len(reported) == 1 and reported[0].counts["duplicates"] == n_dups, kinds
        assert src in str(reported[0]) and f"{n_dups} duplicate label" in str(reported[0])
    else:
        assert not any(w.counts.get("duplicates") for w in reported)
    assert len(loaded) == len(docs)
    for d, (kept, _, _) in zip(loaded, expected):
        assert [_key(lab) for lab in d.get("labels", [])] == kept
        assert all(None not in (lab.get("evidence") or []) for lab in d.get("labels", []))
    n_file = sum(len(d.get("labels", [])) for d in docs)
    assert sum(len(d.get("labels", [])) for d in loaded) == n_file - n_dups

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate titles, unverified file: reported elsewhere
        reg = D.load_regime("redocred-mini", root=folder)
    assert sorted(_facts(reg.train + reg.dev)) == sorted(_facts(loaded))
    assert sum(c.get("duplicates", 0) for c in reg.cleaning.values()) == n_dups
    if n_dups:
        assert any("duplicate labels removed" in note for note in reg.notes)

    _check_features(loaded, tokenizer, rel2id)
    # scoring the documents' own labels against themselves: every unique fact once, all correct
    if len({d["title"] for d in loaded}) == len(loaded) and all("labels" in d for d in loaded):
        s = E.score(E.predictions_from_labels(loaded), loaded)
        n = sum(len(k) for k, _, _ in expected)
        assert s["n_gold"] == s["n_pred"] == s["n_correct"] == n


def _facts(docs):
    return [(d["title"], *_key(lab)) for d in docs for lab in d.get("labels", [])]


def _check_features(docs, tokenizer, rel2id):
    from pemscl.features import featurize

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation of the huge documents is warned about, and expected
        feats = featurize(docs, tokenizer, rel2id, max_len=512)
    for d, f in zip(docs, feats):
        n = len(d["vertexSet"])
        assert len(f["entity_pos"]) == n and len(f["hts"]) == n * (n - 1) == f["labels"].shape[0]
        assert 3 <= len(f["input_ids"]) <= 512
        assert all(0 < a <= b < len(f["input_ids"]) for ent in f["entity_pos"] for a, b in ent)
        # one positive cell per unique (h, t, r), column 0 exactly on the pairs without one
        assert int(f["labels"][:, 1:].sum()) == len({_key(lab) for lab in d.get("labels", [])})
        assert int(f["labels"][:, 0].sum()) == n * (n - 1) - len({(lab["h"], lab["t"]) for lab in d.get("labels", [])})


# --------------------------------------------------------------------------- BC5CDR
CDR_TYPES = ("CHEM", "DISE")


def _cdr_regime(folder: Path) -> D.CustomRegime:
    return D.CustomRegime("cdr-fuzz", train=folder / "cdr_train.json", dev=folder / "cdr_dev.json",
                          test=folder / "cdr_test.json", relations=("CID",), no_relation="NR",
                          entity_types=CDR_TYPES)


@settings(max_examples=300, **FUZZ)
@given(data=st.data())
def test_cdr_documents_load_or_name_the_broken_field(data, seeds, tokenizer, folder):
    draw = data.draw
    docs = copy.deepcopy(seeds["cdr"])
    # NR labels as the files have them (4,202 in train): on a new pair, and on a CID pair
    docs[0]["labels"].append({"r": "NR", "h": 0, "t": 1, "evidence": [None]})
    docs[3]["labels"].append({"r": "NR", "h": 0, "t": 1, "evidence": [None]})
    i = draw(st.integers(0, len(docs) - 1))
    vocab = {"Na": 0, "CID": 1, "NR": 2}
    ctx = {"vocab": vocab, "types": CDR_TYPES}
    kinds = mutate(draw, docs[i], ctx)
    problems = doc_problems(docs[i], vocab, CDR_TYPES)
    _write(folder / "cdr_train.json", docs)
    _write(folder / "cdr_dev.json", seeds["cdr"][:1])
    _write(folder / "cdr_test.json", seeds["cdr"][1:2])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reg = _cdr_regime(folder).load()
    except D.DocumentError as e:
        event("refused")
        assert_names_doc_and_field(e, str(folder / "cdr_train.json"), i, docs[i], problems)
        return
    assert not problems, f"{kinds}: accepted a document broken at {sorted(problems)}"
    event("accepted")
    c = reg.cleaning["train"]
    expected = [expected_clean(d, "NR") for d in docs]
    assert c["labels_in_file"] == sum(len(d.get("labels", [])) for d in docs)
    assert c["duplicates"] == sum(x[1] for x in expected) and c["no_relation"] == sum(x[2] for x in expected)
    assert c["kept"] == c["labels_in_file"] - c["duplicates"] - c["no_relation"]
    assert [[_key(lab) for lab in d["labels"]] for d in reg.train] == [x[0] for x in expected]
    assert all(None not in (lab.get("evidence") or []) for d in reg.train for lab in d["labels"])
    _check_features(reg.train, tokenizer, reg.rel2id)


# --------------------------------------------------------------------------- prediction files
PRED_KEYS = ("title", "h_idx", "t_idx", "r")


def pred_problem(row, gold, relations=None):
    """(field, why) of the first field a prediction row breaks, or None when it is a valid row."""
    if not isinstance(row, dict):
        return ("<prediction>", "not an object")
    for k in PRED_KEYS:
        if k not in row:
            return (k, "missing")
    titles = [d["title"] for d in gold]
    if not _good_str(row["title"]):
        return ("title", "type")
    for k in ("h_idx", "t_idx"):
        if not _is_index(row[k]):
            return (k, "type")
    if not (isinstance(row["r"], str) and row["r"] and row["r"] != "Na"):
        return ("r", "value")
    if relations is not None and row["r"] not in relations:
        return ("r", "unknown")
    if row.get("doc_index") is not None:
        d = row["doc_index"]
        if not _is_index(d) or not 0 <= d < len(gold):
            return ("doc_index", "value")
        if titles[d] != row["title"]:
            return ("title", "disagrees")
    elif row["title"] not in titles:
        return ("title", "unknown")
    else:
        d = titles.index(row["title"])
    n = len(gold[d]["vertexSet"])
    for k in ("h_idx", "t_idx"):
        if not 0 <= row[k] < n:
            return (k, "range")
    return None


def _pred_fact(row, gold):
    titles = [d["title"] for d in gold]
    d = row["doc_index"] if row.get("doc_index") is not None else titles.index(row["title"])
    return (d, row["h_idx"], row["t_idx"], row["r"])


@settings(max_examples=400, **FUZZ)
@given(data=st.data())
def test_prediction_files_score_or_name_the_broken_entry(data, seeds, rel2id, folder):
    draw = data.draw
    gold = seeds["redocred"]
    rows = E.predictions_from_labels(gold)
    # some wrong predictions too: reversed pairs
    rows += [dict(p, h_idx=p["t_idx"], t_idx=p["h_idx"]) for p in rows[:: draw(st.integers(2, 6))]]
    picks = draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=30))
    rows = [copy.deepcopy(rows[j]) for j in picks]  # one copy each: a repeated pick is its own row
    k = draw(st.integers(0, len(rows) - 1))
    row = rows[k]
    kind = draw(st.sampled_from(["drop", "retype", "unknown title", "unicode title", "out of range",
                                 "unknown relation", "Na", "duplicate", "extra key", "doc_index", "non-dict",
                                 "none"]))
    if kind == "drop":
        del row[draw(st.sampled_from(PRED_KEYS))]
    elif kind == "retype":
        row[draw(st.sampled_from(PRED_KEYS))] = copy.deepcopy(draw(st.sampled_from(OTHER_VALUES)))
    elif kind == "unknown title":
        row["title"] = draw(st.sampled_from(["", "No such document", seeds["cdr"][0]["title"]]))
    elif kind == "unicode title":
        row["title"] = draw(st.sampled_from([row["title"] + "\u200b", "\u202e" + row["title"], row["title"] + "\x00",
                                             row["title"].upper(), row["title"][:-1] + "\ud83d"]))
    elif kind == "out of range":
        key = draw(st.sampled_from(["h_idx", "t_idx"]))
        n = len(gold[[d["title"] for d in gold].index(row["title"])]["vertexSet"])
        row[key] = draw(st.sampled_from([-1, n, n + 5, 2 ** 70]))
    elif kind == "unknown relation":
        row["r"] = draw(st.sampled_from(["P999999", "CID", "p17", "\u200bP17"]))
    elif kind == "Na":
        row["r"] = "Na"
    elif kind == "duplicate":
        rows.extend(copy.deepcopy(draw(st.lists(st.sampled_from(rows), min_size=1, max_size=4))))
    elif kind == "extra key":
        row[draw(st.sampled_from(["score", "evidence", "\x00"]))] = copy.deepcopy(draw(st.sampled_from(OTHER_VALUES)))
    elif kind == "doc_index":
        titles = [d["title"] for d in gold]
        row["doc_index"] = draw(st.sampled_from([titles.index(row["title"]), (titles.index(row["title"]) + 1) % 4,
                                                 -1, 4, True, 1.0, "0", None]))
    elif kind == "non-dict":
        rows[k] = copy.deepcopy(draw(st.sampled_from([None, 3, "x", [row["title"], 0, 1, "P17"]])))
    relations = rel2id if draw(st.booleans()) else None
    problem = pred_problem(rows[k], gold, relations)
    pred_path, gold_path = folder / "pred.json", folder / "gold.json"
    _write(pred_path, rows)
    _write(gold_path, gold)
    vocab = ["--relations", str(folder / "meta/rel2id.json")] if relations is not None else []
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the CLI: it names the file in every error
            rep = E.main([str(pred_path), str(gold_path)] + vocab)
    except E.PredictionError as e:
        event(f"refused: {kind}")
        assert problem is not None, f"{kind}: refused a valid file: {e}"
        field, why = problem
        assert e.source == str(pred_path) and str(pred_path) in str(e), str(e)
        assert e.index == k and f"prediction {k}" in str(e), f"{kind}: blames {e.index}, broken: {k}: {e}"
        assert e.field == field and field in str(e), f"{kind}: blames {e.field}, broken: {field} ({why}): {e}"
        return
    event(f"accepted: {kind}")
    assert problem is None, f"{kind}: accepted a prediction broken at {problem}: {rows[k]!r}"
    back = E.read_predictions(pred_path, relations=relations)
    s = E.score(back, gold)
    assert json.dumps(back) == json.dumps(rows)  # as written (compared as text: an extra NaN != NaN)
    facts = {_pred_fact(r, gold) for r in rows}
    gold_facts = {(i, lab["h"], lab["t"], lab["r"]) for i, d in enumerate(gold) for lab in d["labels"]}
    assert (s["n_pred"], s["n_correct"], s["n_gold"]) == (len(facts), len(facts & gold_facts), len(gold_facts))
    assert all(rep[key] == s[key] for key in ("n_pred", "n_correct", "n_gold", "f1"))
    assert not math.isnan(s["f1"])


@settings(max_examples=200, **FUZZ)
@given(data=st.data())
def test_cli_gold_documents_score_or_name_the_broken_field(data, seeds, rel2id, folder):
    """The scorer's CLI on a mutated gold file: scores, or DocumentError naming the gold file, the
    document and the field (a broken gold file used to surface as a KeyError while scoring)."""
    draw = data.draw
    gold = copy.deepcopy(seeds["redocred"])
    i = draw(st.integers(0, len(gold) - 1))
    kinds = mutate(draw, gold[i], {"vocab": rel2id, "types": None})
    problems = doc_problems(gold[i], rel2id) | ({"labels"} if isinstance(gold[i], dict) and "labels" not in gold[i]
                                                else set())  # gold must be labelled to be scored
    # predictions made on the unmutated documents: a valid gold file may still misalign them
    # (an entity removed), which must then be a PredictionError naming the prediction file
    rows = E.predictions_from_labels(seeds["redocred"])
    pred_path, gold_path = folder / "pred_g.json", folder / "gold_g.json"
    _write(pred_path, rows)
    _write(gold_path, gold)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # duplicate titles: reported, not fatal
            rep = E.main([str(pred_path), str(gold_path), "--relations", str(folder / "meta/rel2id.json")])
    except D.DocumentError as e:
        event("refused: gold")
        assert_names_doc_and_field(e, str(gold_path), i, gold[i], problems)
        return
    except E.PredictionError as e:
        event("refused: predictions")
        assert not problems, f"{kinds}: accepted a gold document broken at {sorted(problems)}"
        problem = pred_problem(rows[e.index], gold, rel2id)
        assert e.source == str(pred_path) and problem is not None and problem[0] == e.field, str(e)
        return
    event("accepted")
    assert not problems, f"{kinds}: accepted a gold document broken at {sorted(problems)}"
    titles = [d["title"] for d in gold]
    gold_facts = {(k, *_key(lab)) for k, d in enumerate(gold) for lab in d["labels"]}
    pred_facts = {(titles.index(r["title"]), r["h_idx"], r["t_idx"], r["r"]) for r in rows}
    assert (rep["n_gold"], rep["n_pred"], rep["n_correct"]) == (len(gold_facts), len(pred_facts),
                                                                len(gold_facts & pred_facts))


@settings(max_examples=50, **FUZZ)
@given(text=st.one_of(st.sampled_from(['{"title": "x"}', "null", "3", '"[]"', "", "[", '[{"title": "a",]', "\ufeff[]",
                                       "[] []", "NaN", '{"0": {}}']),
                      st.text(max_size=20), st.binary(max_size=20)))
def test_prediction_file_that_is_no_list_of_predictions(text, folder):
    path = folder / "bad_pred.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        rows = E.read_predictions(path)
    except E.PredictionError as e:
        assert str(path) in str(e) and e.source == str(path)
        return
    # what reads is a list of valid rows: here only the empty list can be
    assert rows == []


@settings(max_examples=50, **FUZZ)
@given(text=st.one_of(st.sampled_from(['{"title": "x"}', "null", "", "[", '[{"title": "a",]', "\ufeff[]", "[1, 2]",
                                       '["doc"]', "[[]]"]),
                      st.text(max_size=20), st.binary(max_size=20)))
def test_document_file_that_is_no_list_of_documents(text, folder):
    path = folder / "bad_docs.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        docs = D.load_docs(path, root=folder)
    except D.DocumentError as e:
        assert str(e).startswith(str(path)), str(e)
        return
    assert docs == []
