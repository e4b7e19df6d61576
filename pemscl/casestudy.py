"""Case study: one entity pair, two models, every relation's logit against NA (paper Fig. 3).

ATLOP-style models predict relation r for a pair when its logit beats the pair's own NA
logit, so the interesting quantity is the margin f_r - f_NA, per model:

    study = casestudy.CaseStudy(run_atl, run_pemscl, docs, names=("ATL", "PEMSCL"))
    view = study.pair_view(doc_index, h, t)      # text, logits, gold, predictions
    casestudy.logit_figure(view)                  # bars per relation, dashed NA line
    casestudy.browser(run_atl, run_pemscl, docs)  # document → pair dropdowns (ipywidgets)
    casestudy.static_example(run_atl, run_pemscl, docs)  # a fixed example, no widgets

Runs may be `runs.Run`s, run folders, exported folders (pemscl.export), or DocREModel instances.
Each document's logits are computed once per model and cached in the CaseStudy.
`experiments.headline_configs(profile)` picks the two runs of the headline table to compare (ATL
and PEMSCL, by loss kind).
"""

from __future__ import annotations

import html as _html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import data as D
from . import export
from . import runs as RS
from . import train as T
from .embeddings import model_rel2id, relation_labels
from .embeddings import split_docs  # noqa: F401  (part of this API: the documents a run was scored on, notebook 06)
from .model import decide
from .train import predict

HEAD_COLOR = "#fdae6b"  # orange
TAIL_COLOR = "#9ecae1"  # blue
EVIDENCE_COLOR = "#fff7bc"
RUN_COLORS = ("#636efa", "#ef553b")
NO_SPACE_BEFORE = {",", ".", ";", ":", "!", "?", ")", "]", "'s", "'ll", "'re", "'ve", "'d", "'m", "%", "''", "n't"}
NO_SPACE_AFTER = {"(", "[", "``", "$"}


# --------------------------------------------------------------------------- text
def _mention_spans(doc: dict, h: int, t: int) -> dict[int, list[tuple[int, int, str]]]:
    """Per sentence, (start, end, role) of every head and tail mention, non-overlapping."""
    spans: dict[int, list[tuple[int, int, str]]] = {}
    for role, e in (("head", h), ("tail", t)):
        for m in doc["vertexSet"][e]:
            a, b = m["pos"]
            spans.setdefault(int(m["sent_id"]), []).append((int(a), int(b), role))
    for s, lst in spans.items():
        lst.sort()
        kept, end = [], -1
        for a, b, role in lst:
            if a >= end:  # nested or crossing mentions of the two entities: keep the first
                kept.append((a, b, role))
                end = b
        spans[s] = kept
    return spans


def _join(tokens: list[str]) -> str:
    out = ""
    for i, tok in enumerate(tokens):
        bare = _strip_tags(tok)
        prev = _strip_tags(tokens[i - 1]) if i else ""
        if i and bare not in NO_SPACE_BEFORE and prev not in NO_SPACE_AFTER:
            out += " "
        out += tok
    return out


def _strip_tags(s: str) -> str:
    # tokens may be wrapped in <mark ...> by highlight(); spacing looks at the word itself
    while s.startswith("<"):
        s = s[s.index(">") + 1:]
    while s.endswith(">") and "<" in s:
        s = s[: s.rindex("<")]
    return _html.unescape(s)


def highlight(doc: dict, h: int, t: int, evidence: Sequence[int] = ()) -> str:
    """The document as HTML with every mention of entity h (head) and t (tail) marked.

    Marks are <mark data-role="head|tail"> spans in two colours; sentences are kept as
    numbered spans, and `evidence` sentences get a light background.
    """
    spans = _mention_spans(doc, h, t)
    colors = {"head": HEAD_COLOR, "tail": TAIL_COLOR}
    parts = []
    for s, sent in enumerate(doc["sents"]):
        toks = [_html.escape(w, quote=False) for w in sent]
        for a, b, role in reversed(spans.get(s, [])):
            if a >= len(toks):
                continue
            b = min(b, len(toks))
            inner = _join(toks[a:b])
            toks[a:b] = [f'<mark data-role="{role}" style="background:{colors[role]};padding:0 2px">{inner}</mark>']
        style = f' style="background:{EVIDENCE_COLOR}"' if s in set(evidence) else ""
        parts.append(f'<span class="sent" data-sent="{s}"{style}><sup style="color:#999">{s}</sup>'
                     f"{_join(toks)}</span>")
    head = _html.escape(doc["vertexSet"][h][0]["name"])
    tail = _html.escape(doc["vertexSet"][t][0]["name"])
    legend = (f'<div><b>{_html.escape(doc.get("title", ""))}</b> &nbsp; '
              f'<span style="background:{HEAD_COLOR};padding:0 4px">head: {head}</span> '
              f'<span style="background:{TAIL_COLOR};padding:0 4px">tail: {tail}</span></div>')
    return f'<div class="pemscl-doc" style="line-height:1.7">{legend}<p>{" ".join(parts)}</p></div>'


