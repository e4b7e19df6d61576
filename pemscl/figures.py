"""Plotly figures for the notebooks, and one way to save them (HTML always, PNG when possible).

    from pemscl import figures as F
    fig = F.long_tail(counts, groups)
    F.save_figure(fig, "relation_long_tail")   # figures/relation_long_tail.{html,png}

PNG export goes through kaleido 1.x, which drives a Chrome/Chromium it finds on the machine
(PATH, $BROWSER_PATH, or one fetched with `plotly_get_chrome`). Without one the HTML is still
written and PNG is skipped with a single message, unless PEMSCL_REQUIRE_PNG=1 (CI), where a
missing PNG is an error rather than a silent gap in the report.
"""

from __future__ import annotations

import atexit
import os
import shutil
import warnings
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .utils import figures_dir  # noqa: F401 (where figures go; re-exported for the notebooks)


# one colour per role, so the same model has the same colour in every figure
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
           "#CCB974", "#64B5CD"]
GROUP_COLOURS = {"head": "#4C72B0", "mid": "#DD8452", "tail": "#C44E52"}
TEMPLATE = "plotly_white"

_png_warned = False
_server_started = False


class PNGExportError(RuntimeError):
    """PNG export was required (PEMSCL_REQUIRE_PNG=1) but could not be done."""


# --------------------------------------------------------------------------- saving


def png_required() -> bool:
    return os.environ.get("PEMSCL_REQUIRE_PNG", "") not in ("", "0", "false", "False")


def find_chrome() -> str | None:
    """Path of a Chrome/Chromium kaleido can drive, or None.

    Order: $BROWSER_PATH (choreographer's own override), kaleido's downloaded Chrome, then the
    usual names on PATH (Debian's package is `chromium`).
    """
    env = os.environ.get("BROWSER_PATH")
    if env and os.access(env, os.X_OK):
        return env
    try:  # choreographer knows its own download folder and the typical install paths
        from choreographer.browsers.chromium import Chromium

        path = Chromium.find_browser(skip_local=False)
        if path and os.path.exists(path):
            return str(path)
    except Exception:  # pragma: no cover - best effort; fall back to PATH below
        pass
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _no_png(reason: str) -> None:
    global _png_warned
    msg = (f"PNG export skipped ({reason}). HTML figures are still written. To get PNGs install a "
           "Chrome/Chromium (Debian/Ubuntu: `apt-get install chromium`; or `plotly_get_chrome`) "
           "or point BROWSER_PATH at one.")
    if png_required():
        raise PNGExportError(msg.replace("PNG export skipped", "PNG export failed") +
                             " PEMSCL_REQUIRE_PNG=1 makes this an error.")
    if not _png_warned:
        print(msg)
        _png_warned = True


def _start_server() -> None:
    """Keep one headless Chrome for the whole process: about 0.1 s per PNG instead of 2-3 s."""
    global _server_started
    if _server_started:
        return
    _server_started = True  # once, even if it fails: write_image then starts a browser per call
    try:
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)
        atexit.register(kaleido.stop_sync_server, silence_warnings=True)
    except Exception:  # pragma: no cover - older kaleido or a browser that will not stay up
        pass


def save_figure(fig: go.Figure, name: str, folder: str | Path | None = None, *, width: int = 900,
                height: int | None = None, scale: float = 2.0) -> dict:
    """Write `<folder>/<name>.html` (self-contained) and `<name>.png`; returns their paths.

    The HTML inlines plotly.js (about 4 MB) so it opens offline and in CI artefacts; the PNG is
    for the README and papers. Returns {"html": Path, "png": Path | None}.
    """
    folder = Path(folder) if folder is not None else figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / f"{name}.html"
    fig.write_html(html, include_plotlyjs=True, full_html=True)
    out = {"html": html, "png": None}
    chrome = find_chrome()
    if chrome is None:
        _no_png("no Chrome/Chromium found")
        return out
    # kaleido (choreographer) reads BROWSER_PATH first; set it so the browser found here is used
    os.environ.setdefault("BROWSER_PATH", chrome)
    png = folder / f"{name}.png"
    h = height or fig.layout.height or 500
    w = fig.layout.width or width
    try:
        _start_server()
        with warnings.catch_warnings():
            # plotly passes kaleido options a running server ignores; harmless
            warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            fig.write_image(png, format="png", width=w, height=h, scale=scale)
    except Exception as e:  # kaleido raises several types (browser start, timeouts)
        _no_png(f"{type(e).__name__}: {e}")
        return out
    out["png"] = png
    return out


