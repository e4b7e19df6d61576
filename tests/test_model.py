"""The ATLOP encoder and head: windows, pooling, fast path, decisions.

Most tests use a tiny randomly initialised BERT (2 layers, hidden 32) with a 16-token
window, so long-document stitching and the cached fast path run in milliseconds; the
default MiniLM encoder is exercised on real documents in test_train.py.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from pemscl.model import DocREModel, ModelConfig, collate, decide, make_windows, to_official
from pemscl.utils import autocast, resolve_device, resolve_precision

WINDOW = 16


def tiny_model(seed=0, emb=16, block=4):
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, attn_implementation="eager")
    plm = BertModel(cfg, add_pooling_layer=False)
    m = DocREModel(ModelConfig(encoder="tiny", emb_size=emb, block_size=block, window=WINDOW), plm=plm)
    return m.eval()


def feature(n_tokens, entity_pos, seed=0, title="doc"):
    rng = np.random.default_rng(seed)
    ids = [1] + rng.integers(5, 60, n_tokens - 2).tolist() + [2]
    n = len(entity_pos)
    hts = [(h, t) for h in range(n) for t in range(n) if h != t]
    labels = np.zeros((len(hts), 97), np.uint8)
    labels[:, 0] = 1
    return {"title": title, "doc_index": seed, "input_ids": ids, "entity_pos": entity_pos, "hts": hts,
            "labels": labels}


def test_make_windows():
    assert make_windows(10, 16) == [(0, 10, 0, 0)]
    assert make_windows(16, 16) == [(0, 16, 0, 0)]
    # 24 tokens: window 1 = doc[0:15] + SEP, window 2 = CLS + doc[9:24]; both 16 long
    assert make_windows(24, 16) == [(0, 15, 0, 1), (9, 24, 1, 2)]
    # RoBERTa-style: window 1 = doc[0:14] + SEP SEP; window 2 unchanged
    assert make_windows(24, 16, n_end=2) == [(0, 14, 0, 1), (9, 24, 1, 2)]
    # as in ATLOP, 31 = 2 * 16 - 1 tokens leave doc[15] in neither window; 32 is the most two windows take
    assert make_windows(31, 16) == [(0, 15, 0, 1), (16, 31, 1, 2)]
    with pytest.raises(ValueError, match="max_len <= 32"):
        make_windows(33, 16)


def test_gap_between_windows_gets_zero_states_like_atlop():
    m = tiny_model()
    f = feature(31, [[(1, 3)], [(15, 17)], [(25, 27)]])  # entity 1's start marker is the gap token 15
    b = collate([f], window=WINDOW)
    with torch.no_grad():
        seq, att = m.stitch(*m.run_encoder(b["input_ids"], b["attention_mask"]), b)
    assert torch.all(seq[0, 15] == 0) and torch.all(att[0, :, 15] == 0) and torch.all(att[0, :, :, 15] == 0)
    assert torch.allclose(att[0, :, 14].sum(-1), torch.ones(4), atol=1e-5)
    with torch.no_grad():
        assert torch.isfinite(m(b)["logits"]).all()


def test_double_sep_windows():
    f = feature(24, [[(1, 3)], [(20, 22)]])
    ids = f["input_ids"]
    b = collate([f], window=WINDOW, sep_repeat=2)
    assert b["input_ids"][0].tolist() == ids[:14] + [ids[-1], ids[-1]]
    assert b["input_ids"][1].tolist() == [ids[0]] + ids[9:]
    assert b["win_spans"] == [(0, 14, 0), (9, 24, 1)]
    with pytest.raises(ValueError, match=r"end in 2 SEP token\(s\) but bert uses 1"):  # a BERT model refuses RoBERTa-style windows
        tiny_model()(b)


def test_long_document_is_stitched_from_two_windows():
    m = tiny_model()
    f = feature(24, [[(1, 3)], [(20, 22)]])
    b = collate([f], window=WINDOW)
    assert b["input_ids"].shape == (2, 16)
    ids = f["input_ids"]
    assert b["input_ids"][0].tolist() == ids[:15] + [ids[-1]]
    assert b["input_ids"][1].tolist() == [ids[0]] + ids[9:]
    with torch.no_grad():
        wh, wa = m.run_encoder(b["input_ids"], b["attention_mask"])
        seq, att = m.stitch(wh, wa, b)
    assert seq.shape == (1, 24, 32) and att.shape == (1, 4, 24, 24)
    # only in window 1, only in window 2, and the overlap averages both
    assert torch.allclose(seq[0, 3], wh[0, 3])
    assert torch.allclose(seq[0, 20], wh[1, 20 - 9 + 1])
    assert torch.allclose(seq[0, 12], (wh[0, 12] + wh[1, 12 - 9 + 1]) / 2)
    # attention rows are renormalised distributions over the document
    assert torch.allclose(att[0].sum(-1), torch.ones(4, 24), atol=1e-5)


def reference_pool(m, seq, att, f):
    """The per-mention, per-pair loops of ATLOP, written plainly, for one document."""
    ents, eatts = [], []
    for mentions in f["entity_pos"]:
        embs = torch.stack([seq[s] for s, _ in mentions])
        ents.append(torch.logsumexp(embs, 0))
        eatts.append(torch.stack([att[:, s] for s, _ in mentions]).mean(0))
    hs, ts, cs = [], [], []
    for h, t in f["hts"]:
        a = (eatts[h] * eatts[t]).mean(0)
        a = a / (a.sum() + 1e-5)
        hs.append(ents[h]), ts.append(ents[t]), cs.append(a @ seq)
    return torch.stack(hs), torch.stack(ts), torch.stack(cs)


def test_vectorised_pooling_matches_reference_loops():
    m = tiny_model()
    feats = [feature(12, [[(1, 3), (6, 8)], [(4, 5)], [(9, 10), (2, 3), (7, 8)]], seed=1),
             feature(24, [[(1, 3)], [(20, 22), (10, 12)]], seed=2)]
    b = collate(feats, window=WINDOW)
    with torch.no_grad():
        seq, att = m.stitch(*m.run_encoder(b["input_ids"], b["attention_mask"]), b)
        hs, ts, ctx = m.pool(seq, att, b)
    ref = [reference_pool(m, seq[i, : len(f["input_ids"])], att[i, :, : len(f["input_ids"]), : len(f["input_ids"])], f)
           for i, f in enumerate(feats)]
    for got, want in zip((hs, ts, ctx), zip(*ref)):
        assert torch.allclose(got, torch.cat(want), atol=1e-5)


def test_entity_without_mentions_gets_zero_vector():
    m = tiny_model()
    f = feature(12, [[(1, 3)], []])  # the second entity's mentions were truncated away
    b = collate([f], window=WINDOW)
    with torch.no_grad():
        seq, att = m.stitch(*m.run_encoder(b["input_ids"], b["attention_mask"]), b)
        hs, ts, ctx = m.pool(seq, att, b)
    assert torch.all(ts[0] == 0) and torch.all(hs[1] == 0)
    assert torch.isfinite(ctx).all()


def test_head_is_group_bilinear():
    m = tiny_model(emb=8, block=4)  # K = 2 groups of 4
    hs, ts, ctx = torch.randn(3, 32), torch.randn(3, 32), torch.randn(3, 32)
    with torch.no_grad():
        logits, zh, zt = m.head(hs, ts, ctx)
        zh_ref = torch.tanh(m.head_extractor(torch.cat([hs, ctx], -1)))
        zt_ref = torch.tanh(m.tail_extractor(torch.cat([ts, ctx], -1)))
        x = torch.cat([torch.outer(zh_ref[0, 4 * k: 4 * k + 4], zt_ref[0, 4 * k: 4 * k + 4]).flatten() for k in range(2)])
    assert zh.shape == (3, 2, 4)
    assert torch.allclose(logits[0], m.classifier(x), atol=1e-5)


def test_batch_does_not_change_a_document_logits():
    m = tiny_model()
    a = feature(12, [[(1, 3)], [(4, 5)], [(6, 7)]], seed=3)
    b = feature(24, [[(1, 3)], [(20, 22)]], seed=4)
    with torch.no_grad():
        alone = m(collate([a], window=WINDOW))["logits"]
        both = m(collate([a, b], window=WINDOW))["logits"]
    assert torch.allclose(alone, both[: len(a["hts"])], atol=1e-5)


def test_fast_path_equals_full_forward():
    """Cached lower-layer output + top layers by hand == the encoder's own forward."""
    m = tiny_model()
    feats = [feature(12, [[(1, 3)], [(4, 5)], [(6, 7)]], seed=5), feature(24, [[(1, 3)], [(20, 22)]], seed=6)]
    b = collate(feats, window=WINDOW)
    with torch.no_grad():
        full = m(b)["logits"]
        hidden = m.encode_bottom(b["input_ids"], b["attention_mask"], 1)
        fast = m(b, cached_hidden=hidden, first_layer=1)["logits"]
    assert torch.allclose(full, fast, atol=1e-5)


