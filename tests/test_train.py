"""Training on real Re-DocRED documents with the default MiniLM encoder.

One module-scoped run trains the fast path (top layers on cached lower-layer outputs) on
real documents; the tests read what it left behind: falling loss, dev F1 above an untrained
model's, a complete run folder that is reused, and load/predict on new documents.
"""

import json

import pytest
import torch

from pemscl import data as D
from pemscl import train as T
from pemscl.evaluate import score

# Small enough for CI (about a minute on 2 cores), large enough that the model learns the
# frequent relations (country, located in, ...): 48 training documents, 6 epochs.
LEARN = dict(regime="redocred-mini", encoder="minilm", train_layers=2, epochs=6, batch_size=4,
             max_train_docs=48, max_dev_docs=16, max_test_docs=8, lr_encoder=1e-4, lr_head=1e-3,
             warmup_ratio=0.1, seed=7, label="test-learn")


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def learned(runs_root):
    cfg = T.preset("cpu", **LEARN)
    return T.train(cfg, root=runs_root, progress=False)


def test_training_loss_falls_and_dev_f1_beats_untrained(learned, runs_root):
    losses = [row["train_loss"] for row in learned.history]
    assert len(losses) == LEARN["epochs"]
    assert losses[-1] < 0.5 * losses[0], losses
    untrained = T.train(T.preset("cpu", **{**LEARN, "epochs": 0, "label": "test-untrained"}),
                        root=runs_root, progress=False)
    f1_trained = learned.scores["dev"]["f1"]
    f1_untrained = untrained.scores["dev"]["f1"]
    # 72 steps on 48 documents: far from converged (400 documents x 6 epochs reach dev F1 0.31),
    # but an untrained model's predictions are random (F1 about 0.002) and the trained one's are not
    assert f1_trained > max(3 * f1_untrained, 0.02), (f1_trained, f1_untrained)
    assert 0.0 <= learned.scores["test"]["ign_f1"] <= learned.scores["test"]["f1"] <= 1.0


def test_run_folder_is_complete_and_reused(learned, runs_root, monkeypatch):
    d = learned.dir
    for name in ("config.json", "history.json", "scores.json", "predictions_dev.json", "predictions_test.json",
                 "model.pt", "DONE"):
        assert (d / name).exists(), name
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["loss"]["kind"] == "pemscl" and cfg["train_layers"] == 2
    # the saved predictions are the ones the scores were computed from
    regime = D.load_regime("redocred-mini")
    preds = learned.predictions("dev")
    assert score(preds, regime.dev[:16])["f1"] == pytest.approx(learned.scores["dev"]["f1"])

    def boom(*a, **k):
        raise AssertionError("a complete run must not be retrained")

    monkeypatch.setattr(T, "prepare", boom)
    again = T.train(T.preset("cpu", **LEARN), root=runs_root, progress=False)
    assert again.dir == d and again.scores == learned.scores
    assert [r.dir for r in T.list_runs(runs_root)].count(d) == 1


def test_incomplete_folder_is_retrained(runs_root):
    cfg = T.preset("smoke", label="test-incomplete")
    d = T.run_dir_for(cfg, runs_root)
    d.mkdir(parents=True)
    (d / "scores.json").write_text("{half a file")
    run = T.train(cfg, root=runs_root, progress=False)
    assert (run.dir / "DONE").exists() and "dev" in run.scores


def test_load_and_predict_new_documents(learned):
    model, cfg = T.load(learned)
    docs = D.load_regime("redocred-mini").test[:8]
    preds, out, feats = T.predict(model, docs, return_logits=True, precision="fp32")
    assert out["logits"].shape == (sum(len(f["hts"]) for f in feats), 97)
    # the trained run scored the same documents through the cached fast path (fp16 cache):
    # the full forward pass agrees up to that rounding
    saved = learned.predictions("test")
    key = lambda p: (p["title"], p["h_idx"], p["t_idx"], p["r"])
    a, b = set(map(key, preds)), set(map(key, saved))
    assert len(a ^ b) <= max(2, 0.05 * len(a | b))
    bad = dict(docs[0])
    bad.pop("vertexSet")
    with pytest.raises(ValueError, match="vertexSet"):
        T.predict(model, [bad])


