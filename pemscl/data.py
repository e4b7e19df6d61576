"""DocRED-format data: where it lives, checking it, loading it, and the data regimes.

    from pemscl import data as D
    reg = D.load_regime("oog-mini")       # train on original labels, select on original, test on gold
    reg.train, reg.dev, reg.test, reg.dev_gold
    D.regime_stats(reg)                   # one row per split
    D.noisy("redocred-mini", drop=0.5)    # simulated false negatives, seeded

A data set of one's own, with its own relations (BC5CDR is registered this way as "cdr"):

    D.register_regime(D.CustomRegime("mydata", train="/abs/train.json", dev="my/dev.json",
                                     test="my/test.json", relations=("CID",), no_relation="NR"))
    reg = D.load_regime("mydata")         # reg.rel2id == {"Na": 0, "CID": 1}; reg.cleaning per split

A document is a dict with `title`, `sents` (list of word lists), `vertexSet` (entities, each
a list of mentions {name, pos, sent_id, type}) and optionally `labels` ({h, t, r, evidence}).
Documents are always addressed by their position in a list: titles are not unique in general.

Command line: `python -m pemscl.data {check,stats REGIME,fetch}`.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import random
import re
import sys
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .registry import claim, lookup
from .utils import REPO

log = logging.getLogger(__name__)

NA = "Na"
# DocRED's relation set (meta/rel2id.json) only: a regime with its own relations carries its
# own rel2id (Regime.rel2id, regime_rel2id), and nothing else here assumes these sizes.
NUM_RELATIONS = 96
NUM_CLASSES = 97  # column 0 = NA

SUMS_FILE = "SHA256SUMS"

# Where each file is officially published. Messages quote these so a user on another machine
# knows what to download and from where.
DOCRED_SOURCE = ("DocRED: the Google Drive folder linked from the README of "
                 "https://github.com/thunlp/DocRED")
REDOCRED_SOURCE = "Re-DocRED: https://github.com/tonytan48/Re-DocRED (folder data/)"
META_SOURCE = "PEMSCL: https://github.com/guojiapub/PEMSCL (folder meta/)"
REDOCRED_RAW = "https://raw.githubusercontent.com/tonytan48/Re-DocRED/main/data/{name}"


@dataclass(frozen=True)
class DataFile:
    description: str
    source: str
    size: int | None = None  # known byte size, when published (a weak check for unlisted files)


KNOWN_FILES: dict[str, DataFile] = {
    "redocred/train_revised.json": DataFile("Re-DocRED train, gold labels (3,053 docs)", REDOCRED_SOURCE, 18_602_933),
    "redocred/dev_revised.json": DataFile("Re-DocRED dev, gold labels (500 docs)", REDOCRED_SOURCE),
    "redocred/test_revised.json": DataFile("Re-DocRED test, gold labels (500 docs)", REDOCRED_SOURCE),
    "docred/train_annotated.json": DataFile("DocRED human-annotated train, original labels (3,053 docs)",
                                            DOCRED_SOURCE, 13_029_595),
    "docred/dev.json": DataFile("DocRED dev, original labels", DOCRED_SOURCE, 4_287_303),
    "docred/test.json": DataFile("DocRED test, no labels (1,000 docs)",
                                 DOCRED_SOURCE + "; also https://github.com/guojiapub/PEMSCL (dataset/docred/)"),
    "docred/train_annotated.subset.json": DataFile(
        "761 of DocRED's annotated train docs, original labels",
        "the JEREX re-split of DocRED (Text2KGAgent data/datasets/docred/); shipped in the shared data folder"),
    "docred/dev.subset.json": DataFile(
        "316 DocRED dev docs, original labels",
        "the JEREX re-split of DocRED and https://github.com/AndrewZhe/Revisit-DocRED (valid_revise); "
        "shipped in the shared data folder"),
    "docred/train_annotated.fact": DataFile(
        "(head, tail, relation) name facts of the full DocRED train set, for Ign F1",
        "https://github.com/wisper12933/LMRC, or written by the official DocRED scorer from "
        "docred/train_annotated.json (" + DOCRED_SOURCE + ")"),
    "meta/rel2id.json": DataFile("relation ids (Na = 0)", META_SOURCE),
    "meta/rel_info.json": DataFile("relation names", META_SOURCE),
    "revisit-docred/valid_revise.json": DataFile("96 DocRED dev docs with TP/FP judgements",
                                                 "https://github.com/AndrewZhe/Revisit-DocRED"),
    "revisit-docred/valid_scratch.json": DataFile("the same 96 docs re-annotated from scratch",
                                                  "https://github.com/AndrewZhe/Revisit-DocRED"),
    "cdr/train.json": DataFile("BC5CDR train in DocRED format", "https://github.com/tri154/DocReDataParse"),
    "cdr/dev.json": DataFile("BC5CDR dev in DocRED format", "https://github.com/tri154/DocReDataParse"),
    "cdr/test.json": DataFile("BC5CDR test in DocRED format", "https://github.com/tri154/DocReDataParse"),
}

# Files whose labels use another vocabulary than meta/rel2id.json, as written in the files
# ("NR" = no relation given explicitly; the "cdr" regime removes it, see CDR below).
CDR_REL2ID = {"NR": 0, "CID": 1}
OTHER_VOCAB = {p: CDR_REL2ID for p in ("cdr/train.json", "cdr/dev.json", "cdr/test.json")}


class DataNotFoundError(FileNotFoundError):
    """A data directory or file is missing; the message says where to get it."""


class ChecksumError(ValueError):
    """A data file's sha256 differs from SHA256SUMS."""


class DocumentError(ValueError):
    """A document breaks the DocRED format; the message names source, index, title and field."""


class DataCleaningWarning(UserWarning):
    """Loading removed something from valid documents (duplicate labels, None in evidence).

    `counts` holds what was removed, as clean_labels counts it; `source` names the file or regime.
    """

    def __init__(self, message: str, counts: Mapping[str, int] | None = None, source: str = ""):
        super().__init__(message)
        self.counts = dict(counts or {})
        self.source = source


# --------------------------------------------------------------------------- data directory
def data_dir() -> Path:
    """$PEMSCL_DATA, else <repo>/data when it holds the files, else <repo>/../shared/data."""
    env = os.environ.get("PEMSCL_DATA")
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise DataNotFoundError(f"PEMSCL_DATA={env} is not a directory")
        return p
    local = REPO / "data"
    if (local / "meta" / "rel2id.json").exists():
        return local
    shared = REPO.parent / "shared" / "data"
    if shared.is_dir():
        return shared
    raise DataNotFoundError(
        f"no DocRED data found: set PEMSCL_DATA to a folder laid out like {local} "
        f"(see {local / 'README.md'}), or put the files there. Official copies: {DOCRED_SOURCE}; "
        f"{REDOCRED_SOURCE}; {META_SOURCE}. `python -m pemscl.data fetch` downloads Re-DocRED.")


