"""The official DocRED scorer (F1, Ign F1) and the breakdowns the paper reports.

Semantics follow the official DocRED / Re-DocRED evaluation script (see
FAITHFULNESS.md, "Evaluation, as the official DocRED scorer does it"):

- a fact is (document, head entity index, tail entity index, relation code like "P17");
  predictions and gold facts are both de-duplicated on it;
- P = correct / predicted, R = correct / gold, F1 their harmonic mean;
- Ign F1 leaves out correct predictions that are "in train": some (head mention name,
  tail mention name, relation) of the prediction's entities is a fact of the training set.
  Ign precision = (correct - correct_in_train) / (predicted - correct_in_train); recall is
  NOT adjusted (the official script reuses the plain recall).

Where this module deliberately differs from the official script, it fails loudly instead
of guessing: a prediction for an unknown title raises (the script silently skips it but
still counts it as predicted), duplicate titles in the gold set require an explicit
``doc_index`` (the script merges them), and the training facts are never cached by file
name (the script's cache silently reuses stale facts when a noisy training file keeps its
name) -- they are computed from the documents on each call, or passed in by the caller.

Kept free of torch so that scoring a prediction file needs nothing heavy.
"""

from __future__ import annotations

import argparse
import json
import numbers
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import data as D
from .utils import atomic_write_json

# (document position in gold_docs, head entity index, tail entity index, relation code)
Fact = tuple[int, int, int, str]
# (head mention name, tail mention name, relation code), the official "train fact"
NameFact = tuple[str, str, str]

NA = "Na"  # the no-relation class in rel2id.json; never a fact
REQUIRED_FIELDS = ("title", "h_idx", "t_idx", "r")


class PredictionError(ValueError):
    """A prediction (file) that cannot be scored. The message names the file (when read from
    one), the prediction's position and its field; so do the attributes `source` (None for
    predictions passed in memory), `index` (None for a problem of the whole file) and `field`."""

    def __init__(self, message: str, source: str | None = None, index: int | None = None,
                 field: str | None = None):
        super().__init__(message)
        self.source, self.index, self.field = source, index, field


def _bad(source: str | Path | None, k: int | None, field: str | None, problem: str) -> PredictionError:
    src = None if source is None else str(source)
    where = f"{src}: " if src is not None else ""
    if k is not None and problem.startswith(f"prediction {k} "):  # says it itself ("prediction 3 has no 'r'")
        problem += f" (field {field})"
    elif k is not None:
        where += f"prediction {k}: " + (f"field {field}: " if field else "")
    return PredictionError(where + problem, src, k, field)


# --------------------------------------------------------------------------- small helpers
def _div(num: float, den: float) -> float:
    """num / den, or 0.0 when den is 0 (an empty prediction set scores 0, not NaN)."""
    return float(num) / den if den else 0.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _prf(n_correct: int, n_pred: int, n_gold: int) -> dict[str, float | int]:
    p, r = _div(n_correct, n_pred), _div(n_correct, n_gold)
    return {"precision": p, "recall": r, "f1": _f1(p, r),
            "n_pred": n_pred, "n_gold": n_gold, "n_correct": n_correct}


def _as_index(value: Any, what: str) -> int:
    # numpy integers are fine (they come straight out of model code); bools and floats are not
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _rel_sort_key(r: str) -> tuple:
    # Wikidata codes sort by number (P6 before P17), anything else after them by name
    if r[:1] == "P" and r[1:].isdigit():
        return (0, int(r[1:]), r)
    return (1, 0, r)


# --------------------------------------------------------------------------- facts
def gold_facts(gold_docs: Sequence[dict]) -> set[Fact]:
    """The de-duplicated gold facts of a document set, documents keyed by position."""
    facts: set[Fact] = set()
    for i, doc in enumerate(gold_docs):
        if "labels" not in doc:
            # e.g. the DocRED test split: its labels were never published
            raise ValueError(f"gold document {i} ({doc.get('title')!r}) has no 'labels': "
                             "it cannot be scored")
        for lab in doc["labels"]:
            facts.add((i, int(lab["h"]), int(lab["t"]), str(lab["r"])))
    return facts