# --------------------------------------------------------------------------- models
@dataclass
class _Side:
    model: object
    name: str
    top_k: int | None
    threshold: float | None  # None: the learned NA threshold; else the BCE probability threshold
    regime: str | None = None  # the run's regime (its relation set), when known


_MODELS: dict[str, _Side] = {}


def _side(run) -> _Side:
    """A model with how it decides; trained runs are loaded once per process."""
    if isinstance(run, torch.nn.Module):
        return _Side(run, "model", None, getattr(run, "threshold", None))
    exported = not isinstance(run, RS.Run) and export.is_export(run)  # a folder, not a run: no Run.load
    if not exported:
        run = run if isinstance(run, RS.Run) else RS.Run.load(run)
    folder = Path(run if exported else run.dir)
    key = str(folder.resolve())
    if key not in _MODELS:
        model, cfg = T.load(run)
        _MODELS[key] = _Side(model, cfg.label or folder.name, cfg.top_k, getattr(model, "threshold", None),
                             cfg.regime)
    return _MODELS[key]


def _relation_names(rel2id=None) -> dict[int, str]:
    return relation_labels(rel2id)


def _sides_rel2id(sides: Sequence[_Side]) -> dict[str, int]:
    """The relation set both models were trained with: their runs' regime, else DocRED's."""
    # the relation set load attached (the run's or export's rel2id.json) needs no data folder
    sets = {s.regime: getattr(s.model, "rel2id", None) or D.regime_rel2id(s.regime) for s in sides
            if s.regime is not None}
    if len({tuple(sorted(r.items())) for r in sets.values()}) > 1:
        raise ValueError(f"the two runs have different relation sets (regimes {sorted(sets)})")
    rel2id = next(iter(sets.values()), None)
    for s in sides:
        rel2id = model_rel2id(s.model, rel2id)  # a bare model must fit it too
    return rel2id