def _root(root: str | Path | None) -> Path:
    return Path(root) if root is not None else data_dir()


# --------------------------------------------------------------------------- checksums
_SUMS_CACHE: dict[tuple, dict[str, str]] = {}
_SHA_CACHE: dict[tuple, str] = {}
_WARNED_UNLISTED: set[str] = set()


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


def read_sums(root: str | Path | None = None) -> dict[str, str]:
    """{relative path: sha256} from <root>/SHA256SUMS (empty when there is none)."""
    path = _root(root) / SUMS_FILE
    if not path.exists():
        return {}
    key = _stat_key(path)
    if key not in _SUMS_CACHE:
        sums = {}
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            digest, name = line.split(maxsplit=1)
            name = name.lstrip("*")  # binary-mode marker of sha256sum
            sums[name[2:] if name.startswith("./") else name] = digest.lower()
        _SUMS_CACHE[key] = sums
    return _SUMS_CACHE[key]


def sha256_file(path: str | Path) -> str:
    """sha256 of a file, cached per (path, mtime, size) so repeated loads cost a stat()."""
    path = Path(path)
    key = _stat_key(path)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def _source_hint(rel_path: str) -> str:
    info = KNOWN_FILES.get(rel_path)
    return f"official source: {info.source}" if info else "not a known file of this project"


def data_file(rel_path: str, root: str | Path | None = None, verify: bool = True) -> Path:
    """Path of a data file, checked against SHA256SUMS when listed there.

    Files not listed (a user's own full train file, say) are used unverified, with a logged
    warning once per file.
    """
    base = _root(root)
    rel_path = rel_path[2:] if rel_path.startswith("./") else rel_path
    path = base / rel_path
    if not path.is_file():
        raise DataNotFoundError(f"data file {rel_path} not found in {base}; {_source_hint(rel_path)}. "
                                "Place it there or point PEMSCL_DATA at a folder holding it.")
    if not verify:
        return path
    expected = read_sums(base).get(rel_path)
    if expected is None:
        if str(path) not in _WARNED_UNLISTED:
            _WARNED_UNLISTED.add(str(path))
            info = KNOWN_FILES.get(rel_path)
            size_note = ""
            if info and info.size is not None and path.stat().st_size != info.size:
                size_note = f"; its size {path.stat().st_size:,} differs from the published {info.size:,} bytes"
            log.warning("%s is not listed in %s: loading it unverified%s", path, base / SUMS_FILE, size_note)
        return path
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(f"checksum mismatch for {rel_path} in {base}: expected sha256 {expected}, "
                            f"got {actual}. The file is damaged or not the published one; "
                            f"{_source_hint(rel_path)}.")
    return path


# --------------------------------------------------------------------------- loading
def load_docs(rel_path_or_path: str | Path, root: str | Path | None = None,
              validate: bool = True, clean: bool = True) -> list[dict]:
    """Documents from a JSON list.

    A `str` that is not an absolute path is taken relative to the data directory (and
    checksum-verified); a `Path` or absolute string is read as it is. With `validate`, every
    document is checked (DocumentError naming file, document and field), and then, with `clean`,
    exact duplicate labels (same h, t, r in a document) are removed after the first and None
    entries of evidence lists dropped, as the BC5CDR regime does: counted, and reported in one
    DataCleaningWarning. Without `validate` the file's content comes back as it is.
    """
    if isinstance(rel_path_or_path, str) and not os.path.isabs(rel_path_or_path):
        rel = rel_path_or_path[2:] if rel_path_or_path.startswith("./") else rel_path_or_path
        path, source, vocab = data_file(rel, root), rel, OTHER_VOCAB.get(rel)
    else:
        path = Path(rel_path_or_path)
        if not path.is_file():
            raise DataNotFoundError(f"data file {path} not found")
        source, vocab = str(path), None
    try:  # UTF-8 whatever the locale; a broken file is an error naming it, not a bare decoder error
        with open(path, encoding="utf-8") as f:
            docs = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DocumentError(f"{source}: not a valid UTF-8 JSON file ({e})") from None
    if not isinstance(docs, list):
        raise DocumentError(f"{source}: expected a JSON list of documents, got {type(docs).__name__}")
    if validate:
        validate_docs(docs, source=source, rel2id=vocab if vocab is not None else load_rel2id(root))
        if clean:
            docs = _drop_duplicates(docs, source)
    return docs


def _drop_duplicates(docs: list[dict], source: str) -> list[dict]:
    """clean_labels without a no-relation label (documents without labels stay so), warned
    about when it removed anything. Documents it does not change are returned as they are."""
    out, counts = clean_labels(docs, no_relation=None, labelled=False)
    if not (counts["duplicates"] or counts["evidence_none"]):
        return docs
    what = [f"{counts['duplicates']:,} duplicate labels removed (same h, t, r in a document; the first kept)"
            if counts["duplicates"] else "",
            f"None removed from the evidence of {counts['evidence_none']:,} labels" if counts["evidence_none"] else ""]
    warnings.warn(DataCleaningWarning(f"{source}: " + "; ".join(w for w in what if w)
                                      + f"; {counts['kept']:,} labels kept", counts, source), stacklevel=3)
    return [new if new != old else old for new, old in zip(out, docs)]


def load_rel2id(root: str | Path | None = None) -> dict[str, int]:
    """meta/rel2id.json, checked to be exactly 96 relations plus "Na" at 0."""
    path = data_file("meta/rel2id.json", root)
    with open(path) as f:
        rel2id = json.load(f)
    ids = sorted(rel2id.values()) if isinstance(rel2id, dict) else None
    if (ids != list(range(NUM_CLASSES)) or rel2id.get(NA) != 0
            or not all(re.fullmatch(r"P\d+", r) for r in rel2id if r != NA)):
        raise ValueError(f"{path} must map 'Na' to 0 and {NUM_RELATIONS} Wikidata relations (P...) "
                         f"to 1..{NUM_RELATIONS}")
    return {r: int(i) for r, i in rel2id.items()}


def id2rel(rel2id: Mapping[str, int] | None = None, root: str | Path | None = None) -> dict[int, str]:
    """{id: relation code}, the inverse of rel2id (loaded when not given)."""
    rel2id = load_rel2id(root) if rel2id is None else rel2id
    return {i: r for r, i in rel2id.items()}