def _title_positions(gold_docs: Sequence[dict]) -> dict[str, list[int]]:
    pos: dict[str, list[int]] = {}
    for i, doc in enumerate(gold_docs):
        pos.setdefault(doc.get("title"), []).append(i)
    return pos


def _index(pred: Mapping, key: str, source, k: int) -> int:
    try:
        return _as_index(pred[key], key)
    except ValueError as e:
        raise _bad(source, k, key, str(e)) from None


def _check_relation(r: Any, source, k: int, relations: Iterable[str] | None = None) -> str:
    # a relation code is a non-empty string; "Na" is the absence of one, never a predicted fact
    if not isinstance(r, str) or not r:
        raise _bad(source, k, "r", f"r must be a relation code string, got {r!r}")
    if r == NA:
        raise _bad(source, k, "r", f"{NA!r} is not a relation (leave the pair out of the predictions)")
    if relations is not None and r not in relations:
        raise _bad(source, k, "r", f"unknown relation {r!r}")
    return r


def resolve_predictions(predictions: Iterable[Mapping], gold_docs: Sequence[dict],
                        source: str | Path | None = None) -> set[Fact]:
    """Map official-format predictions onto de-duplicated facts keyed by document position.

    An optional ``doc_index`` wins over the title (its title, if given, must agree);
    otherwise the title must name exactly one gold document. Unknown titles, duplicate
    titles without ``doc_index``, entity indices outside the document, indices that are not
    integers and a relation that is not a code (not a non-empty string, or "Na") raise
    PredictionError naming the prediction, its field and ``source`` (the file, if any):
    nothing is silently dropped. Duplicate predictions count once. A relation code absent from
    the gold documents' vocabulary is scored as the official script does: predicted, never
    correct (read_predictions(relations=...) refuses it instead).
    """
    positions = _title_positions(gold_docs)
    facts: set[Fact] = set()
    for k, pred in enumerate(predictions):
        if not isinstance(pred, Mapping):
            raise _bad(source, k, "<prediction>", f"not an object: {pred!r}")
        for field in ("h_idx", "t_idx", "r"):
            if field not in pred:
                raise _bad(source, k, field, f"prediction {k} has no {field!r}: {dict(pred)!r}")
        title = pred.get("title")
        if title is not None and not isinstance(title, str):
            raise _bad(source, k, "title", f"title must be a string, got {title!r}")
        if pred.get("doc_index") is not None:
            d = _index(pred, "doc_index", source, k)
            if not 0 <= d < len(gold_docs):
                raise _bad(source, k, "doc_index", f"doc_index {d} outside the {len(gold_docs)} gold documents")
            if title is not None and gold_docs[d].get("title") != title:
                raise _bad(source, k, "title", f"title {title!r} disagrees with gold document {d} "
                                               f"({gold_docs[d].get('title')!r})")
        elif title is None:
            raise _bad(source, k, "title", f"prediction {k} has neither 'title' nor 'doc_index': {dict(pred)!r}")
        else:
            where = positions.get(title)
            if not where:
                raise _bad(source, k, "title", f"title {title!r} is not among the gold documents")
            if len(where) > 1:
                raise _bad(source, k, "title", f"title {title!r} names {len(where)} gold documents "
                                               f"(positions {where}); pass 'doc_index' in each prediction")
            d = where[0]
        h = _index(pred, "h_idx", source, k)
        t = _index(pred, "t_idx", source, k)
        n_ent = len(gold_docs[d]["vertexSet"])
        for field, v in (("h_idx", h), ("t_idx", t)):
            if not 0 <= v < n_ent:
                # an index past the entity list means predictions and documents are misaligned
                raise _bad(source, k, field, f"entity pair ({h}, {t}) outside document {d} "
                                             f"({title!r}) with {n_ent} entities")
        facts.add((d, h, t, _check_relation(pred["r"], source, k)))
    return facts


