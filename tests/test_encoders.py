"""The paper's encoder classes (BERT, RoBERTa, DeBERTa v1, DeBERTa-v2) as tiny random-init models.

Each family's folder is built by `pemscl.tiny` (tokenizer trained on real DocRED text, random
weights) and then used the way a user's checkpoint is: features through `load_features`, the model
through `DocREModel(ModelConfig(encoder=folder))`. Two real Re-DocRED test documents are used, one
short (one window) and one longer than 512 tokens (two windows), so ATLOP's long-document path runs
with each family's own special tokens.
"""

import json

import pytest
import torch
from transformers import AutoConfig, AutoTokenizer, BertConfig, BertModel

from pemscl import data as D
from pemscl.features import load_features
from pemscl.model import DocREModel, ModelConfig, collate, window_end_repeat
from pemscl.tiny import FAMILIES, STAMP, TinySpec, make_tiny_encoder, training_texts
from pemscl.utils import autocast

# family -> (model class, tokenizer class, first token, tokens closing a long document's first window)
EXPECTED = {
    "bert": ("BertModel", "BertTokenizer", "[CLS]", ["[SEP]"]),
    "roberta": ("RobertaModel", "RobertaTokenizer", "<s>", ["</s>", "</s>"]),
    "deberta": ("DebertaModel", "DebertaTokenizer", "[CLS]", ["[SEP]", "[SEP]"]),
    "deberta-v2": ("DebertaV2Model", "DebertaV2Tokenizer", "[CLS]", ["[SEP]", "[SEP]"]),
}
DOC_IDS = (15, 14)  # Re-DocRED test: 9 entities each; ~300-450 and ~620-760 tokens with the tiny tokenizers


@pytest.fixture(scope="module")
def train_docs(data_dir):
    return D.load_docs("redocred/dev_revised.json", root=data_dir)[:30]


@pytest.fixture(scope="module")
def rel2id(data_dir):
    return D.load_rel2id(data_dir)


@pytest.fixture(scope="module")
def docs(data_dir):
    test = D.load_docs("redocred/test_revised.json", root=data_dir)
    return [test[i] for i in DOC_IDS]


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request, tmp_path_factory, train_docs, docs, rel2id):
    """(family, folder, features of the two documents) for each family."""
    family = request.param
    folder = make_tiny_encoder(family, tmp_path_factory.mktemp(family) / "enc", docs=train_docs)
    feats = load_features(docs, str(folder), rel2id=rel2id, cache_dir=folder.parent / "cache", progress=False)
    return family, folder, feats


def model_for(folder, **kw):
    torch.manual_seed(0)  # the head is random too
    return DocREModel(ModelConfig(encoder=str(folder), **kw)).eval()


# --------------------------------------------------------------------------- the folders
def test_folder_loads_as_the_family(tiny):
    family, folder, feats = tiny
    model_cls, tok_cls, first, end = EXPECTED[family]
    tok = AutoTokenizer.from_pretrained(str(folder))
    m = model_for(folder)
    assert type(m.plm).__name__ == model_cls and type(tok).__name__ == tok_cls
    assert m.plm.config.model_type == family and m.sep_repeat == len(end)
    assert m.plm.config.vocab_size == len(tok) > 300  # a learned vocabulary, not just the alphabet
    ids = feats[0]["input_ids"]
    assert tok.convert_ids_to_tokens([ids[0], ids[-1]]) == [first, end[0]]
    # the family's own pre-tokenisation: a leading space is a piece prefix for BPE and Unigram
    assert tok.tokenize("in the") == {"bert": ["in", "the"], "roberta": ["in", "Ġthe"], "deberta": ["in", "Ġthe"],
                                      "deberta-v2": ["▁in", "▁the"]}[family]


def test_family_specific_config_options(tiny):
    family, folder, _ = tiny
    cfg = AutoConfig.from_pretrained(str(folder))
    assert (cfg.hidden_size, cfg.num_hidden_layers) == (64, 2)
    if family == "roberta":
        assert cfg.max_position_embeddings == 514 and cfg.pad_token_id == 1
    if family.startswith("deberta"):
        assert cfg.relative_attention and not cfg.position_biased_input
    if family == "deberta-v2":
        assert cfg.conv_kernel_size == 3 and cfg.position_buckets == 256


def test_build_is_cached_and_deterministic(tiny, tmp_path, train_docs):
    family, folder, _ = tiny
    stamp = (folder / STAMP).stat().st_mtime_ns
    assert make_tiny_encoder(family, folder, docs=train_docs) == folder
    assert (folder / STAMP).stat().st_mtime_ns == stamp  # complete folder: reused, not rewritten
    again = make_tiny_encoder(family, tmp_path / "again", docs=train_docs)
    assert (again / "tokenizer.json").read_text() == (folder / "tokenizer.json").read_text()
    a, b = model_for(folder).plm.state_dict(), model_for(again).plm.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # another spec is another build, in place
    other = make_tiny_encoder(family, tmp_path / "again", docs=train_docs, spec=TinySpec(seed=1))
    assert json.loads((other / STAMP).read_text())["spec"]["seed"] == 1
    assert not torch.equal(model_for(other).plm.embeddings.word_embeddings.weight,
                           a["embeddings.word_embeddings.weight"])