def relation_names(root: str | Path | None = None) -> dict[str, str]:
    """{relation code: readable name} from meta/rel_info.json, with "Na" -> "no relation"."""
    with open(data_file("meta/rel_info.json", root)) as f:
        names = dict(json.load(f))
    names[NA] = "no relation"
    return names


# --------------------------------------------------------------------------- validation
def _is_index(v: Any) -> bool:
    # JSON true/false load as bool, a subclass of int: never an index
    return isinstance(v, int) and not isinstance(v, bool)


def _utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_docs(docs: Sequence[Any], source: str = "docs",
                  rel2id: Mapping[str, int] | None = None) -> list[dict]:
    """Check every document; raise DocumentError at the first problem. Returns `docs` unchanged.

    `labels` may be absent (an unlabelled test set) and then counts as []. Relation codes are
    checked against `rel2id` (default: meta/rel2id.json). Duplicate titles are allowed (documents
    are addressed by position) but reported in one warning. Titles, words, mention names and
    types (optional) are strings that UTF-8 can encode; indices are ints, never bools; `evidence`
    (optional) lists sentence indices (None entries tolerated, as BC5CDR writes them). Duplicate
    labels are valid here: load_docs and the regimes remove and count them.
    """
    vocab = load_rel2id() if rel2id is None else rel2id
    if not isinstance(docs, (list, tuple)):
        raise DocumentError(f"{source}: expected a list of documents, got {type(docs).__name__}")

    for i, doc in enumerate(docs):
        title = doc.get("title") if isinstance(doc, dict) else None

        def fail(fld: str, problem: str) -> None:
            raise DocumentError(f"{source}: document {i} (title {title!r}): field {fld}: {problem}")

        def require(obj: Any, where: str, what: str, keys: tuple[str, ...]) -> None:
            if not isinstance(obj, dict):
                fail(where, f"{what} must be a dict, got {type(obj).__name__}")
            for key in keys:
                if key not in obj:
                    fail(f"{where}.{key}", "missing")

        def text(value: Any, fld: str) -> None:
            # a lone surrogate (JSON allows "\ud83d", e.g. half of a cut emoji) is a str that cannot
            # be written as UTF-8: hashing titles, caching features and tokenising would fail later
            if not isinstance(value, str):
                fail(fld, f"must be a string, got {type(value).__name__}")
            if not _utf8(value):
                fail(fld, f"{value!r} is not valid Unicode (lone surrogate)")

        if not isinstance(doc, dict):
            fail("<document>", f"expected a dict, got {type(doc).__name__}")
        for key in ("title", "sents", "vertexSet"):
            if key not in doc:
                fail(key, "missing")
        text(title, "title")
        sents = doc["sents"]
        if not isinstance(sents, list):
            fail("sents", f"must be a list of word lists, got {type(sents).__name__}")
        for s, sent in enumerate(sents):
            if not isinstance(sent, list):
                fail(f"sents[{s}]", f"a sentence must be a list of words, got {type(sent).__name__}")
            if not all(isinstance(w, str) for w in sent) or not _utf8("".join(sent)):
                for w, word in enumerate(sent):  # the slow path only where a word is broken
                    text(word, f"sents[{s}][{w}]")
        ents = doc["vertexSet"]
        if not isinstance(ents, list):
            fail("vertexSet", f"must be a list of entities, got {type(ents).__name__}")
        if not ents:
            fail("vertexSet", "empty (a document needs at least one entity)")
        for e, ent in enumerate(ents):
            if not isinstance(ent, list) or not ent:
                fail(f"vertexSet[{e}]", "entity has no mentions" if isinstance(ent, list) else
                     f"an entity must be a list of mentions, got {type(ent).__name__}")
            for m, men in enumerate(ent):
                where = f"vertexSet[{e}][{m}]"
                require(men, where, "mention", ("pos", "sent_id", "name"))
                text(men["name"], f"{where}.name")
                if "type" in men:  # optional (hand-made documents), a string when given
                    text(men["type"], f"{where}.type")
                sid, pos = men["sent_id"], men["pos"]
                if not _is_index(sid) or not 0 <= sid < len(sents):
                    fail(f"{where}.sent_id", f"{sid!r} out of range for {len(sents)} sentences")
                if (not isinstance(pos, (list, tuple)) or len(pos) != 2
                        or not all(_is_index(p) for p in pos)
                        or not 0 <= pos[0] < pos[1] <= len(sents[sid])):
                    fail(f"{where}.pos", f"{pos!r} is not a span inside sentence {sid} "
                                         f"of {len(sents[sid])} words")
        labels = doc.get("labels", [])
        if not isinstance(labels, list):
            fail("labels", f"must be a list, got {type(labels).__name__}")
        for k, lab in enumerate(labels):
            where = f"labels[{k}]"
            require(lab, where, "label", ("r", "h", "t"))
            for key in ("h", "t"):
                v = lab[key]
                if not _is_index(v) or not 0 <= v < len(ents):
                    fail(f"{where}.{key}", f"{v!r} out of range for {len(ents)} entities")
            if lab["h"] == lab["t"]:
                fail(f"{where}.h", f"head equals tail ({lab['h']})")
            r = lab["r"]
            if not isinstance(r, str):  # also keeps unhashable values away from `in vocab`
                fail(f"{where}.r", f"must be a relation code string, got {type(r).__name__}")
            if r == NA:
                fail(f"{where}.r", f"{NA!r} is not a relation label (leave the pair unlabelled)")
            if r not in vocab:
                fail(f"{where}.r", f"unknown relation {r!r}")
            ev = lab.get("evidence")
            if ev is not None:  # absent or null: no evidence given
                if not isinstance(ev, list):
                    fail(f"{where}.evidence", f"must be a list of sentence indices, got {type(ev).__name__}")
                for j, x in enumerate(ev):
                    # None entries are tolerated (BC5CDR writes [None]); loading removes them, counted
                    if x is not None and (not _is_index(x) or not 0 <= x < len(sents)):
                        fail(f"{where}.evidence[{j}]", f"{x!r} is not a sentence index (0..{len(sents) - 1})")

    titles = Counter(d["title"] for d in docs)
    dups = sorted(t for t, c in titles.items() if c > 1)
    if dups:
        warnings.warn(f"{source}: {len(dups)} duplicate titles (documents are kept apart by position): "
                      + ", ".join(map(repr, dups[:20])) + (" ..." if len(dups) > 20 else ""), stacklevel=2)
    return docs


# --------------------------------------------------------------------------- pairing original / gold
MENTION_KEYS = ("name", "pos", "sent_id", "type")