def train_fact_set(train_docs: Iterable[dict]) -> set[NameFact]:
    """All (head mention name, tail mention name, r) of every label of the training docs.

    Computed from the documents each time on purpose: no cache keyed by file name.
    """
    facts: set[NameFact] = set()
    for doc in train_docs:
        ents = doc["vertexSet"]
        for lab in doc.get("labels", []):
            r = lab["r"]
            for m1 in ents[lab["h"]]:
                for m2 in ents[lab["t"]]:
                    facts.add((m1["name"], m2["name"], r))
    return facts


def read_fact_file(path: str | Path) -> set[NameFact]:
    """Read a DocRED ``.fact`` file (JSON list of [head name, tail name, r]) as a set."""
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(rows, list):
        raise ValueError(f"{path}: a .fact file holds a JSON list, got {type(rows).__name__}")
    facts: set[NameFact] = set()
    for k, row in enumerate(rows):
        if not (isinstance(row, (list, tuple)) and len(row) == 3):
            raise ValueError(f"{path}: fact {k} is not [head name, tail name, r]: {row!r}")
        facts.add((str(row[0]), str(row[1]), str(row[2])))
    return facts


def _in_train(fact: Fact, gold_docs: Sequence[dict], train_facts: set[NameFact]) -> bool:
    d, h, t, r = fact
    ents = gold_docs[d]["vertexSet"]
    return any((m1["name"], m2["name"], r) in train_facts for m1 in ents[h] for m2 in ents[t])


# --------------------------------------------------------------------------- main score
def _scores_from_totals(n_pred: int, n_correct: int, n_in_train: int, n_gold: int) -> dict[str, float | int]:
    """P/R/F1 and Ign P/R/F1 from the four counts; the one place these formulas live."""
    out = _prf(n_correct, n_pred, n_gold)
    ign_p = _div(n_correct - n_in_train, n_pred - n_in_train)
    out.update(ign_precision=ign_p, ign_recall=out["recall"], ign_f1=_f1(ign_p, out["recall"]),
               n_correct_in_train=n_in_train)
    return out


def _score_facts(pred: set[Fact], gold: set[Fact], gold_docs: Sequence[dict],
                 train_facts: set[NameFact]) -> dict[str, float | int]:
    correct = pred & gold
    # only correct predictions are checked against train, exactly as the official scorer
    n_in_train = sum(_in_train(f, gold_docs, train_facts) for f in correct) if train_facts else 0
    out = _scores_from_totals(len(pred), len(correct), n_in_train, len(gold))
    out["n_train_facts"] = len(train_facts)
    return out


def _train_facts_from(train_docs: Iterable[dict] | None, train_facts: Iterable | None) -> set[NameFact]:
    if train_docs is not None and train_facts is not None:
        raise ValueError("pass train_docs or train_facts, not both")
    if train_facts is not None:
        return {tuple(f) for f in train_facts}
    if train_docs is not None:
        return train_fact_set(train_docs)
    return set()


def score(predictions: Iterable[Mapping], gold_docs: Sequence[dict],
          train_docs: Iterable[dict] | None = None,
          train_facts: Iterable | None = None) -> dict[str, float | int]:
    """Official DocRED relation-extraction scores of ``predictions`` against ``gold_docs``.

    Returns precision, recall, f1, ign_precision, ign_recall (= recall), ign_f1, all in
    [0, 1], and the counts n_pred, n_gold, n_correct, n_correct_in_train, n_train_facts.
    The training set for Ign is given as documents (``train_docs``) or as a precomputed
    name-fact set (``train_facts``, e.g. from :func:`read_fact_file`). With neither,
    nothing is "in train" (n_train_facts == 0) and the ign_* values equal the plain ones.
    """
    tf = _train_facts_from(train_docs, train_facts)
    return _score_facts(resolve_predictions(predictions, gold_docs), gold_facts(gold_docs), gold_docs, tf)