def test_training_texts_mark_mentions():
    doc = {"sents": [["Alice", "met", "Bob", "Smith", "."]],
           "vertexSet": [[{"sent_id": 0, "pos": [0, 1]}], [{"sent_id": 0, "pos": [2, 4]}]]}
    assert training_texts([doc]) == ["* Alice * met * Bob Smith * ."]


def test_unknown_family_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="electra"):
        make_tiny_encoder("electra", tmp_path)


# --------------------------------------------------------------------------- windows
def test_window_boundaries_follow_atlop(tiny):
    """First window: CLS + doc[1:W-n] + n SEP; second: CLS + doc[L-W+1:] (ending in the doc's SEP)."""
    family, folder, feats = tiny
    _, _, first, end = EXPECTED[family]
    short, long_ = feats
    W = 64
    tok = AutoTokenizer.from_pretrained(str(folder))
    m = model_for(folder, window=W)
    ids = short["input_ids"][:2 * W]  # cut to fit two windows; the tail keeps a document token at W - n - 1
    doc = dict(short, input_ids=ids[:-1] + [short["input_ids"][-1]])
    b = m.collate([doc])
    w1, w2 = b["input_ids"].tolist()
    n = len(end)
    ids = doc["input_ids"]
    assert w1 == ids[:W - n] + [tok.convert_tokens_to_ids(end[0])] * n
    assert tok.convert_ids_to_tokens(w1[:1] + w1[W - n:]) == [first] + end
    assert tok.convert_ids_to_tokens([w1[W - n - 1]])[0] not in end  # the last document token before them
    assert w2 == [ids[0]] + ids[len(ids) - (W - 1):]
    assert tok.convert_ids_to_tokens([w2[0], w2[-1]]) == [first, end[0]]
    assert b["win_spans"] == [(0, W - n, 0), (len(ids) - (W - 1), len(ids), 1)]
    # at the real window length the short document is one window, unchanged; the long one is two
    m512 = model_for(folder)
    assert m512.collate([short])["input_ids"].tolist() == [short["input_ids"]]
    assert len(short["input_ids"]) <= 512 < len(long_["input_ids"])
    assert m512.collate([long_])["input_ids"].shape == (2, 512)


def test_batch_with_another_window_convention_is_refused(tiny):
    family, folder, feats = tiny
    m = model_for(folder)
    wrong = collate(feats, window=512, sep_repeat=3 - m.sep_repeat)
    with pytest.raises(ValueError, match="SEP"):
        m(wrong)
    m(collate(feats[:1], window=512))  # one-window batches carry no convention: accepted


# --------------------------------------------------------------------------- forward, backward, fast path
def test_forward_backward_and_fast_path(tiny):
    family, folder, feats = tiny
    m = model_for(folder)
    b = m.collate(feats)
    n_pairs = sum(len(f["hts"]) for f in feats)
    with torch.no_grad():
        win_hidden, win_att = m.run_encoder(b["input_ids"], b["attention_mask"])
        full = m(b)["logits"]
    assert win_att.shape == (3, 4, 512, 512)  # 3 windows, 4 heads
    rows = win_att[0].sum(-1)  # a real attention distribution over the window's tokens
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-4)
    assert full.shape == (n_pairs, 97) and torch.isfinite(full).all()

    # the cached fast path (train_layers = 1 and = all) reproduces the full forward in eval mode
    n_layers = len(m.layers)
    for first in (n_layers - 1, 0):
        with torch.no_grad():
            hidden = m.encode_bottom(b["input_ids"], b["attention_mask"], first)
            fast = m(b, cached_hidden=hidden, first_layer=first)["logits"]
        assert torch.allclose(full, fast, atol=1e-5), (family, first)

    m.train()
    m(b)["logits"].square().mean().backward()
    grads = {n: p.grad for n, p in m.named_parameters() if p.grad is not None}
    assert all(torch.isfinite(g).all() for g in grads.values())
    last = f"plm.encoder.layer.{n_layers - 1}.attention.self."
    # gradient reaches the embeddings and the last layer's attention (context pooling's path)
    assert any(n.startswith("plm.embeddings.word_embeddings") and g.abs().sum() > 0 for n, g in grads.items())
    assert any(n.startswith(last) and g.abs().sum() > 0 for n, g in grads.items())


def _pieces(m, b, first=None):
    """Logits, the last layer's attention, the pooled context and every parameter's gradient
    (eval mode: no dropout, so two attention kernels must give the same numbers)."""
    m.zero_grad(set_to_none=True)
    if first is None:
        win_hidden, win_att = m.run_encoder(b["input_ids"], b["attention_mask"])
    else:
        hidden = m.encode_bottom(b["input_ids"], b["attention_mask"], first)
        win_hidden, win_att = m.run_top_layers(hidden, b["attention_mask"], first)
    seq, att = m.stitch(win_hidden, win_att, b)
    hs, ts, ctx = m.pool(seq, att, b)
    logits = m.head(hs, ts, ctx)[0]
    (logits.square().mean() + ctx.square().mean()).backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    return logits.detach(), att.detach(), ctx.detach(), grads