def _entities_key(doc: dict) -> list:
    # Re-DocRED adds bookkeeping fields (global_pos, index) to each mention: "identical
    # vertexSet" means the same entities, mentions, spans, names and types, in the same order.
    return [[tuple((k, json.dumps(m.get(k))) for k in MENTION_KEYS) for m in ent] for ent in doc["vertexSet"]]


@dataclass
class DocumentMatch:
    pairs: list[tuple[int, int]]             # (original index, gold index), identical vertexSet
    vertexset_differs: list[tuple[int, int]]  # same title but another vertexSet: never paired

    @property
    def n_vertexset_differs(self) -> int:
        return len(self.vertexset_differs)


def match_documents(original_docs: Sequence[dict], gold_docs: Sequence[dict]) -> DocumentMatch:
    """Pair documents by title whose vertexSet is identical (so entity indices mean the same).

    On docred/dev.subset.json against Re-DocRED dev+test: 283 pairs and 33 title matches whose
    vertexSet differs; those 33 must not be paired, their labels index other entities.
    """
    by_title: dict[str, list[int]] = defaultdict(list)
    for j, d in enumerate(gold_docs):
        by_title[d["title"]].append(j)
    used: set[int] = set()
    pairs, differs = [], []
    gold_keys: dict[int, list] = {}
    for i, d in enumerate(original_docs):
        cands = [j for j in by_title.get(d["title"], []) if j not in used]
        if not cands:
            continue
        key = _entities_key(d)
        hit = None
        for j in cands:
            if j not in gold_keys:
                gold_keys[j] = _entities_key(gold_docs[j])
            if gold_keys[j] == key:
                hit = j
                break
        if hit is None:
            differs.append((i, cands[0]))
        else:
            used.add(hit)
            pairs.append((i, hit))
    return DocumentMatch(pairs, differs)


def paired_documents(original_docs: Sequence[dict], gold_docs: Sequence[dict]) -> list[tuple[int, int]]:
    """(original index, gold index) of documents with the same title and identical vertexSet."""
    return match_documents(original_docs, gold_docs).pairs


# --------------------------------------------------------------------------- regimes
@dataclass
class Regime:
    name: str
    train: list[dict]
    dev: list[dict]
    test: list[dict]
    label_source: dict[str, str]  # split -> "gold" | "original" | "none" | "...-dropped"
    description: str = ""
    dev_gold: list[dict] | None = None  # gold labels for the same dev docs, when both exist (oog)
    # the relation set: None = DocRED's 97 classes of meta/rel2id.json; else {"Na": 0, r1: 1, ...}
    rel2id: dict[str, int] | None = None
    # split -> {what was removed or repaired while loading: count} (see clean_labels)
    cleaning: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # readable findings about the files

    def split(self, name: str) -> list[dict]:
        if name not in ("train", "dev", "test", "dev_gold") or (name == "dev_gold" and self.dev_gold is None):
            raise KeyError(f"regime {self.name} has no split {name!r}")
        return getattr(self, name)

    def splits(self) -> list[str]:
        return ["train", "dev", "test"] + (["dev_gold"] if self.dev_gold is not None else [])

    def relation_ids(self, root: str | Path | None = None) -> dict[str, int]:
        """This regime's rel2id: its own, else DocRED's (meta/rel2id.json)."""
        return dict(self.rel2id) if self.rel2id is not None else load_rel2id(root)


REGIMES = ("redocred-mini", "oog-mini", "ogg-mini", "redocred", "docred", "oog", "ogg")
MINI_TRAIN = 400  # of Re-DocRED dev's 500 docs; the other 100 are redocred-mini's dev


def _title_rank(title: str) -> str:
    return hashlib.sha256(title.encode("utf-8")).hexdigest()


def split_by_title_hash(docs: Sequence[dict], n_first: int) -> tuple[list[dict], list[dict]]:
    """Deterministic split: order indices by (sha256(title), index); the first n_first go left.

    Depends on nothing but the titles, so it is the same on every machine and run, and a
    document never changes side when others are added to the file.
    """
    order = sorted(range(len(docs)), key=lambda i: (_title_rank(docs[i]["title"]), i))
    left, right = sorted(order[:n_first]), sorted(order[n_first:])  # keep file order inside each
    return [docs[i] for i in left], [docs[i] for i in right]


def _require(root: Path, name: str, files: Iterable[str]) -> None:
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        hints = "; ".join(f"{f}: {KNOWN_FILES[f].source}" for f in missing)
        raise DataNotFoundError(f"regime {name!r} needs {', '.join(missing)}, not found in {root}. "
                                f"Get the official files ({hints}) and place them there "
                                "(Re-DocRED: `python -m pemscl.data fetch`).")


def _oog_dev(original: list[dict], gold: list[dict]) -> tuple[list[dict], list[dict]]:
    pairs = paired_documents(original, gold)
    return [original[i] for i, _ in pairs], [gold[j] for _, j in pairs]


def load_regime(name: str, root: str | Path | None = None) -> Regime:
    """A regime by name: one of REGIMES (DocRED's relations) or a registered one (regime_names()).

    The "-mini" regimes and "cdr" run on the shared data; the other DocRED regimes need full files.
    """
    if name in _REGISTRY:
        return _load_registered(name, _root(root))
    if name not in REGIMES:
        lookup(_REGISTRY, name, what="regime", known=regime_names())  # neither built in nor registered: says so
    return _drop_duplicates_per_split(_load_docred_regime(name, _root(root)))


def _drop_duplicates_per_split(reg: Regime) -> Regime:
    """Duplicate labels (and None in evidence) removed from each split, counted in reg.cleaning
    and reg.notes as the BC5CDR regime counts its own, and warned about once. Nothing is recorded
    for a split that had none (DocRED's and Re-DocRED's published files have none)."""
    for s in reg.splits():
        docs = reg.split(s)
        out, counts = clean_labels(docs, no_relation=None, labelled=False)
        if counts["duplicates"] or counts["evidence_none"]:
            setattr(reg, s, [new if new != old else old for new, old in zip(out, docs)])
            reg.cleaning[s] = counts
    if reg.cleaning:
        notes = _cleaning_notes(reg.cleaning, None)
        reg.notes.extend(notes)
        total = Counter()
        for counts in reg.cleaning.values():
            total.update(counts)
        warnings.warn(DataCleaningWarning(f"regime {reg.name!r}: " + " ".join(notes), dict(total), reg.name),
                      stacklevel=3)
    return reg