# --------------------------------------------------------------------------- the study
class CaseStudy:
    """Two models on the same documents, with per-document logits cached for both."""

    def __init__(self, run_a, run_b, docs: Sequence[dict], names: Sequence[str] | None = None,
                 rel2id: dict[str, int] | None = None):
        self.sides = [_side(run_a), _side(run_b)]
        self.names = list(names) if names else [s.name for s in self.sides]
        if self.names[0] == self.names[1]:
            self.names = [f"{self.names[0]} (A)", f"{self.names[1]} (B)"]
        self.docs = list(docs)
        # the runs' own relation set (their regime's), so a CDR model reads its columns as Na, CID
        self.rel2id = dict(rel2id) if rel2id is not None else _sides_rel2id(self.sides)
        self.rel_names = _relation_names(self.rel2id)
        self._cache: dict[int, dict] = {}

    # -- per document -------------------------------------------------------
    def doc(self, i: int) -> dict:
        """Pairs, gold and both models' logits and decisions for document i (cached)."""
        if i in self._cache:
            return self._cache[i]
        d = self.docs[i]
        logits, decisions, hts = [], [], None
        for s in self.sides:
            _, out, feats = predict(s.model, [d], return_logits=True, precision="fp32", rel2id=self.rel2id)
            lg = out["logits"].float()
            logits.append(lg.numpy())
            decisions.append(decide(lg, top_k=s.top_k, threshold=s.threshold).numpy())
            pairs = [tuple(map(int, p)) for p in feats[0]["hts"]]
            assert hts is None or hts == pairs, "both models must enumerate the same pairs"
            hts = pairs
        gold: dict[tuple[int, int], set[int]] = {}
        evidence: dict[tuple[int, int], set[int]] = {}
        for lab in d.get("labels") or []:
            key = (int(lab["h"]), int(lab["t"]))
            gold.setdefault(key, set()).add(self.rel2id[lab["r"]])
            evidence.setdefault(key, set()).update(lab.get("evidence") or [])
        entry = {"hts": hts, "row": {p: j for j, p in enumerate(hts)}, "logits": logits, "decisions": decisions,
                 "gold": gold, "evidence": evidence}
        self._cache[i] = entry
        return entry

    def pairs(self, i: int) -> list[tuple[str, tuple[int, int]]]:
        """Dropdown options for document i: "head → tail [gold]"; gold pairs first, then
        pairs some model predicts a relation for, then the rest."""
        e = self.doc(i)
        vs = self.docs[i]["vertexSet"]
        opts = []
        for j, (h, t) in enumerate(e["hts"]):
            g = sorted(e["gold"].get((h, t), ()))
            predicted = any(dec[j, 1:].any() for dec in e["decisions"])
            rank = 0 if g else (1 if predicted else 2)
            tag = f" [{', '.join(self.rel_names.get(r, str(r)) for r in g)}]" if g else (" (predicted)" if predicted else "")
            label = f"{'★ ' if g else ''}{vs[h][0]['name']} → {vs[t][0]['name']}{tag}"
            opts.append((rank, j, label, (h, t)))
        opts.sort(key=lambda o: (o[0], o[1]))
        return [(label, ht) for _, _, label, ht in opts]

    def pair_view(self, i: int, h: int, t: int) -> dict:
        """Everything the figure and the text need for pair (h, t) of document i."""
        e = self.doc(i)
        d = self.docs[i]
        j = e["row"][(h, t)]
        gold = sorted(e["gold"].get((h, t), ()))
        runs = []
        for name, side, lg, dec in zip(self.names, self.sides, e["logits"], e["decisions"]):
            row = lg[j]
            thr = float(row[0]) if side.threshold is None else math.log(side.threshold / (1 - side.threshold))
            pred = [int(r) for r in np.flatnonzero(dec[j, 1:]) + 1]
            runs.append({"name": name, "logits": row, "na": float(row[0]), "threshold": thr, "pred": pred,
                         "correct": set(pred) == set(gold)})
        return {"doc_index": i, "title": d.get("title", ""), "h": h, "t": t,
                "head": d["vertexSet"][h][0]["name"], "tail": d["vertexSet"][t][0]["name"],
                "html": highlight(d, h, t, sorted(e["evidence"].get((h, t), ()))),
                "gold": gold, "runs": runs, "names": self.rel_names}

    # -- choosing an example -------------------------------------------------
    def find_example(self, max_docs: int | None = 20) -> tuple[int, int, int]:
        """An informative pair: one model finds a gold relation the other misses (as in the
        paper's second example); else any disagreement; else the first gold pair."""
        best, best_tier = None, 9
        for i in range(min(len(self.docs), max_docs or len(self.docs))):
            e = self.doc(i)
            for j, (h, t) in enumerate(e["hts"]):
                gold = e["gold"].get((h, t), set())
                hits = [bool(gold & set((np.flatnonzero(dec[j, 1:]) + 1).tolist())) for dec in e["decisions"]]
                differ = not np.array_equal(e["decisions"][0][j], e["decisions"][1][j])
                tier = 0 if gold and hits[0] != hits[1] else 1 if differ else 2 if gold else 3
                if tier < best_tier:
                    best, best_tier = (i, h, t), tier
            if best_tier == 0:
                break
        if best is None:
            raise ValueError("no documents with entity pairs")
        return best


# --------------------------------------------------------------------------- figure
def _rel_label(view: dict, r: int) -> str:
    return str(view["names"].get(r, r))


def _pred_text(view: dict, run: dict, n: int = 3) -> str:
    if len(run["pred"]) > n:  # an untrained or degenerate model may predict dozens
        return f"{len(run['pred'])} relations"
    return ", ".join(_rel_label(view, r) for r in run["pred"]) or "NA"


