"""ATLOP preprocessing: documents -> token ids with entity markers, entity pairs and labels.

Each mention is wrapped in `*` markers ("... * Barack Obama * was born ..."); the model reads an
entity's mentions at their start markers. One feature per document, in document order:

    title, doc_index   the document's title and its position in the input list
    input_ids          [CLS/BOS] word pieces with markers [SEP/EOS], at most max_len ids
    entity_pos         per entity, per mention: (start, end) = index of the start marker and the
                       index just after the end marker, in input_ids coordinates
    hts                every ordered pair (h, t), h != t, h-major
    labels             uint8 (n_pairs, n_classes) multi-hot; column 0 = 1 iff no positive relation
    truncated          whether the document lost tokens to max_len

Features are cached on disk, keyed by tokenizer, documents, max_len, relation vocabulary and
FEATURES_VERSION (bump it whenever the output of `featurize` changes). The cache file is an .npz
of plain numeric arrays read with allow_pickle=False (CACHE_FORMAT): a cache folder may be
shared, and unpickling a planted file would run its code. Files of the old pickle format
(<key>.pkl) are never opened; their features are computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .data import load_rel2id
from .model import default_encoder_path
from .utils import atomic_path
from .utils import cache_dir as _default_cache_dir

FEATURES_VERSION = 1
CACHE_FORMAT = 2  # 1: the pickled list of feature dicts (<key>.pkl), never read now
MARKER = "*"


# --------------------------------------------------------------------------- tokenizer helpers
def default_encoder() -> str:
    """Folder of the default encoder (MiniLM-L6, WordPiece, uncased): model.default_encoder_path."""
    return default_encoder_path()


def load_tokenizer(name_or_path: str | os.PathLike):
    """AutoTokenizer from a local folder, or a Hugging Face id from the local cache first."""
    from transformers import AutoTokenizer

    if Path(name_or_path).is_dir():
        return AutoTokenizer.from_pretrained(str(name_or_path))
    try:  # offline machines: never wait on the network when the cache has it
        return AutoTokenizer.from_pretrained(str(name_or_path), local_files_only=True)
    except OSError:
        return AutoTokenizer.from_pretrained(str(name_or_path))


def special_ids(tokenizer) -> tuple[int, int]:
    """(first, last) special ids: CLS or BOS, SEP or EOS (transformers 5 has no
    build_inputs_with_special_tokens, so we add them ourselves)."""
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if first is None or last is None:
        raise ValueError(f"{type(tokenizer).__name__} has no CLS/BOS or SEP/EOS token")
    return int(first), int(last)


def _encode(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def marker_ids(tokenizer) -> list[int]:
    """The tokenizer's own ids for the `*` marker.

    Byte-level BPE (RoBERTa) spells a mid-text "*" as "Ġ*"; that form is used when it is one
    token, so the marked text reads "Alice * Bob" to the encoder. Otherwise the bare "*"
    (WordPiece and SentencePiece give the same either way).
    """
    spaced, bare = _encode(tokenizer, [" " + MARKER, MARKER])
    ids = spaced if len(spaced) == 1 else bare
    if not ids:
        raise ValueError(f"{type(tokenizer).__name__} maps the marker {MARKER!r} to no token")
    return ids


def tokenizer_identity(tokenizer) -> dict[str, Any]:
    return {"name_or_path": str(getattr(tokenizer, "name_or_path", "")), "vocab_size": len(tokenizer),
            "class": type(tokenizer).__name__}


# --------------------------------------------------------------------------- featurize
def _word_text(word: str, first_in_doc: bool) -> str:
    # Words after the first need the leading space that separated them in running text: byte-level
    # BPE encodes it into the piece ("Ġword"); WordPiece and SentencePiece ignore it.
    return word if first_in_doc else " " + word


def _pair_labels(doc: dict, n_ent: int, rel2id: Mapping[str, int], n_classes: int) -> np.ndarray:
    labels = np.zeros((n_ent * (n_ent - 1), n_classes), dtype=np.uint8)
    for lab in doc.get("labels", []):
        h, t = lab["h"], lab["t"]
        # row of (h, t) in h-major order without the diagonal
        labels[h * (n_ent - 1) + (t if t < h else t - 1), rel2id[lab["r"]]] = 1  # duplicates: still 1
    labels[:, 0] = labels[:, 1:].sum(axis=1) == 0
    return labels


def featurize(docs: Sequence[dict], tokenizer, rel2id: Mapping[str, int], max_len: int = 1024,
              source: str = "docs", progress: bool = False) -> list[dict]:
    """ATLOP features for each document (see the module docstring); warns on truncation."""
    cls_id, sep_id = special_ids(tokenizer)
    if max_len < 3:
        raise ValueError(f"max_len must leave room for CLS, SEP and a token, got {max_len}")
    mark = marker_ids(tokenizer)
    n_classes = max(rel2id.values()) + 1
    unknown = {lab["r"] for d in docs for lab in d.get("labels", [])} - set(rel2id)
    if unknown:
        raise ValueError(f"{source}: relations not in rel2id: {sorted(unknown)}")

    # Tokenise every distinct word once (batched): documents repeat most of their words.
    texts: set[str] = set()
    for d in docs:
        first = True
        for sent in d["sents"]:
            for w in sent:
                texts.add(_word_text(w, first))
                first = False
        texts.add(" " + d["sents"][0][0] if d["sents"] and d["sents"][0] else "")  # word 0 behind a marker
    texts.discard("")
    order = sorted(texts)
    pieces: dict[str, list[int]] = {"": []}
    for k in range(0, len(order), 4096):
        pieces.update(zip(order[k:k + 4096], _encode(tokenizer, order[k:k + 4096])))

    it = docs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(docs, desc=f"features {source}", leave=False)
    feats, truncated_titles = [], []
    for idx, d in enumerate(it):
        starts, ends = set(), set()
        for ent in d["vertexSet"]:
            for m in ent:
                starts.add((m["sent_id"], m["pos"][0]))
                ends.add((m["sent_id"], m["pos"][1] - 1))
        body: list[int] = []
        word_start: list[dict[int, int]] = []  # per sentence: word index -> body index (+ one past the end)
        for s, sent in enumerate(d["sents"]):
            where = {}
            for w, word in enumerate(sent):
                where[w] = len(body)
                if (s, w) in starts:
                    body.extend(mark)
                text = _word_text(word, not body)
                if text not in pieces:  # e.g. a first word that followed an empty-piece word
                    pieces[text] = _encode(tokenizer, [text])[0]
                body.extend(pieces[text])
                if (s, w) in ends:
                    body.extend(mark)
            where[len(sent)] = len(body)
            word_start.append(where)
        keep = max_len - 2
        truncated = len(body) > keep
        input_ids = [cls_id] + body[:keep] + [sep_id]
        last = len(input_ids) - 1  # the SEP position: a start marker must lie before it
        entity_pos = []
        for ent in d["vertexSet"]:
            mentions = []
            for m in ent:
                start = word_start[m["sent_id"]][m["pos"][0]] + 1  # +1: CLS
                end = word_start[m["sent_id"]][m["pos"][1]] + 1
                if start < last:  # a mention cut off by truncation is dropped; an entity may end up empty
                    mentions.append((start, min(end, last)))
            entity_pos.append(mentions)
        n = len(d["vertexSet"])
        hts = [(h, t) for h in range(n) for t in range(n) if h != t]
        if truncated:
            truncated_titles.append(d["title"])
        feats.append({"title": d["title"], "doc_index": idx, "input_ids": input_ids, "entity_pos": entity_pos,
                      "hts": hts, "labels": _pair_labels(d, n, rel2id, n_classes), "truncated": truncated})
    _warn_truncated(truncated_titles, source, max_len)
    return feats


def _warn_truncated(titles: Sequence[str], source: str, max_len: int) -> None:
    if titles:
        shown = ", ".join(map(repr, titles[:5])) + (" ..." if len(titles) > 5 else "")
        warnings.warn(f"{source}: {len(titles)} document(s) longer than max_len={max_len} tokens were "
                      f"truncated; mentions past the cut are dropped ({shown})", stacklevel=3)


# --------------------------------------------------------------------------- cache
def docs_hash(docs: Sequence[dict]) -> str:
    """sha256 of the documents' canonical JSON: the identity of a data set, labels included."""
    blob = json.dumps(list(docs), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def features_key(docs: Sequence[dict], tokenizer, rel2id: Mapping[str, int], max_len: int) -> str:
    spec = {"tokenizer": tokenizer_identity(tokenizer), "docs": docs_hash(docs), "max_len": max_len,
            "rel2id": sorted(rel2id.items()), "version": FEATURES_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else _default_cache_dir()  # $PEMSCL_CACHE or <repo>/.cache


def _pack(key: str, source: str, feats: Sequence[dict]) -> dict[str, np.ndarray]:
    """Features as flat numeric arrays (ragged lists as values + per-document lengths) and one
    JSON blob for the strings: all np.load reads back with allow_pickle=False."""
    n_classes = feats[0]["labels"].shape[1] if feats else 0
    ents = [e for f in feats for e in f["entity_pos"]]
    meta = {"format": CACHE_FORMAT, "key": key, "source": source, "n_classes": n_classes,
            "titles": [f["title"] for f in feats]}

    def flat(rows, width=None, dtype=np.int64):
        a = np.asarray([x for r in rows for x in r], dtype=dtype)
        return a.reshape(-1, width) if width else a

    return {"meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            "doc_index": np.asarray([f["doc_index"] for f in feats], dtype=np.int64),
            "truncated": np.asarray([f["truncated"] for f in feats], dtype=bool),
            "input_ids": flat(f["input_ids"] for f in feats),
            "n_ids": np.asarray([len(f["input_ids"]) for f in feats], dtype=np.int64),
            "mentions": flat(ents, 2),
            "n_mentions": np.asarray([len(e) for e in ents], dtype=np.int64),
            "n_entities": np.asarray([len(f["entity_pos"]) for f in feats], dtype=np.int64),
            "hts": flat((f["hts"] for f in feats), 2),
            "n_pairs": np.asarray([len(f["hts"]) for f in feats], dtype=np.int64),
            "labels": (np.concatenate([f["labels"] for f in feats]) if feats
                       else np.zeros((0, 0), dtype=np.uint8))}


def _split(values: list, lengths: np.ndarray) -> list[list]:
    ends = np.cumsum(lengths).tolist()
    return [values[a:b] for a, b in zip([0] + ends[:-1], ends)]


def _unpack(arrays: Mapping[str, np.ndarray], key: str) -> list[dict] | None:
    """The features of a cache file written by _pack, in featurize's types (lists of ints,
    tuples for positions and pairs, uint8 label rows); None when it is another key or format."""
    meta = json.loads(bytes(arrays["meta"]).decode("utf-8"))
    if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
        return None
    n_pairs = arrays["n_pairs"]
    ids = _split(arrays["input_ids"].tolist(), arrays["n_ids"])
    ents = _split(list(map(tuple, arrays["mentions"].tolist())), arrays["n_mentions"])
    ent_pos = _split(ents, arrays["n_entities"])
    hts = _split(list(map(tuple, arrays["hts"].tolist())), n_pairs)
    labels = arrays["labels"].reshape(-1, meta["n_classes"]) if meta["titles"] else None
    starts = np.concatenate([[0], np.cumsum(n_pairs)]).tolist()
    return [{"title": title, "doc_index": int(i), "input_ids": d_ids, "entity_pos": pos, "hts": pairs,
             "labels": labels[starts[j]:starts[j + 1]], "truncated": bool(t)}
            for j, (title, i, d_ids, pos, pairs, t) in enumerate(
                zip(meta["titles"], arrays["doc_index"].tolist(), ids, ent_pos, hts, arrays["truncated"]))]


def _read_cache(path: Path, key: str) -> list[dict] | None:
    with np.load(path, allow_pickle=False) as z:  # never unpickles: an object array raises instead
        return _unpack({name: z[name] for name in z.files}, key)


def load_features(docs: Sequence[dict], tokenizer_name_or_path, rel2id: Mapping[str, int] | None = None,
                  max_len: int = 1024, cache_dir: str | os.PathLike | None = None, source: str = "docs",
                  progress: bool = True) -> list[dict]:
    """featurize() with an on-disk cache under <cache_dir>/features/<key>.npz.

    `tokenizer_name_or_path` is a folder, a Hugging Face id, or a tokenizer already loaded.
    A cache file that cannot be read as this format is reported and rebuilt, never executed.
    """
    if rel2id is None:
        rel2id = load_rel2id()
    tok = (load_tokenizer(tokenizer_name_or_path) if isinstance(tokenizer_name_or_path, (str, os.PathLike))
           else tokenizer_name_or_path)
    key = features_key(docs, tok, rel2id, max_len)
    path = _cache_root(cache_dir) / "features" / f"{key}.npz"
    if path.is_file():
        try:
            feats = _read_cache(path, key)
            if feats is not None:
                _warn_truncated([x["title"] for x in feats if x["truncated"]], source, max_len)
                return feats
            warnings.warn(f"ignoring feature cache {path}: written for another key or format; rebuilding",
                          stacklevel=2)
        except Exception as e:  # damaged, or not ours (a pickle is refused by allow_pickle=False): rebuilt
            warnings.warn(f"ignoring unreadable feature cache {path}: {e}; rebuilding", stacklevel=2)
    feats = featurize(docs, tok, rel2id, max_len=max_len, source=source, progress=progress)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: savez would append .npz to a name
        np.savez(f, **_pack(key, source, feats))
    # the same features in the old pickle format are dead weight now (never read again)
    (path.with_suffix(".pkl")).unlink(missing_ok=True)
    return feats