def _load_docred_regime(name: str, base: Path) -> Regime:
    load = lambda rel: load_docs(rel, base, clean=False)  # noqa: E731 (cleaned per split by the caller)
    gold3 = {"train": "gold", "dev": "gold", "test": "gold"}

    if name == "redocred-mini":
        _require(base, name, ["redocred/dev_revised.json", "redocred/test_revised.json"])
        train, dev = split_by_title_hash(load("redocred/dev_revised.json"), MINI_TRAIN)
        return Regime(name, train, dev, load("redocred/test_revised.json"), dict(gold3),
                      "Re-DocRED dev split by sha256(title) into 400 train / 100 dev; "
                      "test = Re-DocRED test. Gold labels throughout.")
    if name in ("oog-mini", "ogg-mini"):
        files = ["docred/train_annotated.subset.json", "docred/dev.subset.json",
                 "redocred/dev_revised.json", "redocred/test_revised.json"]
        _require(base, name, files)
        dev_orig, dev_gold = _oog_dev(load("docred/dev.subset.json"), load("redocred/dev_revised.json"))
        train, test = load("docred/train_annotated.subset.json"), load("redocred/test_revised.json")
        if name == "oog-mini":
            return Regime(name, train, dev_orig, test,
                          {"train": "original", "dev": "original", "test": "gold", "dev_gold": "gold"},
                          "train: 761 DocRED train docs, original labels; dev: the 138 docred/dev.subset "
                          "docs in Re-DocRED dev with identical vertexSet, original labels (dev_gold: "
                          "the same docs with gold labels); test: Re-DocRED test, gold.", dev_gold=dev_gold)
        return Regime(name, train, dev_gold, test, {"train": "original", "dev": "gold", "test": "gold"},
                      "train: 761 DocRED train docs, original labels; dev: the same 138 docs as oog-mini "
                      "with Re-DocRED gold labels; test: Re-DocRED test, gold.")
    if name == "redocred":
        files = ["redocred/train_revised.json", "redocred/dev_revised.json", "redocred/test_revised.json"]
        _require(base, name, files)
        return Regime(name, *(load(f) for f in files), dict(gold3),
                      "Re-DocRED: train / dev / test, gold labels.")
    if name == "docred":
        files = ["docred/train_annotated.json", "docred/dev.json", "docred/test.json"]
        _require(base, name, files)
        return Regime(name, *(load(f) for f in files), {"train": "original", "dev": "original", "test": "none"},
                      "DocRED: annotated train / dev, original labels; test has no public labels.")
    if name == "oog":
        files = ["docred/train_annotated.json", "docred/dev.json", "redocred/dev_revised.json",
                 "redocred/test_revised.json"]
        _require(base, name, files)
        dev_orig, dev_gold = _oog_dev(load("docred/dev.json"), load("redocred/dev_revised.json"))
        return Regime(name, load("docred/train_annotated.json"), dev_orig, load("redocred/test_revised.json"),
                      {"train": "original", "dev": "original", "test": "gold", "dev_gold": "gold"},
                      "OOG-DocRE: DocRED train (original); dev: DocRED dev docs in Re-DocRED dev with "
                      "identical vertexSet (original; dev_gold: gold); test: Re-DocRED test (gold).",
                      dev_gold=dev_gold)
    # ogg
    files = ["docred/train_annotated.json", "redocred/dev_revised.json", "redocred/test_revised.json"]
    _require(base, name, files)
    return Regime(name, *(load(f) for f in files), {"train": "original", "dev": "gold", "test": "gold"},
                  "OGG-DocRE: DocRED train (original); dev and test: Re-DocRED (gold).")


# --------------------------------------------------------------------------- one's own data sets
def make_rel2id(relations: Sequence[str]) -> dict[str, int]:
    """{"Na": 0, relations[0]: 1, ...}: the layout every regime's rel2id has (column 0 = NA)."""
    rels = list(relations)
    dup = sorted(r for r, c in Counter(rels).items() if c > 1)
    if not rels or dup or NA in rels or not all(isinstance(r, str) and r for r in rels):
        raise ValueError(f"relations must be distinct non-empty strings other than {NA!r}, at least one; "
                         f"got {rels!r}" + (f" (repeated: {dup})" if dup else ""))
    return {NA: 0, **{r: i + 1 for i, r in enumerate(rels)}}


def check_rel2id(rel2id: Mapping[str, int], what: str = "rel2id") -> dict[str, int]:
    """A regime's rel2id must map "Na" to 0 and its relations to 1..n (the model's columns)."""
    if not isinstance(rel2id, Mapping) or rel2id.get(NA) != 0 or sorted(rel2id.values()) != list(range(len(rel2id))):
        raise ValueError(f"{what} must map {NA!r} to 0 and its relations to 1..n, got {rel2id!r}")
    if len(rel2id) < 2:
        raise ValueError(f"{what} has no relation besides {NA!r}")
    return {str(r): int(i) for r, i in rel2id.items()}


def clean_labels(docs: Sequence[dict], no_relation: str | None = None,
                 labelled: bool = True) -> tuple[list[dict], dict[str, int]]:
    """Documents ready for training and scoring, and what it took, counted.

    - labels whose relation is `no_relation` (an explicit negative, e.g. CDR's "NR") are
      removed: the pair is NA, as every unlabelled pair is. Those on a pair that also carries
      a real relation are counted apart (`no_relation_on_positive_pair`): the relation stands.
    - exact duplicate labels (same h, t, r in a document) are removed after the first.
    - `None` entries of a kept label's evidence list are removed (CDR writes [None]).
    - a document of a labelled split without `labels` gets [] (every pair NA), counted.
    Counts: labels_in_file = no_relation + duplicates + kept. The input is not modified.
    """
    c = Counter({k: 0 for k in ("docs", "labels_in_file", "no_relation", "no_relation_on_positive_pair",
                                "duplicates", "kept", "evidence_none", "missing_labels")})
    out = []
    for doc in docs:
        c["docs"] += 1
        if "labels" not in doc:
            if labelled:
                c["missing_labels"] += 1
                doc = {**doc, "labels": []}
            out.append(doc)
            continue
        labels = doc["labels"]
        positive_pairs = {(lab["h"], lab["t"]) for lab in labels if lab["r"] != no_relation}
        seen: set[tuple[int, int, str]] = set()
        kept = []
        for lab in labels:
            c["labels_in_file"] += 1
            key = (lab["h"], lab["t"], lab["r"])
            if lab["r"] == no_relation:
                c["no_relation"] += 1
                c["no_relation_on_positive_pair"] += key[:2] in positive_pairs
                continue
            if key in seen:
                c["duplicates"] += 1
                continue
            seen.add(key)
            ev = lab.get("evidence")
            if isinstance(ev, list) and any(e is None for e in ev):
                c["evidence_none"] += 1
                lab = {**lab, "evidence": [e for e in ev if e is not None]}
            kept.append(lab)
        c["kept"] += len(kept)
        out.append({**doc, "labels": kept})
    return out, dict(c)