# --------------------------------------------------------------------------- per-document counts
# one row per gold document: [predicted, correct, correct_in_train, gold]
COUNT_FIELDS = ("predicted", "correct", "correct_in_train", "gold")


def doc_counts(predictions: Iterable[Mapping], gold_docs: Sequence[dict], *,
               train_facts: Iterable | None = None, train_docs: Iterable[dict] | None = None,
               groups: Mapping[str, Iterable[str]] | None = None) -> dict[str, list[list[int]]]:
    """Per-document ``[predicted, correct, correct_in_train, gold]`` rows, in ``gold_docs`` order.

    The counts follow :func:`score` exactly (de-duplicated facts, a correct prediction is
    "in train" when some mention-name pair of its entities is a training fact), so that
    ``scores_from_counts(out["all"])`` equals ``score(...)`` and any resample of documents
    can be rescored from its rows (the bootstrap in :mod:`pemscl.stats`). Key "all" counts
    every fact; each name of ``groups`` (e.g. relation_groups' head / mid / tail) counts only
    facts whose relation is in that group. Ign's training set is ``train_facts`` or
    ``train_docs`` (not both), as in score(); with neither, correct_in_train is 0.
    """
    if groups is not None and "all" in groups:
        raise ValueError('a relation group may not be named "all": that key holds every fact')
    pred, gold = resolve_predictions(predictions, gold_docs), gold_facts(gold_docs)
    tf = _train_facts_from(train_docs, train_facts)
    return _doc_counts_facts(pred, gold, gold_docs, tf, groups or {})


def _doc_counts_facts(pred: set[Fact], gold: set[Fact], gold_docs: Sequence[dict],
                      train_facts: set[NameFact], groups: Mapping[str, Iterable[str]]) -> dict[str, list[list[int]]]:
    correct = pred & gold
    in_train = {f for f in correct if _in_train(f, gold_docs, train_facts)} if train_facts else set()
    selections: dict[str, set[str] | None] = {"all": None, **{g: set(rels) for g, rels in groups.items()}}
    out = {}
    for name, keep in selections.items():
        rows = [[0, 0, 0, 0] for _ in gold_docs]
        for column, facts in enumerate((pred, correct, in_train, gold)):
            for f in facts:
                if keep is None or f[3] in keep:
                    rows[f[0]][column] += 1
        out[name] = rows
    return out


def scores_from_counts(rows: Iterable[Sequence[int]]) -> dict[str, float | int]:
    """score()'s numbers from summed per-document rows (see :func:`doc_counts`).

    Returns precision, recall, f1, ign_precision, ign_recall, ign_f1, n_pred, n_gold,
    n_correct, n_correct_in_train -- every key of score() except n_train_facts, which the
    rows cannot know. Ign precision = (correct - correct_in_train) / (predicted -
    correct_in_train), recall unadjusted, exactly as in score().
    """
    totals = [0, 0, 0, 0]
    for k, row in enumerate(rows):
        if len(row) != 4:
            raise ValueError(f"count row {k} has {len(row)} fields, expected 4 {COUNT_FIELDS}: {row!r}")
        for j in range(4):
            totals[j] += int(row[j])
    n_pred, n_correct, n_in_train, n_gold = totals
    return _scores_from_totals(n_pred, n_correct, n_in_train, n_gold)