def shown_relations(view: dict, top: int = 8) -> list[int]:
    """The relations on the x axis: each model's top `top` by logit and every gold relation,
    ordered by the larger of the two logits. (A model's predictions are its top logits, so
    they are shown unless it predicts more than `top`: then the title counts them.)"""
    keep = set(view["gold"])
    for run in view["runs"]:
        order = np.argsort(-run["logits"][1:])[:top] + 1
        keep.update(int(r) for r in order)
    best = {r: max(float(run["logits"][r]) for run in view["runs"]) for r in keep}
    return sorted(keep, key=lambda r: -best[r])


def logit_figure(view: dict, top: int = 8, height: int = 420):
    """Per-relation logits of both models side by side, with each model's NA threshold as
    a dashed line: a bar above the line is predicted. Gold relations are hatched and
    starred; predicted relations are drawn in the model's colour, the rest in grey."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rels = shown_relations(view, top)
    x = [_rel_label(view, r) for r in rels]
    gold = set(view["gold"])
    titles = []
    for run in view["runs"]:
        titles.append(f"{run['name']}: predicts {_pred_text(view, run)}")
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=titles, horizontal_spacing=0.04)
    for c, (run, color) in enumerate(zip(view["runs"], RUN_COLORS), start=1):
        y = [float(run["logits"][r]) for r in rels]
        pred = set(run["pred"])
        fig.add_trace(go.Bar(
            x=x, y=y, name=run["name"], showlegend=False,
            marker=dict(color=[color if r in pred else "#c7c7c7" for r in rels],
                        pattern=dict(shape=["/" if r in gold else "" for r in rels], fgcolor="#333")),
            customdata=[[r in gold, r in pred, v - run["threshold"]] for r, v in zip(rels, y)],
            hovertemplate="%{x}<br>logit %{y:.2f}<br>margin to NA %{customdata[2]:+.2f}"
                          "<br>gold %{customdata[0]} · predicted %{customdata[1]}<extra></extra>",
        ), row=1, col=c)
        gx = [lab for lab, r in zip(x, rels) if r in gold]
        gy = [max(v, 0.0) for v, r in zip(y, rels) if r in gold]
        fig.add_trace(go.Scatter(x=gx, y=gy, mode="markers", name="gold", showlegend=c == 1,
                                 marker=dict(symbol="star", size=14, color="gold", line=dict(color="black", width=1)),
                                 hoverinfo="skip"), row=1, col=c)
        label = "NA logit" if abs(run["threshold"] - run["na"]) < 1e-9 else "BCE threshold"
        fig.add_hline(y=run["threshold"], line_dash="dash", line_color="black", row=1, col=c,
                      annotation_text=f"{label} {run['threshold']:.2f}", annotation_position="top right")
    gold_txt = ", ".join(_rel_label(view, r) for r in view["gold"]) or "NA"
    fig.update_layout(title=f"{view['head']} → {view['tail']} &nbsp; <sup>gold: {gold_txt} · hatched/★ = gold, "
                            "coloured = predicted, dashed = NA threshold</sup>",
                      height=height, bargap=0.25, margin=dict(t=90, b=120))
    fig.update_xaxes(tickangle=-35)
    fig.update_yaxes(title_text="logit", row=1, col=1)
    return fig


def summary_html(view: dict) -> str:
    """A small table: gold, each model's prediction and its margin over NA on the gold relations."""
    gold = view["gold"]
    rows = []
    for run in view["runs"]:
        pred = _pred_text(view, run, n=5)
        margins = ", ".join(f"{_rel_label(view, r)} {run['logits'][r] - run['threshold']:+.2f}" for r in gold) or "–"
        mark = "✓" if run["correct"] else "✗"
        rows.append(f"<tr><td>{_html.escape(run['name'])}</td><td>{_html.escape(pred)}</td>"
                    f"<td>{margins}</td><td>{mark}</td></tr>")
    gold_txt = ", ".join(_rel_label(view, r) for r in gold) or "NA"
    return ("<table><tr><th>model</th><th>predicted</th><th>gold logit − NA</th><th>exact</th></tr>"
            + "".join(rows) + f"</table><div>gold: {_html.escape(gold_txt)}</div>")