def _entity_type(ent: list[dict]) -> str:
    types = {m.get("type") for m in ent}
    return str(types.pop()) if len(types) == 1 else "/".join(sorted(map(str, types)))


def check_entity_types(docs: Sequence[dict], types: Iterable[str], source: str) -> None:
    """Every mention's `type` is one of `types`; DocumentError naming doc and field otherwise."""
    allowed = set(types)
    for i, doc in enumerate(docs):
        for e, ent in enumerate(doc["vertexSet"]):
            for m, men in enumerate(ent):
                if men.get("type") not in allowed:
                    raise DocumentError(f"{source}: document {i} (title {doc.get('title')!r}): field "
                                        f"vertexSet[{e}][{m}].type: {men.get('type')!r} is not one of "
                                        f"{sorted(allowed)}")


def label_type_pairs(docs: Sequence[dict]) -> dict[str, dict[str, int]]:
    """{relation: {"HEADTYPE->TAILTYPE": labels}}: how a data set orients its pairs."""
    out: dict[str, Counter] = defaultdict(Counter)
    for d in docs:
        ents = d["vertexSet"]
        for lab in d.get("labels", []):
            out[lab["r"]][f"{_entity_type(ents[lab['h']])}->{_entity_type(ents[lab['t']])}"] += 1
    return {r: dict(c.most_common()) for r, c in sorted(out.items())}


@dataclass(frozen=True)
class CustomRegime:
    """A data set of one's own in DocRED format, with its own relation set.

    Files are relative to the data directory (checksummed when SHA256SUMS lists them) or absolute
    paths. `relations` are the label codes in column order (ids 1..n; "Na" is 0); a label with any
    other relation is an error naming its document and field, except `no_relation`, the name of
    an explicit "no relation" label if the data has one: such labels are removed and counted.
    `label_source` says what each split's labels are ("gold", "original", "none" = unlabelled).
    `entity_types`, when given, are the only allowed mention types.
    """

    name: str
    train: str | Path
    dev: str | Path
    test: str | Path
    relations: tuple[str, ...]
    no_relation: str | None = None
    label_source: Mapping[str, str] = field(
        default_factory=lambda: {"train": "gold", "dev": "gold", "test": "gold"})
    entity_types: tuple[str, ...] | None = None
    description: str = ""

    @property
    def rel2id(self) -> dict[str, int]:
        rel2id = make_rel2id(self.relations)
        if self.no_relation is not None and (self.no_relation in rel2id):
            raise ValueError(f"regime {self.name!r}: no_relation {self.no_relation!r} may not be one of its "
                             f"relations or {NA!r}")
        return rel2id

    def load(self, root: str | Path | None = None) -> Regime:
        rel2id, base = self.rel2id, _root(root)
        splits, cleaning, notes = {}, {}, []
        for s in ("train", "dev", "test"):
            docs, source = _read_own_file(getattr(self, s), base)
            labelled = self.label_source.get(s, "gold") != "none"
            # first against the labels the file may hold (the relations plus the explicit NA label)
            raw_vocab = {**rel2id, **({self.no_relation: len(rel2id)} if self.no_relation else {})}
            validate_docs(docs, source=source, rel2id=raw_vocab)
            if self.entity_types is not None:
                check_entity_types(docs, self.entity_types, source)
            docs, cleaning[s] = clean_labels(docs, self.no_relation, labelled=labelled)
            validate_docs(docs, source=f"{source} (cleaned)", rel2id=rel2id)
            splits[s] = docs
            pairs = label_type_pairs(docs)
            if any(k != "None->None" for c in pairs.values() for k in c):  # the mentions have types
                notes.append(f"{s}: labels by entity types: " + "; ".join(
                    f"{r} " + ", ".join(f"{k} {v:,}" for k, v in c.items()) for r, c in pairs.items()))
        notes += _cleaning_notes(cleaning, self.no_relation)
        return Regime(self.name, splits["train"], splits["dev"], splits["test"],
                      {s: self.label_source.get(s, "gold") for s in ("train", "dev", "test")},
                      self.description, rel2id=rel2id, cleaning=cleaning, notes=notes)


def _read_own_file(path: str | Path, base: Path) -> tuple[list[dict], str]:
    p = Path(path)
    if p.is_absolute():
        return load_docs(p, validate=False), str(p)
    return load_docs(str(path), base, validate=False), str(path)


def _cleaning_notes(cleaning: Mapping[str, Mapping[str, int]], no_relation: str | None) -> list[str]:
    out = []
    for s, c in cleaning.items():
        parts = []
        if c.get("no_relation"):
            parts.append(f"{c['no_relation']:,} explicit {no_relation!r} labels removed (the pairs are NA"
                         + (f"; {c['no_relation_on_positive_pair']:,} of them on a pair that also has a "
                            "relation, which stands)" if c.get("no_relation_on_positive_pair") else ")"))
        if c.get("duplicates"):
            parts.append(f"{c['duplicates']:,} duplicate labels removed")
        if c.get("evidence_none"):
            parts.append(f"None removed from the evidence of {c['evidence_none']:,} labels")
        if c.get("missing_labels"):
            parts.append(f"{c['missing_labels']:,} documents without labels (all pairs NA)")
        if parts:
            out.append(f"{s}: " + "; ".join(parts) + f"; {c['kept']:,} labels kept.")
    return out


@dataclass(frozen=True)
class _Entry:
    load: Callable[[Path], Regime]
    rel2id: dict[str, int] | None  # known without loading (a CustomRegime); None: read from the regime
    validated: bool = False  # the loader checks labels against rel2id itself (CustomRegime.load)
    builtin: bool = False


_REGISTRY: dict[str, _Entry] = {}


def register_regime(spec_or_name: CustomRegime | str, loader: Callable[[Path], Regime] | None = None, *,
                    rel2id: Mapping[str, int] | None = None, overwrite: bool = False) -> str:
    """Make a data set loadable by name (load_regime, TrainConfig.regime). Returns the name.

    Either a CustomRegime, or a name and `loader(data_dir) -> Regime` (its Regime.rel2id, if
    set, must have "Na" at 0; pass `rel2id` to make regime_rel2id work without loading).
    Registration lasts for the process: a script training on its own data registers it first.
    """
    if isinstance(spec_or_name, CustomRegime):
        if loader is not None or rel2id is not None:
            raise ValueError("a CustomRegime brings its own loader and relations")
        name, entry = spec_or_name.name, _Entry(spec_or_name.load, spec_or_name.rel2id, validated=True)
    else:
        if loader is None:
            raise ValueError("register_regime(name, loader): a loader is needed")
        name, entry = spec_or_name, _Entry(loader, check_rel2id(rel2id) if rel2id is not None else None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"a regime needs a non-empty name, got {name!r}")
    if name in REGIMES or (name in _REGISTRY and _REGISTRY[name].builtin and not overwrite):
        raise ValueError(f"regime {name!r} is built in; choose another name")
    _REGISTRY[claim(_REGISTRY, name, what="regime", replace=overwrite, flag="overwrite")] = entry
    return name