# --------------------------------------------------------------------------- helpers
def _layout(fig: go.Figure, title: str | None, **kw) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=title, margin=dict(l=60, r=20, t=60 if title else 30, b=60),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0), **kw)
    return fig


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _unique(xs: Iterable) -> list:
    seen, out = set(), []
    for x in xs:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def _group_of(groups) -> dict:
    """{relation: group} from either {group: [relations]} or {relation: group}."""
    if not groups:
        return {}
    if all(isinstance(v, (list, tuple, set)) for v in groups.values()):
        return {r: g for g, rels in groups.items() for r in rels}
    return dict(groups)


# --------------------------------------------------------------------------- data figures
def long_tail(counts: Mapping[str, int], groups: Mapping[str, str] | None = None, *,
              names: Mapping[str, str] | None = None, title: str | None = "Relation frequency (train)",
              log_y: bool = True) -> go.Figure:
    """Facts per relation, most frequent first, coloured by head/mid/tail group.

    `groups` is pemscl.evaluate.relation_groups' {"head": [...], "mid": [...], "tail": [...]} or a
    {relation: group} map; the cut points are marked so the reader sees how few relations hold
    most facts.
    """
    rels = sorted(counts, key=lambda r: -counts[r])
    groups = _group_of(groups)
    names = names or {}
    fig = go.Figure()
    for g in ("head", "mid", "tail", None):
        sel = [r for r in rels if groups.get(r) == g]
        if not sel:
            continue
        fig.add_bar(x=[names.get(r, r) for r in sel], y=[counts[r] for r in sel], name=g or "other",
                    marker_color=GROUP_COLOURS.get(g, "#8C8C8C"),
                    hovertext=[f"{r}: {counts[r]}" for r in sel])
    # boundaries between groups, drawn where the group changes along the sorted axis
    labels = [names.get(r, r) for r in rels]
    for i in range(1, len(rels)):
        if groups.get(rels[i]) != groups.get(rels[i - 1]):
            fig.add_vline(x=i - 0.5, line_dash="dash", line_color="#444")
    fig.update_xaxes(categoryorder="array", categoryarray=labels, tickangle=-60, tickfont=dict(size=8))
    fig.update_yaxes(type="log" if log_y else "linear", title="facts")
    return _layout(fig, title, bargap=0.1, height=500)


def label_comparison(rows: Sequence[Mapping], *, x: str = "relation", original: str = "original",
                     gold: str = "gold", both: str | None = "both", top: int | None = 30,
                     title: str | None = "Original vs gold labels per relation") -> go.Figure:
    """Facts per relation in the original and gold labels of the same documents."""
    rows = sorted(rows, key=lambda r: -r.get(gold, 0))[:top] if top else list(rows)
    fig = go.Figure()
    keys = [(original, "original (DocRED)", colour(1)), (gold, "gold (Re-DocRED)", colour(0))]
    if both and rows and both in rows[0]:
        keys.append((both, "in both", colour(2)))
    for k, name, c in keys:
        fig.add_bar(x=[r[x] for r in rows], y=[r.get(k, 0) for r in rows], name=name, marker_color=c)
    fig.update_xaxes(tickangle=-60, tickfont=dict(size=9))
    fig.update_yaxes(title="facts")
    return _layout(fig, title, barmode="group", height=480)


def stacked_counts(rows: Sequence[Mapping], *, x: str, parts: Sequence[str], title: str | None = None,
                   y_title: str = "count") -> go.Figure:
    """A stacked bar per row (e.g. facts per split broken down by regime)."""
    fig = go.Figure()
    for i, p in enumerate(parts):
        fig.add_bar(x=[r[x] for r in rows], y=[r.get(p, 0) for r in rows], name=p, marker_color=colour(i))
    fig.update_yaxes(title=y_title)
    return _layout(fig, title, barmode="stack")