def test_config_overrides_and_hash():
    a = T.preset("cpu")
    b = T.preset("cpu", loss_scl_weight=0.0, label="other name")
    assert b.loss.scl_weight == 0.0 and a.loss.scl_weight > 0
    assert a.key() != b.key()
    assert T.override(a, label="renamed").key() == a.key()  # the label names, it does not define
    with pytest.raises(ValueError, match="unknown"):
        T.preset("cpu", learning_rate=1)
    with pytest.raises(ValueError, match="unknown preset"):
        T.preset("gpu-please")
    p = T.preset("paper-redocred")
    assert (p.encoder, p.epochs, p.batch_size, p.warmup_ratio, p.lr_encoder) == ("roberta-large", 8, 4, 0.06, 2e-5)
    assert (p.loss.tau, p.loss.scl_weight, p.loss.gamma) == (0.2, 0.1, "count")


def test_bf16_smoke_training_is_finite(runs_root):
    run = T.train(T.preset("smoke", precision="bf16", label="test-bf16"), root=runs_root, progress=False)
    assert run.scores["precision"] == "bfloat16"
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in run.history)


def test_ogg_view_scores_test_once_with_the_gold_dev_selected_state(runs_root, loss="pemscl"):
    # original-label training tracked on original dev and gold dev; test is scored at the end for
    # the epoch each dev set picks. It must equal what scoring test every epoch gives at that epoch.
    base = dict(regime="oog-mini", epochs=3, batch_size=2, max_train_docs=6, max_dev_docs=4, max_test_docs=4,
                train_layers=1, lr_encoder=1e-4, lr_head=1e-3, seed=3, save_model=False, loss=T.loss_spec(loss))
    once = T.train(T.preset("smoke", track=("dev", "dev_gold"), label=f"test-ogg-once-{loss}", **base),
                   root=runs_root, progress=False)
    every = T.train(T.preset("smoke", track=("dev", "dev_gold", "test"), label=f"test-ogg-every-{loss}", **base),
                    root=runs_root, progress=False)
    g_once, g_every = once.scores["by_dev_gold"], every.scores["by_dev_gold"]
    assert "test_f1" not in once.history[0] and "test_f1" in every.history[0]
    assert g_once["epoch"] == g_every["epoch"]
    assert [h["dev_gold_f1"] for h in once.history] == pytest.approx([h["dev_gold_f1"] for h in every.history])
    assert g_once["test_f1"] == pytest.approx(g_every["test_f1"], abs=1e-9)
    assert g_once["test_n_pred"] == g_every["test_n_pred"]
    # the dev-selected (OOG) scores are untouched by the extra evaluation
    assert once.scores["test"]["f1"] == pytest.approx(every.scores["test"]["f1"], abs=1e-9)


def test_ogg_view_when_the_two_dev_sets_pick_different_epochs(runs_root, monkeypatch):
    # tiny runs do not learn, so both dev sets tie at epoch 1; force the split: original dev
    # prefers the first epoch, gold dev the last. BCE, so the gold-selected test must also use
    # the threshold tuned on dev at that epoch, exactly as scoring test every epoch does.
    base = dict(regime="oog-mini", epochs=3, batch_size=2, max_train_docs=6, max_dev_docs=4, max_test_docs=4,
                train_layers=1, lr_encoder=1e-4, lr_head=1e-3, seed=3, save_model=False, loss=T.loss_spec("bce"))
    real = T.report

    def run(track, label):
        cfg = T.preset("smoke", track=track, label=label, **base)
        splits = T.prepare(cfg, progress=False)
        calls = {"dev": 0, "dev_gold": 0}

        def report(lg, feats, docs, *a, **k):
            out, preds = real(lg, feats, docs, *a, **k)
            for split in calls:
                if docs is splits.docs[split]:
                    calls[split] += 1
                    out = {**out, "f1": 0.1 * calls[split] if split == "dev_gold" else 1.0 - 0.1 * calls[split]}
            return out, preds

        monkeypatch.setattr(T, "report", report)
        return T.train(cfg, root=runs_root, progress=False, splits=splits)

    once = run(("dev", "dev_gold"), "test-ogg-split-once")
    every = run(("dev", "dev_gold", "test"), "test-ogg-split-every")
    assert once.scores["best_epoch"] == 1 and once.scores["by_dev_gold"]["epoch"] == 3
    g_every = every.scores["by_dev_gold"]
    for k in ("test_f1", "test_precision", "test_n_pred"):
        assert once.scores["by_dev_gold"][k] == pytest.approx(g_every[k], abs=1e-9), k
    assert once.scores["threshold"] == every.scores["threshold"]