def unregister_regime(name: str) -> None:
    """Forget a registered regime (built-in ones stay)."""
    entry = _REGISTRY.get(name)
    if entry is None or entry.builtin:
        raise ValueError(f"{name!r} is not a registered regime of one's own")
    del _REGISTRY[name]


def regime_names() -> list[str]:
    """Every regime load_regime knows: DocRED's (REGIMES), then the registered ones."""
    return list(REGIMES) + [n for n in _REGISTRY if n not in REGIMES]


def _load_registered(name: str, base: Path) -> Regime:
    entry = _REGISTRY[name]
    reg = entry.load(base)
    if not isinstance(reg, Regime):
        raise TypeError(f"the loader of regime {name!r} returned {type(reg).__name__}, not a Regime")
    if reg.rel2id is not None:
        reg.rel2id = check_rel2id(reg.rel2id, f"regime {name!r}: rel2id")
        if entry.rel2id is not None and entry.rel2id != reg.rel2id:
            raise ValueError(f"regime {name!r} was registered with rel2id {entry.rel2id} but loads {reg.rel2id}")
        if not entry.validated:
            for s in reg.splits():
                validate_docs(reg.split(s), source=f"{name}/{s}", rel2id=reg.rel2id)
    return reg


def regime_rel2id(name: str, root: str | Path | None = None) -> dict[str, int]:
    """The relation set of a regime by name, without loading its documents where it is declared:
    DocRED's meta/rel2id.json for REGIMES, the declared one of a registered regime."""
    entry = _REGISTRY.get(name)
    if entry is None:
        if name not in REGIMES:
            raise ValueError(f"unknown regime {name!r}; known: {', '.join(regime_names())}")
        return load_rel2id(root)
    if entry.rel2id is not None:
        return dict(entry.rel2id)
    return load_regime(name, root).relation_ids(root)


# BC5CDR (chemical-induced disease) as DocReDataParse writes it: every labelled pair is a
# chemical and a disease, labelled CID or NR ("no relation", explicit), never both directions.
CDR = CustomRegime(
    "cdr", train="cdr/train.json", dev="cdr/dev.json", test="cdr/test.json", relations=("CID",),
    no_relation="NR", entity_types=("CHEM", "DISE"),
    description="BC5CDR in DocRED format (tri154/DocReDataParse): train / dev / test, 500 documents each, "
                "gold labels. Relation CID (chemical-induced disease); the explicit NR labels are removed "
                "(those pairs are NA, like every unlabelled pair) and duplicate labels dropped, both counted "
                "in .cleaning. Pairs are oriented by first mention (head = the entity mentioned first), not "
                "by type: 29-35% of the CID labels of a split have the disease as head.")
_REGISTRY[CDR.name] = _Entry(CDR.load, CDR.rel2id, validated=True, builtin=True)


def cleaning_stats(regime: Regime) -> list[dict]:
    """One row per split of what loading removed or repaired (empty for the DocRED regimes)."""
    return [{"regime": regime.name, "split": s, **c} for s, c in regime.cleaning.items()]


# --------------------------------------------------------------------------- simulated noise
def noisy(regime_or_name: Regime | str, drop: float, seed: int = 0, splits: Sequence[str] = ("train",),
          root: str | Path | None = None) -> Regime:
    """A copy of the regime where a fraction `drop` of each named split's facts become NA.

    Exactly round(drop * n) of the split's n unique (doc, h, t, r) facts are removed, drawn by
    random.Random(seed) (a fresh generator per split) from the flat fact list in document and
    label order. Duplicated label entries of a dropped fact go with it. The input is untouched.
    """
    if not 0.0 <= drop <= 1.0:
        raise ValueError(f"drop must be in [0, 1], got {drop}")
    reg = load_regime(regime_or_name, root) if isinstance(regime_or_name, str) else regime_or_name
    out = copy.deepcopy(reg)
    sources = dict(out.label_source)
    for s in splits:
        docs = out.split(s)
        facts = []
        for i, d in enumerate(docs):
            seen = set()
            for lab in d.get("labels", []):
                key = (lab["h"], lab["t"], lab["r"])
                if key not in seen:
                    seen.add(key)
                    facts.append((i,) + key)
        k = round(drop * len(facts))
        gone = set(facts[j] for j in random.Random(seed).sample(range(len(facts)), k))
        if gone:
            for i, d in enumerate(docs):
                if "labels" in d:
                    d["labels"] = [lab for lab in d["labels"] if (i, lab["h"], lab["t"], lab["r"]) not in gone]
        src = sources.get(s, "gold")
        sources[s] = src if src.endswith("-dropped") else f"{src}-dropped"
    suffix = "" if tuple(splits) == ("train",) else "[" + ",".join(splits) + "]"
    return replace(out, name=f"{reg.name}+drop{drop:g}s{seed}{suffix}", label_source=sources,
                   description=(out.description + f" Then {drop:g} of the facts of {', '.join(splits)} "
                                f"dropped to NA (seed {seed}).").strip())


# --------------------------------------------------------------------------- statistics
def _facts(doc: dict) -> set[tuple[int, int, str]]:
    return {(lab["h"], lab["t"], lab["r"]) for lab in doc.get("labels", [])}


def split_stats(docs: Sequence[dict]) -> dict[str, int]:
    """Counts for a list of documents; pairs are ordered (h, t), h != t."""
    n_ent = [len(d["vertexSet"]) for d in docs]
    pos_pairs = sum(len({(h, t) for h, t, _ in _facts(d)}) for d in docs)
    pairs = sum(n * (n - 1) for n in n_ent)
    return {
        "docs": len(docs),
        "entities": sum(n_ent),
        "mentions": sum(len(e) for d in docs for e in d["vertexSet"]),
        "entity_pairs": pairs,
        "positive_facts": sum(len(_facts(d)) for d in docs),
        "positive_pairs": pos_pairs,
        "na_pairs": pairs - pos_pairs,
    }


def regime_stats(regime: Regime) -> list[dict]:
    """One row per split (dev_gold included when present)."""
    return [{"regime": regime.name, "split": s, "label_source": regime.label_source.get(s, "gold"),
             **split_stats(regime.split(s))} for s in regime.splits()]


