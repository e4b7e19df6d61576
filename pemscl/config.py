"""What a run is: the TrainConfig dataclass, its presets, overrides and its hash.

    from pemscl import config
    cfg = config.preset("cpu", loss=config.loss_spec("atl"), epochs=12, patience=2)
    cfg.key()          # names the run folder and its row in results/runs.jsonl

The hash (`key`) is what makes a recorded run reusable, so it follows three rules:

* it hashes *resolved* values: precision "auto" becomes what this machine picks, device
  "auto" becomes its type (cpu / cuda); a bf16 run is a different run from an fp32 one;
* it leaves out fields at their dataclass default, so adding an option with a default that
  keeps today's behaviour does not orphan the runs already recorded;
* it carries HASH_VERSION: bump it whenever a default changes or the code changes what a
  config produces (tests/test_regression.py pins a two-step smoke run and fails until you do).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .lossspec import LossSpec, loss_spec
from .utils import device_type, precision_name, stable_hash

# v1: the unversioned hash of sessions 1-2. v2: separate random streams (init, order, dropout,
# sampling), gamma2 over all negatives under NS (Eq. 12), early stopping, hash of resolved
# values without defaults.
HASH_VERSION = 2


@dataclass
class TrainConfig:
    """Everything that determines a run; its hash names the run folder."""

    encoder: str = "minilm"
    regime: str = "redocred-mini"
    noise_drop: float = 0.0  # simulate missing labels: fraction of training facts turned NA
    noise_seed: int = 0
    loss: LossSpec = field(default_factory=LossSpec)
    epochs: int = 8  # the epoch budget (the schedule decays over it); early stopping may end sooner
    patience: int | None = None  # stop after this many epochs without a better selection score (None: all epochs)
    min_epochs: int | None = None  # early stopping waits until this many epochs are done (None: from the start)
    batch_size: int = 4  # documents per optimiser step (the global batch under torchrun)
    lr_encoder: float = 2e-5
    lr_head: float = 1e-4
    warmup_ratio: float = 0.06
    grad_clip: float = 1.0
    adam_eps: float = 1e-6
    weight_decay: float = 0.0
    seed: int = 66
    device: str = "auto"
    precision: str = "auto"  # auto (measured: what is faster here) | bf16 | fp16 | fp32
    # kernels only, not hashed (same numbers: tests/test_encoders.py's equivalence tests):
    attention: str = "fast"  # "fast": SDPA in every layer but the last; "eager": all layers eager
    compile: bool = False  # torch.compile the encoder (measured: benchmarks/bench_attention.py)
    # batches of documents of similar length (less padding); hashed, since batches change. For a
    # given seed every loss still sees the same batches in the same order (train.epoch_batches)
    length_buckets: bool = False
    emb_size: int | None = None  # None: the encoder's hidden size
    block_size: int = 64
    max_len: int = 1024
    top_k: int | None = None  # released code caps predictions at 4 per pair
    train_layers: int | None = None  # fast path: train only the top n layers (None: all)
    max_train_docs: int | None = None
    max_dev_docs: int | None = None
    max_test_docs: int | None = None
    eval_test: bool = True
    # dev sets that each pick an epoch (and BCE's threshold); the first is the run's own choice
    # (saved model, scores["test"]); ("dev", "dev_gold") lets one run on original labels answer
    # both OOG (select on original dev) and OGG (select on gold dev)
    select: tuple[str, ...] = ("dev",)
    track: tuple[str, ...] = ()  # further splits scored after every epoch, for curves (e.g. "test")
    save_model: bool = True
    dry_run: bool = False  # a pipeline dry run (tiny stand-in models and data): never a real result
    label: str = ""  # human name for the folder; not part of the hash

    def hashed(self) -> dict[str, Any]:
        """The fields that define the run: resolved, defaults left out, versioned."""
        d = _non_default(self, TrainConfig())
        loss = _non_default(self.loss, LossSpec())
        if loss:
            d["loss"] = loss
        for k in ("label", "device", "precision", "attention", "compile"):
            d.pop(k, None)
        if self.patience is None:
            d.pop("min_epochs", None)  # it only delays early stopping: without it, the same run
        d["device_type"] = device_type(self.device)
        d["precision"] = precision_name(self.precision, self.device)
        d["v"] = HASH_VERSION
        return d

    def key(self) -> str:
        return stable_hash(self.hashed())

    def folder_name(self) -> str:
        slug = self.label or f"{self.regime}-{self.loss.kind}"
        slug = "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "-" for c in slug)
        return f"{slug}-{self.key()}"


def _non_default(obj, default) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            continue  # a nested config (the loss) is compared field by field by the caller
        if v != getattr(default, f.name):
            out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


# --------------------------------------------------------------------------- presets
def _paper_redocred() -> TrainConfig:
    # Table 5 (Re-DocRED row) with the released code's optimiser details (FAITHFULNESS #9)
    return TrainConfig(encoder="roberta-large", regime="redocred", epochs=8, batch_size=4,
                       warmup_ratio=0.06, lr_encoder=2e-5, lr_head=1e-4, emb_size=768, block_size=64,
                       loss=loss_spec("pemscl", tau=0.2, scl_weight=0.1, gamma="count"))


def _paper_docred() -> TrainConfig:
    # Table 5 (DocRED row): tau 2.0, lambda 2.0, gamma 1, 5 epochs, warmup 0.1. The paper names
    # DeBERTa-large (the v1 class); the released code loads deberta-v2-xlarge (FAITHFULNESS #10:
    # preset "paper-docred-released")
    return TrainConfig(encoder="microsoft/deberta-large", regime="docred", epochs=5, batch_size=4,
                       warmup_ratio=0.10, lr_encoder=2e-5, lr_head=1e-4, emb_size=768, block_size=64,
                       loss=loss_spec("pemscl", tau=2.0, scl_weight=2.0, gamma="one"))


def _paper_docred_released() -> TrainConfig:
    return dataclasses.replace(_paper_docred(), encoder="microsoft/deberta-v2-xlarge")


# Optimiser settings of the cpu preset: chosen by a probe on the ATL baseline, never on PEMSCL
# (benchmarks/probe_lr.py: best dev F1 of ATL; results/probe_lr.json), then used unchanged for
# every loss.
CPU_OPTIMISER = dict(batch_size=2, lr_encoder=5e-5, lr_head=5e-4, warmup_ratio=0.06)


def _cpu() -> TrainConfig:
    # MiniLM on the mini regimes, full fine-tuning. An epoch budget with early stopping on the
    # selection dev set: 4 epochs stopped every curve mid-climb, and the ATL probe at 15 epochs
    # (results/probe_lr.json) gained 0.6-0.7 F1 in its last two, so the budget is 18: the linear
    # decay's low-rate tail is longer, and a run (about an hour here, two side by side) still
    # fits twice in a 3-hour session. Patience 3, not 2: dev has 100 documents, and the curves
    # dip by 1-3 points for an epoch in mid-schedule. Patience alone still stopped runs in such
    # dips: of 58 runs at this budget (16 on CPU, 42 on a GPU), 8 stopped at epochs 10-14, the
    # earliest with dev F1 1.5-4 points under the mean of their loss, while the rate was still a
    # third of its peak (ATL seed 68 stopped at epoch 10 on 53.1 and made the headline's seed
    # spread on CPU). So stopping waits for epoch 15: it can save at most the last 3 epochs of a
    # run that has clearly peaked. A recorded run that stopped at epoch 15 or later, or ran its
    # whole budget, is the same run under this rule (train.carries_over) and keeps its scores.
    # Precision is pinned (not "auto") so that the recorded runs keep their keys on machines that
    # measure differently: bf16, the precision they were trained in (benchmarks/bench_parallel.py
    # measured it 1.6-1.8x faster than fp32 on this project's machine). A CPU without bf16
    # instructions trains them in bf16 too, its products in fp32 kernels (bf16cpu), and says so.
    return TrainConfig(encoder="minilm", regime="redocred-mini", epochs=18, patience=3, min_epochs=15,
                       precision="bf16", **CPU_OPTIMISER)


def _smoke() -> TrainConfig:
    # precision "auto": measured once per machine and cached, so processes agree on the key; a
    # test that pins numbers pins fp32 itself (tests/test_regression.py)
    return TrainConfig(encoder="minilm", regime="redocred-mini", epochs=1, batch_size=2,
                       max_train_docs=4, max_dev_docs=2, max_test_docs=2, train_layers=1)


PRESETS = {"paper-redocred": _paper_redocred, "paper-docred": _paper_docred,
           "paper-docred-released": _paper_docred_released, "cpu": _cpu, "smoke": _smoke}


def preset(name: str, **overrides) -> TrainConfig:
    """A preset with fields replaced; loss fields can be set as loss_<field>=... too."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return override(PRESETS[name](), **overrides)


def override(cfg: TrainConfig, **overrides) -> TrainConfig:
    loss_over = {k[5:]: overrides.pop(k) for k in list(overrides) if k.startswith("loss_")}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = set(overrides) - fields
    if bad:
        raise ValueError(f"unknown TrainConfig fields {sorted(bad)}")
    cfg = dataclasses.replace(cfg, **overrides)
    if loss_over:
        cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, **loss_over))
    return cfg


def config_from_dict(d: dict) -> TrainConfig:
    """A TrainConfig from its JSON form (unknown keys of older versions are ignored)."""
    d = dict(d)
    loss_fields = {f.name for f in dataclasses.fields(LossSpec)}
    loss = LossSpec(**{k: v for k, v in d.pop("loss", {}).items() if k in loss_fields})
    known = {f.name: f for f in dataclasses.fields(TrainConfig)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
    return TrainConfig(loss=loss, **kw)