def test_bf16_autocast_forward_backward_is_finite():
    m = tiny_model().train()
    f = feature(24, [[(1, 3)], [(20, 22)], [(5, 6)]])
    b = collate([f], window=WINDOW)
    with autocast(torch.device("cpu"), torch.bfloat16):
        out = m(b)
    assert out["logits"].dtype == torch.float32
    out["logits"].square().mean().backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("saved", [torch.float16, torch.bfloat16])
def test_half_precision_checkpoint_loads_fp32_master_weights(tmp_path, saved):
    # transformers 5 keeps a checkpoint's saved dtype; AdamW on fp16 weights lost every update of
    # a MiniLM saved in fp16 (dev F1 0 after 4 epochs on a GPU). Half precision is autocast's job.
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64)
    plm = BertModel(cfg, add_pooling_layer=False).to(saved)
    plm.save_pretrained(tmp_path)
    m = DocREModel(ModelConfig(encoder=str(tmp_path), emb_size=16, block_size=4, window=WINDOW))
    assert {p.dtype for p in m.parameters()} == {torch.float32}
    w = m.plm.embeddings.word_embeddings.weight
    assert torch.equal(w, plm.embeddings.word_embeddings.weight.float())  # the saved values, upcast exactly


def test_minilm_alias_follows_its_environment_variable(tmp_path, monkeypatch):
    from pemscl import features as FT
    from pemscl import model as M

    package = M.resolve_encoder("minilm")
    assert (Path(package) / "config.json").is_file() and FT.default_encoder() == package
    monkeypatch.setenv(M.MINILM_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"PEMSCL_MINILM=.* \(no config.json\)"):
        M.resolve_encoder("minilm")
    (tmp_path / "config.json").write_text("{}")
    assert M.resolve_encoder("minilm") == FT.default_encoder() == str(tmp_path)
    assert M.resolve_encoder("bert-base-uncased") == "bert-base-uncased"  # other names untouched