# --------------------------------------------------------------------------- training figures
def learning_curves(histories: Mapping[str, Sequence[Mapping]] | Sequence[Mapping], *,
                    loss_key: str = "train_loss", metrics: Sequence[str] = ("dev_f1",),
                    title: str | None = "Learning curves") -> go.Figure:
    """Training loss (left) and dev metrics (right) per epoch, one colour per run.

    `histories` is a Run.history list, or {name: history} to compare runs.
    """
    if not isinstance(histories, Mapping):
        histories = {"run": histories}
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", " / ".join(metrics)))
    for i, (name, hist) in enumerate(histories.items()):
        ep = [h["epoch"] for h in hist]
        fig.add_scatter(x=ep, y=[h.get(loss_key) for h in hist], mode="lines+markers", name=name,
                        line=dict(color=colour(i)), legendgroup=name, row=1, col=1)
        for j, m in enumerate(metrics):
            fig.add_scatter(x=ep, y=[h.get(m) for h in hist], mode="lines+markers",
                            name=f"{name} {m}" if len(metrics) > 1 else name,
                            line=dict(color=colour(i), dash=["solid", "dash", "dot", "dashdot"][j % 4]),
                            legendgroup=name, showlegend=len(metrics) > 1, row=1, col=2)
    fig.update_xaxes(title="epoch", dtick=1)
    return _layout(fig, title, height=420)


