"""The CUDA path, on a machine that has a GPU (every test here is skipped without one).

The CPU suite runs the same code at tiny size; what it cannot reach is what only CUDA does:
kernels that differ from the CPU's (logits must agree in fp32), bf16 and fp16 autocast with
fp16's loss scaling (`GradScaler`, created only for fp16 on CUDA), the CUDA random state that a
resumed run restores, and the peak-memory record. Encoders are the tiny random-init folders of
the paper's classes (pemscl.tiny), so no model hub is needed; documents are real Re-DocRED ones.

    python -m pytest tests/test_gpu.py     # on a GPU machine; benchmarks/gpu_check.sh runs it
"""

import json

import pytest
import torch

from interrupt import train_one_epoch_then_preempt
from pemscl import config as CF
from pemscl import data as D
from pemscl import losses as LS
from pemscl import runs as RS
from pemscl import train as T
from pemscl.features import load_features
from pemscl.model import DocREModel, ModelConfig
from pemscl.tiny import FAMILIES, make_tiny_encoder

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# Two Re-DocRED test documents, one window and two windows long (as tests/test_encoders.py)
DOC_IDS = (15, 14)
# A tiny run: 8 training documents, 4 dev / 4 test, the whole encoder trained. Learning rates
# high enough that 6 epochs move a random-init 2-layer model visibly.
RUN = dict(regime="redocred-mini", epochs=6, batch_size=2, max_train_docs=8, max_dev_docs=4,
           max_test_docs=4, train_layers=None, lr_encoder=1e-3, lr_head=1e-2, warmup_ratio=0.0,
           patience=None, seed=3, device="cuda")


@pytest.fixture(scope="module")
def encoders(tmp_path_factory, data_dir):
    texts = D.load_docs("redocred/dev_revised.json", root=data_dir)[:30]
    root = tmp_path_factory.mktemp("enc")
    return {f: make_tiny_encoder(f, root / f, docs=texts) for f in FAMILIES}


@pytest.fixture(scope="module")
def docs(data_dir):
    test = D.load_docs("redocred/test_revised.json", root=data_dir)
    return [test[i] for i in DOC_IDS]


@pytest.fixture
def strict_fp32():
    # TF32 would round matmul inputs to 10 mantissa bits: the comparison is of kernels, not modes
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("family", FAMILIES)
def test_cuda_logits_and_gradients_match_the_cpu_in_fp32(family, encoders, docs, data_dir, strict_fp32, tmp_path):
    folder = encoders[family]
    feats = load_features(docs, str(folder), rel2id=D.load_rel2id(data_dir), cache_dir=tmp_path, progress=False)
    torch.manual_seed(0)
    cpu = DocREModel(ModelConfig(encoder=str(folder))).eval()
    gpu = DocREModel(ModelConfig(encoder=str(folder))).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.cuda()
    out = {}
    for name, m, dev in (("cpu", cpu, "cpu"), ("cuda", gpu, "cuda")):
        b = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in m.collate(feats).items()}
        logits = m(b)["logits"]
        logits.square().mean().backward()
        grad = torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])
        out[name] = logits.detach().double().cpu(), grad.double().cpu()
    for i, what in enumerate(("logits", "gradients")):
        ref, got = out["cpu"][i], out["cuda"][i]
        assert ref.shape == got.shape and torch.isfinite(got).all()
        rel = ((got - ref).norm() / ref.norm()).item()
        assert rel < 1e-4, (family, what, rel)  # fp32 on both: reduction order alone differs


def _run(tmp_path, folder, **over) -> RS.Run:
    cfg = CF.preset("cpu", encoder=str(folder), **{**RUN, **over})
    return T.train(cfg, root=tmp_path, progress=False)


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_a_whole_run_on_cuda_learns_and_records_the_gpu(precision, encoders, tmp_path, recwarn):
    run = _run(tmp_path, encoders["roberta"], precision=precision, label=f"gpu-{precision}")
    # fp16: a step the scaler skips does not advance the schedule (torch warns when it would)
    assert not [w for w in recwarn if "lr_scheduler.step()" in str(w.message)]
    losses = [row["train_loss"] for row in run.history]
    assert len(losses) == RUN["epochs"] and all(map(torch.isfinite, torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0], losses  # fp16: the scaler's skipped steps must not stall it
    scores = json.loads((run.dir / "scores.json").read_text())
    assert scores["device"].startswith("cuda")
    assert scores["peak_cuda_mb"] > 0
    assert scores["precision"] == {"bf16": "bfloat16", "fp16": "float16", "fp32": "fp32"}[precision]
    assert run.config.hashed()["device_type"] == "cuda"  # a GPU run never shares a key with a CPU one
    assert 0.0 <= run.scores["test"]["f1"] <= 1.0


def test_an_interrupted_cuda_run_resumes_where_it_stopped(encoders, tmp_path):
    """The CUDA RNG (dropout) is saved with the checkpoint: the resumed run continues the same
    random stream. Bit equality is not expected on a GPU (atomic adds in the backward sum in a
    varying order), so the resumed curve must agree with the whole one to float noise."""
    over = dict(precision="fp32", epochs=3, label="gpu-resume", loss=LS.loss_spec("pemscl-ns"))
    whole = _run(tmp_path / "a", encoders["bert"], **over)

    cfg = CF.preset("cpu", encoder=str(encoders["bert"]), **{**RUN, **over})
    train_one_epoch_then_preempt(cfg, tmp_path / "b")
    resumed = T.train(cfg, root=tmp_path / "b", progress=False)
    a = [r["train_loss"] for r in whole.history]
    b = [r["train_loss"] for r in resumed.history]
    assert len(a) == len(b) == 3
    assert all(abs(x - y) <= 1e-3 * abs(x) for x, y in zip(a, b)), (a, b)
    # a resume that drew new dropout masks (or reset the schedule) would differ by far more
    # than this; the same run started twice shows what float noise alone gives
    again = _run(tmp_path / "c", encoders["bert"], **over)
    c = [r["train_loss"] for r in again.history]
    assert all(abs(x - y) <= 1e-3 * abs(x) for x, y in zip(a, c)), (a, c)