# --------------------------------------------------------------------------- which runs
# --------------------------------------------------------------------------- module-level entry points
def pair_view(run_a, run_b, docs, doc_index: int, h: int, t: int, names=None) -> dict:
    return CaseStudy(run_a, run_b, docs, names).pair_view(doc_index, h, t)


def static_example(run_a, run_b=None, docs=None, names=None, max_docs: int | None = 20, top: int = 8,
                   example: tuple[int, int, int] | None = None) -> dict:
    """A fixed, informative example without widgets (for papermill / static exports).

    Accepts (run_a, run_b, docs) or a CaseStudy as the first argument. Returns the pair's
    view, an HTML block (summary table + highlighted text) and the logit figure.
    """
    study = run_a if isinstance(run_a, CaseStudy) else CaseStudy(run_a, run_b, docs, names)
    i, h, t = example or study.find_example(max_docs)
    view = study.pair_view(i, h, t)
    return {"view": view, "html": summary_html(view) + view["html"], "figure": logit_figure(view, top)}


class Browser:
    """Document dropdown → pair dropdown → highlighted text, summary and logit figure."""

    def __init__(self, study: CaseStudy, top: int = 8):
        import ipywidgets as W

        self.study, self.top = study, top
        docs = study.docs
        n_gold = [len({(l["h"], l["t"]) for l in (d.get("labels") or [])}) for d in docs]
        self.doc_dd = W.Dropdown(options=[(f"{i}: {d.get('title', '')} ({g} gold pairs)", i)
                                          for i, (d, g) in enumerate(zip(docs, n_gold))],
                                 description="document", layout=W.Layout(width="90%"))
        self.pair_dd = W.Dropdown(description="pair", layout=W.Layout(width="90%"))
        self.summary = W.HTML()
        self.text = W.HTML()
        self.out = W.Output()
        self.view: dict | None = None
        self.figure = None
        self.doc_dd.observe(self.on_doc, names="value")
        self.pair_dd.observe(self.on_pair, names="value")
        self.widget = W.VBox([self.doc_dd, self.pair_dd, self.summary, self.out, self.text])
        self.on_doc({"new": self.doc_dd.value})

    def on_doc(self, change) -> None:
        i = change["new"]
        if i is None:
            return
        opts = self.study.pairs(i)
        self.pair_dd.options = opts
        if not opts:
            return
        # ipywidgets 8 may keep the old value (a pair (h, t) exists in many documents) or
        # leave None, firing nothing: select the first pair, and render by hand if unchanged
        if self.pair_dd.value == opts[0][1]:
            self.on_pair({"new": opts[0][1]})
        else:
            self.pair_dd.value = opts[0][1]

    def on_pair(self, change) -> None:
        ht = change["new"]
        if ht is None or self.doc_dd.value is None:
            return
        self.view = self.study.pair_view(self.doc_dd.value, *ht)
        self.figure = logit_figure(self.view, self.top)
        self.summary.value = summary_html(self.view)
        self.text.value = self.view["html"]
        self.out.clear_output(wait=True)
        if _in_kernel():
            from IPython.display import display

            with self.out:
                display(self.figure)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def headless() -> bool:
    """True when a notebook runs with no one at it: under pemscl.pipeline (which sets
    PEMSCL_HEADLESS=1 for its kernels) or papermill (its injected "# Parameters" cell is in
    the kernel's input history). Widgets are pointless there, and nbclient can stall on
    widget output (seen here about once in five smoke runs), so notebooks skip the browser.
    PEMSCL_HEADLESS=0 forces the widgets on."""
    import os

    forced = os.environ.get("PEMSCL_HEADLESS", "").strip().lower()
    if forced:
        return forced not in ("0", "false", "no")
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    ip = get_ipython()
    if ip is None:
        return True
    return any(str(src).lstrip().startswith("# Parameters") for src in ip.user_ns.get("In", []))


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def browser(run_a, run_b=None, docs=None, names=None, top: int = 8) -> Browser:
    """The interactive browser; display it (it is the last expression of a cell)."""
    study = run_a if isinstance(run_a, CaseStudy) else CaseStudy(run_a, run_b, docs, names)
    return Browser(study, top)