def convergence_grid(curves: Sequence[Mapping], *, cols: int = 3,
                     title: str | None = "Selection dev F1 per epoch, every run of each row<br><sup>star: best "
                     "epoch; dashed: cut short by the budget; dotted: min_epochs; thin dotted: gold dev beside original dev</sup>") -> go.Figure:
    """One panel per row kind (experiment, label, regime) with one line per seed: where each
    run peaked (star) and whether it converged (solid) or was cut short by its budget (dashed);
    the dotted line is min_epochs, before which early stopping may not end a run. A run with a
    second selection dev set (gold dev, trained on original labels) has it drawn thin and dotted
    in its colour: the curve its gold-test claims stand on. `curves` are
    tables.convergence_curves' rows (F1 as fractions, drawn in %)."""
    kinds: dict[tuple, list[Mapping]] = {}
    for c in curves:
        kinds.setdefault((c["experiment"], c["label"], c["regime"]), []).append(c)
    names = [f"{lab}<br>{reg}: {sum(c['converged'] is True for c in cs)}/{len(cs)} converged" + _on_gold_dev(cs)
             for (_, lab, reg), cs in kinds.items()]
    rows = max(1, -(-len(kinds) // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names or None, shared_xaxes=True,
                        vertical_spacing=min(0.12, 0.5 / rows), horizontal_spacing=0.06)
    seeds = sorted({c["seed"] for c in curves})
    shown: set[int] = set()  # one legend entry per seed
    for k, cs in enumerate(kinds.values()):
        row, col = divmod(k, cols)
        for c in sorted(cs, key=lambda c: c["seed"]):
            i = seeds.index(c["seed"])
            name = f"seed {c['seed']}"
            fig.add_scatter(x=c["epoch"], y=[100 * v for v in c["dev_f1"]], mode="lines", name=name,
                            legendgroup=name, showlegend=c["seed"] not in shown,
                            line=dict(color=colour(i), width=1.5, dash="solid" if c["converged"] is not False else "dash"),
                            row=row + 1, col=col + 1)
            shown.add(c["seed"])
            if c.get("other_dev_f1") and any(v is not None for v in c["other_dev_f1"]):
                fig.add_scatter(x=c["epoch"], y=[None if v is None else 100 * v for v in c["other_dev_f1"]],
                                mode="lines", line=dict(color=colour(i), width=1, dash="dot"), opacity=0.6,
                                showlegend=False, legendgroup=name, hovertext=f"{name}: gold dev",
                                row=row + 1, col=col + 1)
            b = c.get("best_epoch")
            if b in c["epoch"]:
                fig.add_scatter(x=[b], y=[100 * c["dev_f1"][c["epoch"].index(b)]], mode="markers",
                                marker=dict(symbol="star", size=9, color=colour(i)), showlegend=False,
                                legendgroup=name, hovertext=f"{name}: best epoch {b}", row=row + 1, col=col + 1)
        m = cs[0].get("min_epochs")
        if m:
            fig.add_vline(x=m, line_dash="dot", line_color="#888", row=row + 1, col=col + 1)
    fig.update_xaxes(dtick=3)
    fig.update_yaxes(ticksuffix="%")
    fig.update_annotations(font_size=11)
    fig = _layout(fig, title, height=max(320, 250 * rows + 100))
    return fig.update_layout(legend=dict(orientation="h", x=1, xanchor="right", y=1.0 + 60 / (250 * rows),
                                         yanchor="bottom"), margin=dict(t=130))


def _on_gold_dev(curves: Sequence[Mapping]) -> str:
    """A panel title's count of runs converged on their second dev set (gold dev), if they have one."""
    other = [c.get("other_converged") for c in curves if c.get("other_dev_f1")]
    return f" ({sum(x is True for x in other)}/{len(other)} on gold dev)" if other else ""


def grouped_bars(rows: Sequence[Mapping], *, x: str = "label", metrics: Sequence[str] = ("f1",),
                 error: str | None = "{}_std", names: Mapping[str, str] | None = None,
                 title: str | None = None, y_title: str = "F1 (%)", scale: float = 100.0,
                 reference: Mapping[str, float] | None = None) -> go.Figure:
    """One group per metric (e.g. overall/head/mid/tail F1), one bar per row (model).

    `error` formats the std column for a metric ("{}_std" -> "f1_std"); rows from
    tables.summarise carry those. Values are multiplied by `scale` (fractions -> %).
    `reference` draws a dotted horizontal line per name (e.g. a published number).
    """
    names = names or {}
    fig = go.Figure()
    for i, r in enumerate(rows):
        ys = [None if r.get(m) is None else r[m] * scale for m in metrics]
        err = None
        if error:
            e = [r.get(error.format(m)) for m in metrics]
            if any(v is not None for v in e):
                err = dict(type="data", array=[(v or 0.0) * scale for v in e], visible=True)
        fig.add_bar(x=[names.get(m, m) for m in metrics], y=ys, name=str(r[x]), marker_color=colour(i),
                    error_y=err, hovertext=[f"n={r.get('n', 1)}"] * len(metrics))
    for k, v in (reference or {}).items():
        fig.add_hline(y=v, line_dash="dot", annotation_text=k, annotation_position="top left")
    fig.update_yaxes(title=y_title)
    return _layout(fig, title, barmode="group")


def noisy_bars(rows: Sequence[Mapping], *, regime: str = "regime", model: str = "label",
               metric: str = "test_f1", error: str | None = "test_f1_std", title: str | None =
               "Training on original labels: gold test F1", scale: float = 100.0) -> go.Figure:
    """Paper Table 4 as bars: groups are regimes (OOG, OGG), bars are models."""
    regimes = _unique(r[regime] for r in rows)
    models = _unique(r[model] for r in rows)
    fig = go.Figure()
    for i, m in enumerate(models):
        by = {r[regime]: r for r in rows if r[model] == m}
        ys = [by[g][metric] * scale if g in by and by[g].get(metric) is not None else None for g in regimes]
        err = None
        if error:
            err = dict(type="data", visible=True,
                       array=[(by[g].get(error) or 0.0) * scale if g in by else 0.0 for g in regimes])
        fig.add_bar(x=regimes, y=ys, name=m, marker_color=colour(i), error_y=err)
    fig.update_yaxes(title="gold test F1 (%)")
    return _layout(fig, title, barmode="group")


def ratio_sweep(rows: Sequence[Mapping], *, x: str = "ratio", model: str = "model",
                dev: str = "dev_f1", test: str = "test_f1", log_x: bool = True,
                title: str | None = "Negative sampling ratio: what original dev says vs gold test",
                scale: float = 100.0) -> go.Figure:
    """Paper Figure 2: per model two lines over the sampling ratio, original dev F1 (dashed)
    and gold test F1 (solid). Where the dashed line peaks is the ratio one would pick with
    original labels; where the solid one peaks is the ratio that is actually best."""
    fig = go.Figure()
    for i, m in enumerate(_unique(r[model] for r in rows)):
        pts = sorted((r for r in rows if r[model] == m), key=lambda r: r[x])
        xs = [r[x] for r in pts]
        for key, dash, what in ((dev, "dash", "original dev"), (test, "solid", "gold test")):
            ys = [None if r.get(key) is None else r[key] * scale for r in pts]
            err = None
            if any(r.get(f"{key}_std") is not None for r in pts):
                err = dict(type="data", visible=True, array=[(r.get(f"{key}_std") or 0) * scale for r in pts])
            fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=f"{m}: {what}",
                            line=dict(color=colour(i), dash=dash), error_y=err)
    ratios = sorted({r[x] for r in rows})
    # ticks at the swept ratios only: a log axis otherwise labels 2, 3, ... 9 between decades
    fig.update_xaxes(title="negative sampling ratio", type="log" if log_x else "linear",
                     tickvals=ratios, ticktext=[f"{v:g}" for v in ratios])
    fig.update_yaxes(title="F1 (%)")
    return _layout(fig, title)