def test_device_and_precision_resolution(monkeypatch):
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # an explicit device is taken as given
    # "auto": CUDA first, then Apple MPS, then CPU, whatever this machine has
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto").type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    assert resolve_precision("fp16", torch.device("cuda")) is torch.float16
    with pytest.raises(ValueError):
        resolve_precision("int8", cpu)


def test_auto_precision_follows_the_measurement_the_override_and_the_gpu(monkeypatch):
    import pemscl.utils as U

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("PEMSCL_PRECISION", raising=False)
    monkeypatch.setattr(U, "measured_cpu_precision", lambda: "bf16")
    assert resolve_precision("auto", cpu) is torch.bfloat16
    monkeypatch.setenv("PEMSCL_PRECISION", "fp32")  # the override beats the measurement
    assert resolve_precision("auto", cpu) is None
    monkeypatch.delenv("PEMSCL_PRECISION")
    monkeypatch.setattr(U, "measured_cpu_precision", lambda: "fp32")
    assert resolve_precision("auto", cpu) is None
    monkeypatch.setenv("PEMSCL_PRECISION", "bf16")
    assert resolve_precision("auto", cpu) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", gpu) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", gpu) is torch.float16


def test_cpu_precision_measured_once_per_machine_and_kept(tmp_path, monkeypatch):
    import json

    import pemscl.utils as U

    monkeypatch.setenv("PEMSCL_MACHINE_CACHE", str(tmp_path))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(U, "_MEASURED", {})
    monkeypatch.setattr(U, "_cpu_name", lambda: "Test CPU")
    monkeypatch.setattr(U, "cpu_capability", lambda: "AVX512")
    # without native bf16 the answer is fp32, unmeasured, and written to the machine cache
    monkeypatch.setattr(U, "cpu_supports_bf16", lambda: False)
    assert U.measured_cpu_precision() == "fp32"
    key = f"Test CPU|AVX512|{torch.__version__}"
    rec = json.loads((tmp_path / "precision.json").read_text())[key]
    assert (rec["choice"], rec["seconds"]) == ("fp32", {}) and "flags" in rec["why"]
    # another process reads the file instead of measuring again (here: a planted bf16 choice)
    (tmp_path / "precision.json").write_text(json.dumps({key: {"choice": "bf16", "seconds": {}, "why": "planted"}}))
    monkeypatch.setattr(U, "_MEASURED", {})
    assert U.measured_cpu_precision() == "bf16"
    line = U.precision_line("auto", torch.device("cpu"))
    assert line.startswith("precision bf16: auto, measured on Test CPU (AVX512): planted; cached in ") and "\n" not in line
    # the same CPU model with other kernels (ATen capability AVX2) is measured again, timing both
    monkeypatch.setattr(U, "_MEASURED", {})
    monkeypatch.setattr(U, "cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(U, "cpu_supports_bf16", lambda: True)
    choice = U.measured_cpu_precision(reps=1)
    known = json.loads((tmp_path / "precision.json").read_text())
    rec = known[f"Test CPU|AVX2|{torch.__version__}"]
    assert known[key]["choice"] == "bf16"  # the other capability's entry is kept
    assert set(rec["seconds"]) == {"fp32", "bf16"} and all(t > 0 for t in rec["seconds"].values())
    assert choice == rec["choice"] == ("bf16" if rec["seconds"]["bf16"] < 0.9 * rec["seconds"]["fp32"] else "fp32")
    assert "measured now" in U.precision_line("auto", torch.device("cpu"))
    # a pinned precision says so, and a pinned bf16 that is slow here says what auto would pick
    monkeypatch.setattr(U, "_MEASURED", {U.precision_cache_key(): {"choice": "fp32", "why": "bf16 0.05x", "cached": None}})
    assert U.precision_line("fp32", torch.device("cpu")) == "precision fp32: as the config pins it"
    monkeypatch.setenv("PEMSCL_BF16_GEMM", "native")  # a CPU with bf16 instructions, slow in bf16 all the same
    assert "precision='auto' would pick fp32" in U.precision_line("bf16", torch.device("cpu"))


def test_decide_threshold_topk_and_fixed_threshold():
    # columns: NA, r1, r2, r3
    logits = torch.tensor([[0.0, 1.0, -1.0, 2.0],   # r1, r3 above NA
                           [0.0, -1.0, -2.0, -0.5],  # nothing above NA -> NA
                           [1.0, 3.0, 2.0, 1.5]])    # all three above NA
    pad = torch.full((3, 93), -9.0)
    lg = torch.cat([logits, pad], 1)
    d = decide(lg)
    assert d[:, :4].tolist() == [[False, True, False, True], [True, False, False, False], [False, True, True, True]]
    d2 = decide(lg, top_k=2)
    assert d2[2, :4].tolist() == [False, True, True, False]
    d3 = decide(lg, threshold=0.8)  # sigmoid(x) > 0.8  <=>  x > log(4) = 1.386
    assert d3[:, :4].tolist() == [[False, False, False, True], [True, False, False, False], [False, True, True, True]]
    # either side of the boundary: sigmoid(log 4 -+ 0.01) = 0.7987 / 0.8013; NA's own logit plays no part
    near = torch.full((2, 97), -9.0)
    near[:, 0] = 5.0
    near[0, 1], near[1, 1] = math.log(4) - 0.01, math.log(4) + 0.01
    assert decide(near, threshold=0.8)[:, :2].tolist() == [[True, False], [False, True]]


def test_to_official_maps_rows_to_titles_and_pairs():
    f1 = {"title": "A", "doc_index": 0, "hts": [(0, 1), (1, 0)]}
    f2 = {"title": "B", "doc_index": 1, "hts": [(0, 1)]}
    dec = torch.zeros(3, 97, dtype=torch.bool)
    dec[1, 5] = True
    dec[2, 1] = dec[2, 2] = True
    id2rel = {i: f"P{i}" for i in range(97)}
    preds = to_official(dec, [f1, f2], id2rel)
    assert preds == [{"title": "A", "h_idx": 1, "t_idx": 0, "r": "P5", "doc_index": 0},
                     {"title": "B", "h_idx": 0, "t_idx": 1, "r": "P1", "doc_index": 1},
                     {"title": "B", "h_idx": 0, "t_idx": 1, "r": "P2", "doc_index": 1}]
