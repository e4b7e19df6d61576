"""Where the paper and the authors' released code differ, the option that selects each, and its
measured effect: the source of docs/FAITHFULNESS.md.

pemscl follows the paper by default; every released-code behaviour that changes results is a
named option, so either can be reproduced and the difference measured. The catalogue below is
written for users of pemscl; `write_doc(tables)` renders it with the measured effects of the
latest results (the faithfulness table of pemscl.tables), and 07_results calls it, so the
document is regenerated with the results and never edited by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .fmt import pts, row_md
from .utils import atomic_write_text, readme_path


@dataclass(frozen=True)
class Difference:
    number: int
    topic: str
    paper: str
    released: str
    option: str  # how to select the released behaviour (a config / loss field), or why none is needed
    row: str | None = None  # the experiments.FAITHFULNESS row that measures it, if any
    also: tuple[str, ...] = ()  # rows measuring another option of the same difference

    @property
    def rows(self) -> tuple[str, ...]:
        return ((self.row,) if self.row else ()) + self.also


DIFFERENCES: tuple[Difference, ...] = (
    Difference(1, "SCL positive term (Eq. 8)",
               "minus the log of the mean, over an anchor's positive partners, of its softmax similarity",
               "the mean of the logs (the SupCon 'L_out' form)",
               "`loss_spec('pemscl', scl_variant='supcon')`", "SupCon SCL (#1)"),
    Difference(2, "SCL anchors (Eq. 10)",
               "only pairs with at least one relation are anchors",
               "in fp32 the PMT loss zeroes the NA column of the shared label tensor in place, so every "
               "pair, NA pairs included, becomes an anchor and NA anchors get the long-tail term",
               "`na_anchors=True`", "NA anchors (#2)"),
    Difference(3, "SCL scale",
               "L = L1 + lambda L2 with lambda = 0.1 and tau = 0.2 on Re-DocRED",
               "similarities over tau and the loss times tau / tau_base (0.2 / 2.0 = 0.1), lambda3 = 1",
               "the same product: `scl_weight` holds lambda with tau / tau_base folded in (no separate option)"),
    Difference(4, "batch reduction",
               "losses are summed over the batch",
               "means over all pairs of the batch (SCL counts non-anchors as zeros)",
               "`reduction='mean'`", "mean reduction (#4)"),
    Difference(5, "EM weights (Eq. 6) and gamma2 under sampling (Eq. 12)",
               "each pair's entropy over its positives weighted 1/|P|, over its negatives 1/|N|; under "
               "negative sampling |N| counts all negatives of the pair",
               "a broadcasting slip weights every pair by the batch average of 1/|P| (and 1/|N|); the NS "
               "class divides by all negatives too",
               "`em_batch_average=True`; `neg_count='sampled'` divides by the sampled negatives instead",
               "EM batch-average weights (#5)", also=("gamma2 over sampled negatives (#5, NS)",)),
    Difference(6, "negative label sampling (Eq. 12)",
               "for every NA pair an independent uniform subset of its negative relations (ratio 0.1)",
               "one keep-mask per forward pass shared by all NA pairs of the batch; the class is never "
               "instantiated and the ratio flag is unused",
               "`neg_sample_per='batch'`", "NS mask per batch (#6)"),
    Difference(7, "SCL features",
               "x_ht of Eq. 1, L2-normalised",
               "the group-bilinear vector, L2-normalised, no projection head",
               "none needed: pemscl uses the group-bilinear vector, computed from its group factors"),
    Difference(8, "inference",
               "relation r when f_r > f_NA",
               "also at most 4 relations per pair (top-4 logits)",
               "`top_k=4`; every run also scores test with the cap (`scores['test_top4']`)", "top-4 cap (#8)"),
    Difference(9, "optimiser",
               "lr 2e-5, warmup 0.06, batch 4, 8 epochs",
               "encoder 2e-5, head 1e-4, AdamW eps 1e-6, no weight decay, linear warmup and decay, grad-norm "
               "clip 1.0, apex O1 mixed precision, seed 66, best epoch by dev F1",
               "the paper presets use the released details (`lr_head`, `adam_eps`, `grad_clip`, `precision`)"),
    Difference(10, "DocRED encoder",
               "DeBERTa-large (the v1 class, `microsoft/deberta-large`)",
               "`microsoft/deberta-v2-xlarge` with RoBERTa token handling",
               "preset `paper-docred-released` (the `paper-docred` preset is the paper's)"),
    Difference(11, "long documents",
               "not described",
               "ATLOP's two overlapping 512-token windows, outputs and attentions averaged over the overlap",
               "always on (`ModelConfig.window`); windows close per tokenizer family as ATLOP does"),
    Difference(12, "SCL long-tail term (Eq. 9) under mixed precision",
               "an anchor without a positive partner adds log sum_d exp(x.x_d / tau)",
               "the term broadcasts to N x N before the anchor mask, so under autocast each anchor's "
               "long-tail term is scaled by the batch's share of anchors (about 0.05 on Re-DocRED)",
               "`longtail_scale='anchor-share'`", "long-tail term x anchor share (#12)"),
)


@dataclass(frozen=True)
class Method:
    """Another method of the loss registry whose released code departs from its paper: each
    difference is a param of its loss (``loss_spec(kind, params={...})``), the paper the default."""

    kind: str  # the registered loss (and preset) name
    title: str
    paper: str  # citation
    code: str  # the released repository
    decision: str  # the decision rule at inference, and why
    differences: tuple[Difference, ...]


METHODS: tuple[Method, ...] = (
    Method("ssr-pu", "SSR-PU (shift and squared ranking PU learning)",
           "Wang, Liu, Hu, Zhang, EMNLP 2022, Section 3", "www-Ye/SSR-PU (model.py, train.py, prepro.py, scripts/)",
           "relation r when f_r > f_NA, as the released evaluate() with isrank=1: the NA score is the adaptive "
           "threshold the squared ranking loss is trained against, so no threshold is tuned on dev",
           (
               Difference(1, "class prior pi of each relation",
                          "pi_labeled per relation from the training labels (pairs labelled r / all training "
                          "pairs), the true prior pi a multiple of it; pemscl's default multiple is the released "
                          "scripts' 3 for incompletely labelled training data (the leaderboard's gold-label block "
                          "sets their fully supervised 1)",
                          "pi = e x pi_labeled with `--e` 3.0 (DocRED, incomplete labels), 1.0 (fully supervised "
                          "Re-DocRED scripts), 12.0 (extremely unlabelled)",
                          "`params={'prior_scale': e}`, or a true prior directly: `params={'prior': 0.05}` (one "
                          "per relation as a list); pi_labeled is filled from the training split by "
                          "`losses.prepare_loss`, else each batch's labelled shares"),
               Difference(2, "non-negative risk",
                          "the nnPU risk R+ + max(0, R-)",
                          "Kiryo et al.'s training step: where R- < beta (0) the relation's risk is "
                          "-gamma x R- (gamma 1), gradient ascent on R-, and R+ is dropped",
                          "`params={'nonneg': 'defit', 'beta': 0.0, 'defit_gamma': 1.0}`"),
               Difference(3, "positive risk weight",
                          "R+ = pi E_P[l(z, +1)]",
                          "R+ times sqrt((1 - pi) / pi), a class-imbalance weight (not verified against the paper "
                          "text here)",
                          "`params={'pos_weight': 'sqrt-odds'}`; the leaderboard's SSR-PU rows use it, as every "
                          "released run does"),
               Difference(4, "margin m of the squared ranking loss l(z, y) = (y z - m)^2 / 4",
                          "m = 0.25 (pemscl's default: the value every released script passes)",
                          "argparse default `--m 1.0` when no script is used",
                          "`params={'margin': 1.0}`"),
               Difference(5, "batch reduction",
                          "a risk: the sum over relations of expectations over pairs",
                          "the same (means per relation, summed over relations)",
                          "preset `reduction='mean'`; `reduction='sum'` multiplies it by the number of pairs"),
           )),
    Method("afl", "AFL (adaptive focal loss)",
           "Tan, He, Bing, Ng, Findings of ACL 2022, Section 3.3", "tonytan48/KD-DocRE (losses.py: AFLoss)",
           "relation r when f_r > f_TH (the threshold class, column 0), as the released get_label",
           (
               Difference(1, "weight of a positive's log P(r) in L1",
                          "(1 - P(r))^gamma, P(r) = sigma(f_r - f_TH)",
                          "1 + (1 - P(r))^gamma (the gamma_neg term is computed and unused)",
                          "`params={'pos_weight': 'one-plus-focal'}`"),
               Difference(2, "focusing parameter gamma",
                          "a hyper-parameter; pemscl's default is 1, the released default",
                          "`--gamma_pos 1.0` (default, not changed by the released scripts)",
                          "`params={'gamma': g}`, g >= 0"),
               Difference(3, "batch reduction",
                          "not stated; pemscl sums over pairs like its other baselines",
                          "L1 and L2 each averaged over pairs",
                          "`reduction='mean'`"),
           )),
)


def measured(tables: Mapping | None) -> dict[str, dict]:
    """Faithfulness rows by label: test F1 change against the paper default in the same setting."""
    rows = (tables or {}).get("faithfulness") or []
    return {r["label"]: r for r in rows}


def effect(d: Difference, measured_rows: Mapping[str, Mapping]) -> str:
    """The measured-effect cell: one row's Δ test F1, or each row named when a difference has
    several options; "not run" for a row without a measurement, "no option" without a row."""
    def one(label: str) -> str:
        x = (measured_rows.get(label) or {}).get("delta_test_f1")
        return "not run" if x is None else f"{pts(x, digits=1)} F1"

    if not d.rows:
        return "no option"
    if len(d.rows) == 1:
        return one(d.rows[0])
    return "; ".join(f"{label}: {one(label)}" for label in d.rows)


def render(tables: Mapping | None = None, source: str = "results/results.json") -> str:
    rows = measured(tables)
    profile = (tables or {}).get("profile", "–")
    lines = [
        "# Paper vs released code",
        "",
        "<!-- generated by pemscl.faithfulness.write_doc from the latest results; do not edit by hand -->",
        "",
        "pemscl implements the paper (Guo, Kok, Bing, EACL 2023) by default. The authors' released code",
        "(guojiapub/PEMSCL, built on ATLOP) differs from the paper in the points below; each one that",
        "changes results is a named option, so a run can follow either and the difference can be measured.",
        "Options are fields of `pemscl.losses.LossSpec` (set as `loss_spec('pemscl', field=...)`, or",
        "`--loss-field` on the command line) or of `pemscl.config.TrainConfig`.",
        "",
        f"Measured effect: test F1 change against the paper default in the same setting (profile `{profile}`,",
        "the fast path, one seed: exploratory, read it next to the seed spread in the results). Gold-label",
        "options are compared on redocred-mini with PEMSCL; sampling options on oog-mini with PEMSCL+NS.",
        "",
        "| # | topic | paper (default) | released code | option | measured effect |",
        "|---|---|---|---|---|---|",
    ]
    for d in DIFFERENCES:
        lines.append(row_md([d.number, d.topic, d.paper, d.released, d.option, effect(d, rows)]))
    lines += ["", f"Numbers from `{source}`; regenerate with the results (07_results).", ""]
    for m in METHODS:
        lines += render_method(m)
    return "\n".join(lines)


def render_method(m: Method) -> list[str]:
    """One section per further method of the loss registry: its differences, paper by default."""
    lines = [f"## {m.title}: loss `{m.kind}`", "",
             f"Paper: {m.paper}. Released code: {m.code}. `loss_spec('{m.kind}')` follows the paper; each "
             "released-code behaviour is a param of the loss. Not measured.", "",
             f"Decision rule: {m.decision}.", "",
             "| # | topic | paper (default) | released code | option |",
             "|---|---|---|---|---|"]
    for d in m.differences:
        lines.append(row_md([d.number, d.topic, d.paper, d.released, d.option]))
    return lines + [""]


def doc_path() -> Path:
    """docs/FAITHFULNESS.md beside the README (both move with $PEMSCL_README, as in the tests)."""
    return readme_path().parent / "docs" / "FAITHFULNESS.md"


def write_doc(tables: Mapping | None = None, path: str | Path | None = None) -> Path:
    """Write docs/FAITHFULNESS.md (or `path`) with the measured effects of `tables`."""
    path = Path(path) if path is not None else doc_path()
    atomic_write_text(path, render(tables))
    return path


def options(rows: Sequence[Difference] = DIFFERENCES) -> list[str]:
    return [d.option for d in rows]
