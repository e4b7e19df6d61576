"""Tiny random-init encoders of the paper's model classes, for tests and smoke runs without a model hub.

`make_tiny_encoder(family, folder)` writes a folder that loads exactly like a downloaded checkpoint
(`AutoTokenizer` / `AutoModel.from_pretrained(folder)`, so `DocREModel(ModelConfig(encoder=folder))` and
`load_features(docs, folder)` work unchanged). The weights are random; the tokenizer is trained here with
the `tokenizers` library on real DocRED text and then wrapped in the family's own transformers tokenizer
class, so it carries that family's special tokens, pre-tokenisation and post-processing:

    bert        BertModel        WordPiece (lower-cased, "##" continuations)   [CLS] ... [SEP]
    roberta     RobertaModel     byte-level BPE ("Ġ" marks a leading space)    <s> ... </s>
    deberta     DebertaModel     byte-level BPE (GPT-2 style, as DeBERTa v1)   [CLS] ... [SEP]
    deberta-v2  DebertaV2Model   SentencePiece-style Unigram ("▁" word start)  [CLS] ... [SEP]

All four vocabularies come from a (deterministic) BPE run; see the tokenizers section.

The layer shapes copy the real checkpoints' options that change the code path (DeBERTa's relative
attention with c2p/p2c, v2's position buckets, shared keys and convolution after layer 0; RoBERTa's
514 positions with padding id 1), shrunk to 2 layers of width 64 so a forward pass takes milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .data import load_docs

FAMILIES = ("bert", "roberta", "deberta", "deberta-v2")
TINY_VERSION = 2  # bump when the folder contents change, so cached folders are rebuilt
STAMP = "tiny_encoder.json"


@dataclass(frozen=True)
class TinySpec:
    """Sizes of a tiny encoder. hidden = 64 lets DocREModel's default block_size (64) fit one group."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    intermediate: int = 128
    vocab_size: int = 1200  # a target: the trainer stops early on little text; WordPiece doubles it with ## pieces
    seed: int = 0


# --------------------------------------------------------------------------- training text
def training_texts(docs: Sequence[dict]) -> list[str]:
    """One line per sentence, mentions wrapped in ` * ` markers as ATLOP feeds them to the encoder,
    so the marker (and its spaced byte-level / "▁" forms) is in every learned vocabulary."""
    lines = []
    for d in docs:
        starts = {(m["sent_id"], m["pos"][0]) for e in d["vertexSet"] for m in e}
        ends = {(m["sent_id"], m["pos"][1] - 1) for e in d["vertexSet"] for m in e}
        for s, sent in enumerate(d["sents"]):
            words = []
            for w, word in enumerate(sent):
                words += (["*"] if (s, w) in starts else []) + [word] + (["*"] if (s, w) in ends else [])
            lines.append(" ".join(words))
    return lines


def default_docs(n: int = 30) -> list[dict]:
    """The first n documents of Re-DocRED dev (the data folder the rest of the package reads)."""
    return load_docs("redocred/dev_revised.json")[:n]


# --------------------------------------------------------------------------- tokenizers
# The tokenizers library's BPE trainer is deterministic once every character of the text is in its
# initial alphabet (sorted, so ids do not follow hash order); its WordPiece and Unigram trainers are
# not (tie-breaking and float sums follow hash-map order). So all four vocabularies grow from a BPE
# run over the family's own normalisation and pre-tokenisation; WordPiece and Unigram vocabularies
# are then read off the learned pieces.
def _train_bpe(texts: list[str], size: int, specials: list[str], normalizer=None, pre_tokenizer=None,
               byte_level: bool = False):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    if normalizer is not None:
        core.normalizer = normalizer
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False) if byte_level else pre_tokenizer
    if byte_level:
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        norm = [normalizer.normalize_str(t) if normalizer is not None else t for t in texts]
        alphabet = {c for t in norm for w, _ in core.pre_tokenizer.pre_tokenize_str(t) for c in w}
    alphabet = sorted(alphabet)
    core.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=size, special_tokens=specials,
                                                        initial_alphabet=alphabet, limit_alphabet=len(alphabet),
                                                        show_progress=False))
    return core


def _learned(core, specials: list[str]) -> list[str]:
    """Learned pieces in id order (alphabet first, then merges), specials left out."""
    vocab = core.get_vocab()
    return [t for t in sorted(vocab, key=vocab.get) if t not in specials]