def label_comparison(original_docs: Sequence[dict], gold_docs: Sequence[dict]) -> dict[str, Any]:
    """How many gold facts the original labels miss, over the paired documents.

    On docred/dev.subset.json vs Re-DocRED dev+test: 283 docs, original 3,627 facts, gold 9,936,
    both 3,608, so about 63% of the true facts are unlabelled in the original data.
    """
    m = match_documents(original_docs, gold_docs)
    orig = gold = both = 0
    for i, j in m.pairs:
        a, b = _facts(original_docs[i]), _facts(gold_docs[j])
        orig, gold, both = orig + len(a), gold + len(b), both + len(a & b)
    return {"n_docs": len(m.pairs), "vertexset_differs": m.n_vertexset_differs,
            "original_facts": orig, "gold_facts": gold, "both": both,
            "only_original": orig - both,
            "missing_from_original": (1 - both / gold) if gold else 0.0}


def label_comparison_per_relation(original_docs: Sequence[dict], gold_docs: Sequence[dict],
                                  names: Mapping[str, str] | None = None) -> list[dict]:
    """label_comparison per relation, rows sorted by gold count (descending)."""
    g, o, b = Counter(), Counter(), Counter()
    for i, j in paired_documents(original_docs, gold_docs):
        fo, fg = _facts(original_docs[i]), _facts(gold_docs[j])
        o.update(r for *_, r in fo)
        g.update(r for *_, r in fg)
        b.update(r for *_, r in fo & fg)
    rows = []
    for r in sorted(set(g) | set(o), key=lambda r: (-g[r], -o[r], r)):
        rows.append({"relation": r, "name": (names or {}).get(r, r), "gold": g[r], "original": o[r],
                     "both": b[r], "missing_from_original": (1 - b[r] / g[r]) if g[r] else 0.0})
    return rows


def relation_counts(docs: Sequence[dict]) -> dict[str, int]:
    """{relation: number of entity pairs labelled with it}, most frequent first."""
    c = Counter(r for d in docs for _, _, r in _facts(d))
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


# --------------------------------------------------------------------------- command line
def _table(rows: list[dict]) -> str:
    if not rows:
        return "(nothing)"
    cols = list(rows[0])
    cells = [[f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[k]) for row in cells)) for k, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in cells])


def check(root: str | Path | None = None) -> tuple[list[dict], bool]:
    """Verify every file of SHA256SUMS and look for the optional full files. (rows, all ok)."""
    base = _root(root)
    sums = read_sums(base)
    rows, ok = [], True
    if not sums:
        ok = False
        rows.append({"file": SUMS_FILE, "bytes": "-", "status": "MISSING: nothing can be verified"})
    for rel, expected in sums.items():
        path = base / rel
        if not path.is_file():
            status, ok = f"MISSING ({_source_hint(rel)})", False
        else:
            status = "ok" if sha256_file(path) == expected else "CHECKSUM MISMATCH"
            ok = ok and status == "ok"
        rows.append({"file": rel, "bytes": path.stat().st_size if path.is_file() else "-", "status": status})
    for rel, info in KNOWN_FILES.items():
        if rel in sums:
            continue
        path = base / rel
        if path.is_file():
            size = path.stat().st_size
            note = "" if info.size in (None, size) else f", size differs from published {info.size:,}"
            rows.append({"file": rel, "bytes": size, "status": f"present, unverified{note}"})
        else:
            rows.append({"file": rel, "bytes": "-", "status": "absent (optional)"})
    return rows, ok


def fetch(dest: str | Path, names: Sequence[str] = ("train_revised.json", "dev_revised.json",
                                                    "test_revised.json"), timeout: float = 60.0) -> bool:
    """Download the public Re-DocRED files into <dest>/redocred/. True when all are in place."""
    import urllib.error
    import urllib.request

    out = Path(dest) / "redocred"
    ok = True
    for name in names:
        target = out / name
        url = REDOCRED_RAW.format(name=name)
        if target.is_file():
            print(f"{target}: already present, skipped")
            continue
        tmp = target.with_name(f".{name}.part")
        try:
            out.mkdir(parents=True, exist_ok=True)
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
            os.replace(tmp, target)  # atomic: a broken download never looks like a data file
            print(f"{target}: downloaded from {url} ({target.stat().st_size:,} bytes)")
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            ok = False
            tmp.unlink(missing_ok=True)
            print(f"could not download {url}: {e}. This machine may be offline: download it "
                  f"elsewhere and place it by hand at {target}.")
    print("DocRED (docred/train_annotated.json, docred/dev.json, docred/test.json) cannot be fetched "
          f"automatically: download it by hand from {DOCRED_SOURCE} into {Path(dest) / 'docred'}.")
    if not (Path(dest) / "meta" / "rel2id.json").is_file():
        print(f"meta/rel2id.json and meta/rel_info.json: copy them by hand from {META_SOURCE} "
              f"into {Path(dest) / 'meta'}.")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pemscl.data", description=__doc__.split("\n")[0])
    p.add_argument("--data", help="data directory (default: $PEMSCL_DATA, <repo>/data or ../shared/data)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="verify the files listed in SHA256SUMS")
    st = sub.add_parser("stats", help="per-split statistics of a regime")
    st.add_argument("regime", choices=regime_names())
    fe = sub.add_parser("fetch", help="download Re-DocRED (DocRED must be fetched by hand)")
    fe.add_argument("--dest", help="where to put the files (default: $PEMSCL_DATA or <repo>/data)")
    a = p.parse_args(argv)
    try:
        if a.cmd == "fetch":
            dest = a.dest or a.data or os.environ.get("PEMSCL_DATA") or REPO / "data"
            return 0 if fetch(dest) else 1
        root = Path(a.data) if a.data else data_dir()
        if a.cmd == "check":
            rows, ok = check(root)
            print(f"data directory: {root}\n" + _table(rows))
            print("all listed files verified" if ok else "PROBLEMS found (see above)")
            return 0 if ok else 1
        reg = load_regime(a.regime, root)
        print(_table(regime_stats(reg)))
        rel2id = reg.relation_ids(root)
        print(f"\nrelations: {len(rel2id) - 1} besides {NA!r}"
              + (f" ({', '.join(r for r in rel2id if r != NA)})" if len(rel2id) <= 11 else ""))
        if reg.cleaning:
            print("\ncleaning while loading (labels removed or repaired, per split):\n"
                  + _table(cleaning_stats(reg)))
        for note in reg.notes:
            print(note)
        return 0
    except (DataNotFoundError, ChecksumError, DocumentError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