def _max_diff(a, b):
    return float((a - b).abs().max()) if a.numel() else 0.0


@pytest.mark.parametrize("path", ["full", "fast path"])
def test_fast_attention_equals_all_eager(tiny, path):
    """Issue 25: SDPA in every layer but the last (eager, for ATLOP's pooling) gives the all-eager
    numbers: logits, the pooled attention and context, every gradient, within 1e-5 in fp32, for a
    one-window and a two-window document with padding in the batch."""
    family, folder, feats = tiny
    eager, fast = model_for(folder, attention="eager"), model_for(folder, attention="fast")
    fast.load_state_dict(eager.state_dict())
    impl = fast.plm.config._attn_implementation
    if family.startswith("deberta"):  # no SDPA in transformers for DeBERTa: its own attention in both
        assert impl == "eager"
    else:
        assert impl == "sdpa" and fast.layers[-1].attention.self.config._attn_implementation == "eager"
        assert all(layer.attention.self.config._attn_implementation == "sdpa" for layer in fast.layers[:-1])
    assert eager.plm.config._attn_implementation == "eager"
    b = fast.collate(feats)
    assert (b["attention_mask"] == 0).any()  # the short document's window is padded
    first = None if path == "full" else len(fast.layers) - 1
    if path == "fast path":
        for m in (eager, fast):  # train only the top layer, as train_layers=1 does
            for n, p in m.named_parameters():
                p.requires_grad_(not n.startswith("plm.") or n.startswith(f"plm.encoder.layer.{first}."))
    le, ae, ce, ge = _pieces(eager, b, first)
    lf, af, cf, gf = _pieces(fast, b, first)
    assert _max_diff(le, lf) < 1e-5 and _max_diff(ae, af) < 1e-5 and _max_diff(ce, cf) < 1e-5
    assert ge.keys() == gf.keys() and len(ge) > 4
    worst = max(ge, key=lambda n: _max_diff(ge[n], gf[n]))
    assert _max_diff(ge[worst], gf[worst]) < 1e-5, worst
    if path == "full":  # the gradient really flows through every layer's attention
        assert any(n.startswith("plm.encoder.layer.0.attention") and g.abs().sum() > 0 for n, g in gf.items())


def test_sdpa_encoder_keeps_sdpa_below_the_last_layer():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, attn_implementation="sdpa")
    plm = BertModel(cfg, add_pooling_layer=False)
    m = DocREModel(ModelConfig(encoder="tiny", emb_size=16, block_size=4, window=16), plm=plm).eval()
    assert m.plm.config._attn_implementation == "sdpa"
    assert m.layers[-1].attention.self.config._attn_implementation == "eager"
    ids = torch.randint(5, 50, (2, 10))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with torch.no_grad():
        _, att = m.run_encoder(ids, mask)
    assert att.shape == (2, 4, 10, 10)
    assert float(att[1, :, :, 7:].abs().max()) == 0.0  # padded keys get no probability
    assert torch.allclose(att.sum(-1), torch.ones(2, 4, 10), atol=1e-5)
    # an all-eager model (ModelConfig.attention="eager") from an SDPA one
    plm2 = BertModel(cfg, add_pooling_layer=False)
    e = DocREModel(ModelConfig(encoder="tiny", emb_size=16, block_size=4, window=16, attention="eager"), plm=plm2)
    assert e.plm.config._attn_implementation == "eager"
    with pytest.raises(ValueError, match="attention must be one of"):
        DocREModel(ModelConfig(encoder="tiny", emb_size=16, block_size=4, window=16, attention="flash"), plm=plm2)


def test_encoder_without_probabilities_is_a_clear_error():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, attn_implementation="sdpa")
    m = DocREModel(ModelConfig(encoder="tiny", emb_size=16, block_size=4, window=16),
                   plm=BertModel(cfg, add_pooling_layer=False)).eval()
    # a last layer switched back to SDPA hides its attention probabilities: a clear error, not an IndexError
    m.layers[-1].attention.self.config._attn_implementation = "sdpa"
    ids = torch.randint(5, 50, (1, 10))
    with pytest.raises(RuntimeError, match="no attention probabilities"):
        m.run_encoder(ids, torch.ones_like(ids))


def test_window_end_repeat_table():
    assert [window_end_repeat(t) for t in ("bert", "roberta", "deberta", "deberta-v2", None)] == [1, 2, 2, 2, 1]


def test_bf16_autocast_forward_backward(tiny):
    """Mixed precision as on a GPU run (DeBERTa v1's attention is kept in fp32: transformers#35332)."""
    family, folder, feats = tiny
    m = model_for(folder).train()
    b = m.collate(feats)
    with autocast(torch.device("cpu"), torch.bfloat16):
        logits = m(b)["logits"]
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    logits.square().mean().backward()
    grads = [p.grad for p in m.plm.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert not torch.is_autocast_enabled("cpu")  # the fp32 islands closed their autocast-off contexts