def cost_bars(rows: Sequence[Mapping], *, x: str = "label", y: str = "seconds",
              title: str | None = "Training cost per run", y_title: str = "seconds") -> go.Figure:
    """Seconds (or memory) per run, sorted, so the expensive rows stand out. One bar per row:
    plotly stacks bars that share an x category, so a repeated name gets a count ("(2)")."""
    rows = sorted(rows, key=lambda r: -(r.get(y) or 0))
    seen: dict[str, int] = {}
    names = []
    for r in rows:
        name = str(r[x])
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    fig = go.Figure(go.Bar(x=names, y=[r.get(y) for r in rows], marker_color=colour(0)))
    fig.update_yaxes(title=y_title)
    fig.update_xaxes(tickangle=-45)
    return _layout(fig, title)


def paired_bars(rows: Sequence[Mapping], *, x: str = "label", ours: str = "ours", paper: str = "paper",
                title: str | None = "This workbench vs the paper", y_title: str = "F1 (%)") -> go.Figure:
    """Our number beside the published one per row (both already in %)."""
    fig = go.Figure()
    fig.add_bar(x=[r[x] for r in rows], y=[r.get(ours) for r in rows], name="this workbench", marker_color=colour(0))
    fig.add_bar(x=[r[x] for r in rows], y=[r.get(paper) for r in rows], name="paper (RoBERTa-large)",
                marker_color="#BBBBBB")
    fig.update_yaxes(title=y_title)
    return _layout(fig, title, barmode="group")


VERDICT_COLOURS = {"holds": "#55A868", "contradicted": "#C44E52", "not resolved": "#DD8452",
                   "not measurable here": "#8C8C8C"}


def forest_plot(rows: Sequence[Mapping], *, title: str | None = "Claims: our difference (95% CI) vs the paper's",
                x_title: str = "A − B (F1 points)") -> go.Figure:
    """One line per claim: our difference with its 95% interval (coloured by verdict) and the
    paper's effect beside it (grey diamond); zero marked. Rows are claims.forest_rows' (points)."""
    rows = [{**r, "id": f"{r['id']} ({r['n_seeds']} seed{'s' if r['n_seeds'] != 1 else ''})"}
            for r in list(rows)[::-1]]  # plotly draws the first category at the bottom: keep the order top-down
    ids = [r["id"] for r in rows]
    fig = go.Figure()
    for verdict in _unique(r["verdict"] for r in rows):
        sel = [r for r in rows if r["verdict"] == verdict]
        fig.add_scatter(x=[r["diff"] for r in sel], y=[r["id"] for r in sel], mode="markers", name=f"ours: {verdict}",
                        marker=dict(color=VERDICT_COLOURS.get(verdict, colour(4)), size=10),
                        error_x=dict(type="data", symmetric=False, visible=True,
                                     array=[r["ci_high"] - r["diff"] for r in sel],
                                     arrayminus=[r["diff"] - r["ci_low"] for r in sel]),
                        hovertext=[f"{r['id']}: {r['diff']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}], "
                                   f"MDE {r['mde']:.2f}" for r in sel])
    paper = [r for r in rows if r.get("paper") is not None]
    fig.add_scatter(x=[r["paper"] for r in paper], y=[r["id"] for r in paper], mode="markers", name="paper",
                    marker=dict(symbol="diamond", color="#444444", size=9, line=dict(color="white", width=1)))
    fig.add_vline(x=0, line_dash="dot", line_color="#444")
    fig.update_yaxes(categoryorder="array", categoryarray=ids)
    fig.update_xaxes(title=x_title, zeroline=False)
    return _layout(fig, title, height=max(260, 70 * len(rows) + 120))