def _wordpiece(texts: list[str], size: int):
    from tokenizers import normalizers, pre_tokenizers
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    core = _train_bpe(texts, size // 2, specials, normalizers.BertNormalizer(lowercase=True),
                      pre_tokenizers.BertPreTokenizer())
    # every piece both word-initial and as a "##" continuation: greedy longest match then covers any
    # split the BPE run could make
    vocab = {t: i for i, t in enumerate(specials)}
    for piece in _learned(core, specials):
        for t in (piece, "##" + piece):
            vocab.setdefault(t, len(vocab))
    return BertTokenizer(vocab=vocab, do_lower_case=True)


def _byte_bpe(texts: list[str], size: int, specials: list[str]) -> tuple[dict, list]:
    core = _train_bpe(texts, size, specials, byte_level=True)  # as RoBERTa / GPT-2: "Ġ" = leading space
    merges = json.loads(core.to_str())["model"]["merges"]
    return core.get_vocab(), [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges]


def _roberta(texts: list[str], size: int):
    from transformers import RobertaTokenizer

    # RoBERTa's ids: <s>=0 <pad>=1 </s>=2 <unk>=3; the padding id 1 is also its position padding index
    vocab, merges = _byte_bpe(texts, size, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return RobertaTokenizer(vocab=vocab, merges=merges)


def _deberta_v1(texts: list[str], size: int):
    from transformers import DebertaTokenizer

    # DeBERTa v1 reuses GPT-2's byte-level BPE with BERT-style special tokens ([PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3)
    vocab, merges = _byte_bpe(texts, size, ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"])
    return DebertaTokenizer(vocab=vocab, merges=merges)


def _unigram(texts: list[str], size: int):
    from tokenizers import normalizers, pre_tokenizers
    from transformers import DebertaV2Tokenizer

    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    # the text pipeline DebertaV2Tokenizer builds around its SentencePiece model: "▁" marks a word start
    core = _train_bpe(texts, size, specials,
                      normalizers.Sequence([normalizers.NFC(), normalizers.Strip(left=False, right=True)]),
                      pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"))
    # a unigram language model over the learned pieces: log relative frequency in the BPE segmentation
    counts: dict[str, int] = {}
    for enc in core.encode_batch(texts):
        for t in enc.tokens:
            counts[t] = counts.get(t, 0) + 1
    total = sum(counts.values())
    vocab = [(t, 0.0) for t in specials]
    vocab += [(t, math.log(counts.get(t, 0.5) / total)) for t in _learned(core, specials)]
    return DebertaV2Tokenizer(vocab=vocab, unk_id=specials.index("[UNK]"))


_TOKENIZERS = {"bert": _wordpiece, "roberta": _roberta, "deberta": _deberta_v1, "deberta-v2": _unigram}


def train_tokenizer(family: str, texts: Iterable[str], vocab_size: int = 1200):
    """A transformers tokenizer of `family`'s class with a vocabulary learned from `texts`."""
    _check_family(family)
    return _TOKENIZERS[family](list(texts), vocab_size)


# --------------------------------------------------------------------------- models
def tiny_config(family: str, tokenizer, spec: TinySpec = TinySpec()):
    """The family's config class, with the real checkpoints' code-path options at tiny sizes."""
    from transformers import BertConfig, DebertaConfig, DebertaV2Config, RobertaConfig

    _check_family(family)
    common = dict(vocab_size=len(tokenizer), hidden_size=spec.hidden, num_hidden_layers=spec.layers,
                  num_attention_heads=spec.heads, intermediate_size=spec.intermediate,
                  pad_token_id=tokenizer.pad_token_id)
    if family == "bert":
        return BertConfig(max_position_embeddings=512, **common)
    if family == "roberta":  # roberta-large: 514 positions (2 + 512), token type vocabulary of 1
        return RobertaConfig(max_position_embeddings=514, type_vocab_size=1, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, **common)
    deberta = dict(max_position_embeddings=512, relative_attention=True, max_relative_positions=-1,
                   position_biased_input=False, type_vocab_size=0, layer_norm_eps=1e-7, **common)
    if family == "deberta":  # microsoft/deberta-large
        return DebertaConfig(pos_att_type=["c2p", "p2c"], **deberta)
    # microsoft/deberta-v2-xlarge: log-bucketed relative positions, shared keys, conv after layer 0
    return DebertaV2Config(pos_att_type=["p2c", "c2p"], position_buckets=256, norm_rel_ebd="layer_norm",
                           share_att_key=True, conv_kernel_size=3, conv_act="gelu", **deberta)


def _model_class(family: str):
    from transformers import BertModel, DebertaModel, DebertaV2Model, RobertaModel

    return {"bert": BertModel, "roberta": RobertaModel, "deberta": DebertaModel, "deberta-v2": DebertaV2Model}[family]


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown encoder family {family!r}; expected one of {FAMILIES}")


# --------------------------------------------------------------------------- the folder
def _stamp(family: str, spec: TinySpec, texts: list[str]) -> dict:
    text_hash = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
    return {"family": family, "spec": asdict(spec), "texts": text_hash, "version": TINY_VERSION}


def is_complete(folder: str | Path, stamp: dict | None = None) -> bool:
    """A folder written by make_tiny_encoder (with this stamp, when given) that still holds its files."""
    folder = Path(folder)
    try:
        found = json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return False
    needed = ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"]
    return all((folder / n).is_file() for n in needed) and (stamp is None or found == stamp)


def make_tiny_encoder(family: str, folder: str | Path, docs: Sequence[dict] | None = None,
                      spec: TinySpec = TinySpec()) -> Path:
    """Write (or reuse) a loadable tiny `family` encoder in `folder`; returns the folder.

    docs: DocRED-format documents whose text trains the tokenizer (default: the first 30 of
    Re-DocRED dev). The result depends only on (family, docs, spec): a folder already holding
    that build is returned as is, anything else in it is overwritten.
    """
    import torch

    _check_family(family)
    folder = Path(folder)
    texts = training_texts(default_docs() if docs is None else docs)
    stamp = _stamp(family, spec, texts)
    if is_complete(folder, stamp):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(family, texts, spec.vocab_size)
    config = tiny_config(family, tok, spec)
    with torch.random.fork_rng(devices=[]):  # seeded weights without disturbing the caller's RNG
        torch.manual_seed(spec.seed)
        model = _model_class(family)(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / STAMP).write_text(json.dumps(stamp, indent=1))  # written last: marks the folder complete
    return folder


# --------------------------------------------------------------------------- the dry run's switch
# A pipeline dry run (pemscl.dryrun) is one environment variable naming its folder. It lives here,
# beside the tiny encoders it switches to, so that the model and the profiles can ask "is one
# active?" without importing the dry run's runner, which builds on them.
DRY_RUN_ENV = "PEMSCL_DRY_RUN"


def dry_run_folder() -> Path | None:
    """The dry run's folder when $PEMSCL_DRY_RUN is set, else None."""
    env = os.environ.get(DRY_RUN_ENV)
    return Path(env) if env else None


def encoder_family(name: str) -> str:
    """The tiny family standing in for an encoder name: the paper's RoBERTa-large and DeBERTa
    (v1: microsoft/deberta-large; v2: microsoft/deberta-v2-xlarge, v3 shares the v2 classes);
    anything else (MiniLM, BERT, a local folder) becomes BERT."""
    n = str(name).lower()
    if "deberta-v2" in n or "deberta-v3" in n:
        return "deberta-v2"
    if "deberta" in n:
        return "deberta"
    if "roberta" in n:
        return "roberta"
    return "bert"


def encoders_dir(root: str | Path | None = None) -> Path:
    """The tiny encoders' folder of a dry run (default: the active one)."""
    base = Path(root) if root is not None else dry_run_folder()
    if base is None:
        raise RuntimeError(f"no dry run is active (${DRY_RUN_ENV} is not set)")
    return base / "encoders"


def tiny_encoder(name: str, root: str | Path | None = None, docs: Sequence[dict] | None = None) -> str:
    """The folder of the tiny encoder standing in for `name`, built when missing.

    A folder that already is a tiny encoder is returned as it is (a resolved name may come back).
    docs train the tokenizer when the folder has to be built (default: `default_docs`, read from
    the data folder in use).
    """
    if is_complete(name):
        return str(name)
    folder = encoders_dir(root) / encoder_family(name)
    if not is_complete(folder):
        make_tiny_encoder(encoder_family(name), folder, docs=docs)
    return str(folder)