# --------------------------------------------------------------------------- breakdowns
def per_relation(predictions: Iterable[Mapping], gold_docs: Sequence[dict]) -> dict[str, dict]:
    """{relation: tp, n_pred, n_gold, precision, recall, f1} for every relation in gold or predictions."""
    pred, gold = resolve_predictions(predictions, gold_docs), gold_facts(gold_docs)
    n_pred = Counter(f[3] for f in pred)
    n_gold = Counter(f[3] for f in gold)
    tp = Counter(f[3] for f in pred & gold)
    out = {}
    for r in sorted(set(n_pred) | set(n_gold), key=_rel_sort_key):
        row = _prf(tp[r], n_pred[r], n_gold[r])
        out[r] = {"tp": row.pop("n_correct"), **row}
    return out


def relation_groups(train_docs: Iterable[dict], n_head: int = 10, n_tail: int = 20,
                    relations: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Split relations into "head" / "mid" / "tail" by how many training entity pairs carry them.

    The paper (Table 3) ranks relations by the number of entity pairs labelled with them:
    head = the top ``n_head``, tail = the bottom ``n_tail``, mid = the rest. Counts are of
    distinct (document, h, t) pairs; ties go by relation code (P6 before P17) so the split
    is deterministic. ``relations`` is the full vocabulary (a list, or rel2id itself; "Na"
    is skipped): relations absent from training then count 0 and land at the tail end.
    With fewer relations than n_head + n_tail, head is filled first, then tail.
    """
    pairs: dict[str, set[tuple[int, int, int]]] = {}
    for i, doc in enumerate(train_docs):
        for lab in doc.get("labels", []):
            pairs.setdefault(lab["r"], set()).add((i, lab["h"], lab["t"]))
    vocab = set(pairs) | {r for r in (relations or ()) if r != NA}
    ranked = sorted(vocab, key=lambda r: (-len(pairs.get(r, ())),) + _rel_sort_key(r))
    head = ranked[:n_head]
    rest = ranked[len(head):]
    n_t = min(n_tail, len(rest))
    return {"head": head, "mid": rest[: len(rest) - n_t], "tail": rest[len(rest) - n_t:]}


def group_scores(predictions: Iterable[Mapping], gold_docs: Sequence[dict],
                 groups: Mapping[str, Iterable[str]]) -> dict[str, dict]:
    """P/R/F1 per relation group, counting only gold and predicted facts whose relation is in it."""
    pred, gold = resolve_predictions(predictions, gold_docs), gold_facts(gold_docs)
    return _group_scores_facts(pred, gold, groups)


def _group_scores_facts(pred: set[Fact], gold: set[Fact],
                        groups: Mapping[str, Iterable[str]]) -> dict[str, dict]:
    out = {}
    for name, rels in groups.items():
        keep = set(rels)
        p = {f for f in pred if f[3] in keep}
        g = {f for f in gold if f[3] in keep}
        out[name] = _prf(len(p & g), len(p), len(g))
    return out


def _entity_sentences(doc: dict) -> list[set[int]]:
    return [{m["sent_id"] for m in ent} for ent in doc["vertexSet"]]


def _split_intra(facts: set[Fact], sents: list[list[set[int]]]) -> tuple[set[Fact], set[Fact]]:
    # intra-sentence: some mention of h and some mention of t share a sentence
    intra = {f for f in facts if sents[f[0]][f[1]] & sents[f[0]][f[2]]}
    return intra, facts - intra


def intra_inter_scores(predictions: Iterable[Mapping], gold_docs: Sequence[dict]) -> dict[str, dict]:
    """P/R/F1 on intra-sentence and inter-sentence facts ("intra", "inter").

    A pair is intra-sentence when some mention of its head and some mention of its tail
    share a sentence; predictions are split by the same rule on the gold document, so a
    correct prediction always falls on the side of its gold fact.
    """
    pred, gold = resolve_predictions(predictions, gold_docs), gold_facts(gold_docs)
    return _intra_inter_facts(pred, gold, gold_docs)


def _intra_inter_facts(pred: set[Fact], gold: set[Fact], gold_docs: Sequence[dict]) -> dict[str, dict]:
    sents = [_entity_sentences(doc) for doc in gold_docs]
    p_in, p_out = _split_intra(pred, sents)
    g_in, g_out = _split_intra(gold, sents)
    return {"intra": _prf(len(p_in & g_in), len(p_in), len(g_in)),
            "inter": _prf(len(p_out & g_out), len(p_out), len(g_out))}


def full_report(predictions: Iterable[Mapping], gold_docs: Sequence[dict],
                train_docs: Sequence[dict] | None = None, *,
                train_facts: Iterable | None = None,
                relations: Iterable[str] | None = None,
                groups: Mapping[str, Iterable[str]] | None = None) -> dict[str, float | int]:
    """score() plus head/mid/tail and intra/inter breakdowns, as one flat dict.

    Keys: everything score() returns, then ``{group}_{precision,recall,f1,n_pred,n_gold,n_correct}``
    for each relation group and for intra, inter. Ign uses ``train_facts`` when given, else
    the facts of ``train_docs``.

    Relation groups: pass ``groups`` precomputed once, e.g.
    ``relation_groups(train_docs, relations=rel2id)`` over the full vocabulary, so that every
    split is broken down by the same head / mid / tail (the recommended use; train_docs is
    then only Ign's training set). Without ``groups`` but with ``train_docs`` the groups are
    ranked here on train_docs over ``relations`` if given, else over the relations seen in
    the training and gold documents -- which can move relations between groups from one
    scored split to the next (a gold relation unseen in training lands in the tail).
    Without either, there are no head/mid/tail keys.
    """
    if groups is not None and relations is not None:
        raise ValueError("pass groups (precomputed) or relations (a vocabulary to rank here), not both")
    if groups is not None and {"intra", "inter"} & set(groups):
        raise ValueError("relation groups may not be named 'intra' or 'inter': those keys are taken")
    pred, gold = resolve_predictions(predictions, gold_docs), gold_facts(gold_docs)
    # here both may be given: groups are ranked on train_docs, Ign may use e.g. the full .fact file
    tf = _train_facts_from(None, train_facts) if train_facts is not None else _train_facts_from(train_docs, None)
    out: dict[str, float | int] = dict(_score_facts(pred, gold, gold_docs, tf))
    parts: dict[str, dict] = {}
    if groups is None and train_docs is not None:
        vocab = set(relations) if relations is not None else {f[3] for f in gold}
        groups = relation_groups(train_docs, relations=vocab)
    if groups is not None:
        parts.update(_group_scores_facts(pred, gold, groups))
    parts.update(_intra_inter_facts(pred, gold, gold_docs))
    for name, row in parts.items():
        for key, value in row.items():
            out[f"{name}_{key}"] = value
    return out


# --------------------------------------------------------------------------- predictions IO
def predictions_from_labels(docs: Sequence[dict]) -> list[dict]:
    """A document set's own labels as official-format predictions (the oracle)."""
    return [{"title": doc["title"], "h_idx": lab["h"], "t_idx": lab["t"], "r": lab["r"]}
            for doc in docs for lab in doc.get("labels", [])]


def write_predictions(predictions: Iterable[Mapping], path: str | Path) -> None:
    """Write predictions as a JSON list, atomically (temp file in the same folder + os.replace).

    Atomic so that a crash mid-write never leaves a truncated file that later reads as a
    (wrongly scored) prediction set.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{k: (int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v)
             for k, v in p.items()} for p in predictions]  # numpy ints are not JSON-serialisable
    atomic_write_json(path, rows, indent=None)


def read_predictions(path: str | Path, relations: Iterable[str] | None = None) -> list[dict]:
    """Read and validate an official-format prediction file (JSON list of {title, h_idx, t_idx, r}).

    Every problem is a PredictionError naming the file, the prediction and the field: a file
    that is not UTF-8 JSON or not a list, a row that is not an object, a missing field, a title
    that is not a string, indices that are not integers, r not a relation code (or "Na"), and,
    when `relations` (a vocabulary, e.g. rel2id) is given, a relation outside it. Titles and
    index ranges need the gold documents: resolve_predictions checks those.
    """
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _bad(path, None, None, f"not a valid UTF-8 JSON file ({e})") from None
    if not isinstance(rows, list):
        raise _bad(path, None, None, f"predictions must be a JSON list, got {type(rows).__name__}")
    vocab = set(relations) if relations is not None else None
    for k, row in enumerate(rows):
        if not isinstance(row, dict):
            raise _bad(path, k, "<prediction>", f"prediction {k} is not an object: {row!r}")
        for field in REQUIRED_FIELDS:
            if field not in row:
                raise _bad(path, k, field, f"prediction {k} has no {field!r} field: {row!r}")
        if not isinstance(row["title"], str):
            raise _bad(path, k, "title", f"title must be a string, got {row['title']!r}")
        for field in ("h_idx", "t_idx"):
            _index(row, field, path, k)
        _check_relation(row["r"], path, k, vocab)
    return rows


def read_documents(path: str | Path, relations: Iterable[str] | None = None, labelled: bool = False) -> list[dict]:
    """Gold or training documents of the CLI, checked as pemscl.data checks any DocRED file
    (data.DocumentError naming the file, document and field), so that a broken file never
    surfaces as a KeyError mid-scoring. Relations are checked against `relations` when given,
    else only for being codes (strings): the scorer needs no vocabulary. `labelled`: every
    document must have `labels` (gold: an unlabelled one cannot be scored). Duplicate labels
    stay: the scorer de-duplicates facts itself."""
    try:
        docs = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise D.DocumentError(f"{path}: not a valid UTF-8 JSON file ({e})") from None
    if not isinstance(docs, list):
        raise D.DocumentError(f"{path}: expected a JSON list of documents, got {type(docs).__name__}")
    if relations is None:  # the documents' own codes; anything else in `r` fails as not a string
        relations = {lab["r"] for d in docs if isinstance(d, dict) and isinstance(d.get("labels"), list)
                     for lab in d["labels"] if isinstance(lab, dict) and isinstance(lab.get("r"), str)}
    D.validate_docs(docs, source=str(path), rel2id=dict.fromkeys(relations, 0))
    for i, doc in enumerate(docs):
        if labelled and "labels" not in doc:
            raise D.DocumentError(f"{path}: document {i} (title {doc['title']!r}): field labels: missing "
                                  "(an unlabelled gold document cannot be scored)")
    return docs


# --------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> dict:
    """python -m pemscl.evaluate PRED.json GOLD.json [--train TRAIN.json | --facts TRAIN.fact]"""
    ap = argparse.ArgumentParser(prog="python -m pemscl.evaluate", description=main.__doc__)
    ap.add_argument("predictions")
    ap.add_argument("gold")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--train", help="training documents (JSON) for Ign F1 and head/mid/tail")
    src.add_argument("--facts", help="a precomputed .fact file for Ign F1")
    ap.add_argument("--relations", help="rel2id.json: refuse predicted relations outside it "
                                        "(without it they count as wrong predictions, as in the official script)")
    args = ap.parse_args(argv)
    vocab = json.loads(Path(args.relations).read_text(encoding="utf-8")) if args.relations else None
    gold = read_documents(args.gold, vocab, labelled=True)
    train = read_documents(args.train, vocab) if args.train else None
    facts = read_fact_file(args.facts) if args.facts else None
    preds = read_predictions(args.predictions, relations=vocab)
    resolve_predictions(preds, gold, source=args.predictions)  # so that its errors name the file
    rep = full_report(preds, gold, train, train_facts=facts)
    print(json.dumps(rep, indent=1))
    return rep


if __name__ == "__main__":
    import sys

    try:
        main()
    except (PredictionError, D.DocumentError) as e:  # a bad input file: one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