def leaderboard_plot(rows: Sequence[Mapping], published: Mapping | None = None, *,
                     title: str | None = "Leaderboard: test F1 (95% CI: documents and seeds) per label regime"
                     ) -> go.Figure:
    """One panel per label regime: each loss's mean test F1 (%) with its interval (the row named
    with its number of seeds), and each method's own published number as a hollow marker on the
    same axis, its encoder written beside it (full data: a level that does not compare, an
    ordering that may)."""
    regimes = _unique(r["labels"] for r in rows)
    # room between the panels for the right one's row names
    fig = make_subplots(rows=1, cols=max(1, len(regimes)), horizontal_spacing=0.2, subplot_titles=[
        f"{next(r['regime'] for r in rows if r['labels'] == g)} ({g} labels)" for g in regimes])
    for col, g in enumerate(regimes, start=1):
        sel = sorted((r for r in rows if r["labels"] == g and r["test_f1"] is not None), key=lambda r: r["test_f1"])
        name = {r["loss"]: f"{r['loss']} ({r['n_seeds']} seed{'s' if r['n_seeds'] != 1 else ''})" for r in sel}
        ys = [name[r["loss"]] for r in sel]
        fig.add_scatter(x=[100 * r["test_f1"] for r in sel], y=ys, mode="markers", row=1, col=col,
                        name="ours (MiniLM, mini regimes)", showlegend=col == 1,
                        marker=dict(color=colour(0), size=10),
                        error_x=dict(type="data", symmetric=False, visible=True,
                                     array=[100 * ((r["ci_high"] or r["test_f1"]) - r["test_f1"]) for r in sel],
                                     arrayminus=[100 * (r["test_f1"] - (r["ci_low"] or r["test_f1"])) for r in sel]),
                        hovertext=[f"{r['loss']}: {100 * r['test_f1']:.2f}, {r['n_seeds']} seeds, vs "
                                   f"{r['vs_best']['reference']}: {r['vs_best']['verdict']}" for r in sel])
        pub = [(r["loss"], (published or {}).get((g, r["loss"]))) for r in sel]
        pub = [(loss, p) for loss, p in pub if p]
        if pub:
            fig.add_scatter(x=[p["test_f1"] for _, p in pub], y=[name[loss] for loss, _ in pub], mode="markers+text",
                            row=1, col=col, name="published (full data, its own encoder)", showlegend=col == 1,
                            marker=dict(symbol="circle-open", color="#444444", size=11, line=dict(width=2)),
                            text=[p["encoder"] if len(p["encoder"]) <= 16 else "encoder not named" for _, p in pub],
                            textposition="bottom center", textfont=dict(size=10, color="#444444"), cliponaxis=False,
                            hovertext=[f"{loss}: {p['test_f1']:.2f} ({p['encoder']}; {p['source']})" for loss, p in pub])
        xs = [100 * (r["ci_low"] or r["test_f1"]) for r in sel] + [100 * (r["ci_high"] or r["test_f1"]) for r in sel]
        xs += [p["test_f1"] for _, p in pub]
        if xs:  # padded so that an encoder's name under its marker is not cut at the panel's edge
            pad = max(1.0, 0.06 * (max(xs) - min(xs)))
            fig.update_xaxes(range=[min(xs) - pad, max(xs) + 2 * pad], row=1, col=col)
        fig.update_xaxes(title="test F1 (%)", row=1, col=col)
    fig = _layout(fig, title, height=max(340, 48 * max((sum(r["labels"] == g for r in rows) for g in regimes),
                                                       default=1) + 200))
    # the legend under the panels: above them it would cover the panel titles
    return fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.16, xanchor="left", x=0),
                             margin=dict(b=110, r=60))
