"""save_figure (HTML always, PNG via kaleido + Chrome) and the plotting functions."""

import plotly.graph_objects as go
import pytest

from pemscl import figures as F


def _fig():
    return go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))


def test_save_figure_writes_self_contained_html(tmp_path):
    out = F.save_figure(_fig(), "bars", tmp_path)
    html = out["html"].read_text()
    assert out["html"] == tmp_path / "bars.html"
    # plotly.js inlined: the file opens offline, no CDN script tag
    assert 'src="https://cdn.plot.ly' not in html and "Plotly" in html and len(html) > 1_000_000


def test_figures_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PEMSCL_FIGURES", str(tmp_path / "f"))
    assert F.figures_dir() == tmp_path / "f"
    out = F.save_figure(_fig(), "x")
    assert out["html"].parent == tmp_path / "f"


def test_png_written_when_chrome_present(tmp_path):
    if F.find_chrome() is None:
        if F.png_required():
            pytest.fail("PEMSCL_REQUIRE_PNG=1 but no Chrome/Chromium found for kaleido")
        pytest.skip("no Chrome/Chromium on this machine: PNG export is skipped (apt-get install chromium)")
    out = F.save_figure(_fig(), "bars", tmp_path, width=400, height=300, scale=1)
    assert out["png"] == tmp_path / "bars.png"
    data = out["png"].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # IHDR holds width and height: the size we asked for
    assert int.from_bytes(data[16:20], "big") == 400 and int.from_bytes(data[20:24], "big") == 300


def test_no_chrome_skips_png_with_one_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(F, "find_chrome", lambda: None)
    monkeypatch.setattr(F, "_png_warned", False)
    monkeypatch.delenv("PEMSCL_REQUIRE_PNG", raising=False)
    a = F.save_figure(_fig(), "one", tmp_path)
    b = F.save_figure(_fig(), "two", tmp_path)
    assert a["png"] is None and b["png"] is None and a["html"].exists()
    printed = capsys.readouterr().out
    assert printed.count("PNG export skipped") == 1 and "chromium" in printed


def test_no_chrome_is_an_error_when_png_required(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "find_chrome", lambda: None)
    monkeypatch.setenv("PEMSCL_REQUIRE_PNG", "1")
    with pytest.raises(F.PNGExportError, match="PEMSCL_REQUIRE_PNG"):
        F.save_figure(_fig(), "x", tmp_path)
    assert (tmp_path / "x.html").exists()  # the HTML is still there


def test_long_tail_accepts_relation_groups_and_marks_cuts():
    counts = {"P1": 50, "P2": 30, "P3": 5, "P4": 1}
    fig = F.long_tail(counts, {"head": ["P1"], "mid": ["P2", "P3"], "tail": ["P4"]})
    assert [t.name for t in fig.data] == ["head", "mid", "tail"]
    assert list(fig.data[1].y) == [30, 5]
    assert len(fig.layout.shapes) == 2  # head|mid and mid|tail


def test_ratio_sweep_two_lines_per_model():
    rows = [{"model": m, "ratio": r, "dev_f1": 0.5, "test_f1": 0.4, "test_f1_std": 0.01}
            for m in ("PEMSCL", "ATL") for r in (1.0, 0.1)]
    fig = F.ratio_sweep(rows)
    assert len(fig.data) == 4
    assert list(fig.data[0].x) == [0.1, 1.0]  # sorted by ratio
    assert fig.data[0].line.dash == "dash" and fig.data[1].line.dash == "solid"
    assert fig.data[1].y[0] == pytest.approx(40.0)


def test_grouped_and_noisy_bars_scale_and_errors():
    rows = [{"label": "PEMSCL", "f1": 0.5, "f1_std": 0.02, "n": 3}, {"label": "-EM", "f1": 0.4, "f1_std": None, "n": 1}]
    fig = F.grouped_bars(rows, metrics=["f1"])
    assert [t.name for t in fig.data] == ["PEMSCL", "-EM"]
    assert fig.data[0].y[0] == pytest.approx(50.0) and fig.data[0].error_y.array[0] == pytest.approx(2.0)
    assert fig.data[1].error_y.array is None
    t4 = [{"regime": g, "label": m, "test_f1": 0.3, "test_f1_std": None} for g in ("OOG", "OGG") for m in ("ATL", "PEMSCL")]
    fig = F.noisy_bars(t4)
    assert [t.name for t in fig.data] == ["ATL", "PEMSCL"] and list(fig.data[0].x) == ["OOG", "OGG"]


def test_learning_curves_one_colour_per_run():
    hist = [{"epoch": 1, "train_loss": 2.0, "dev_f1": 0.1}, {"epoch": 2, "train_loss": 1.0, "dev_f1": 0.2}]
    fig = F.learning_curves({"a": hist, "b": hist})
    assert len(fig.data) == 4
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color


def test_cost_bars_draw_one_bar_per_run_even_when_names_repeat():
    # plotly stacks bars sharing a category: two runs named alike must not read as one 5000 s run
    rows = [{"label": "PEMSCL s66", "seconds": 2000.0}, {"label": "ATL s66", "seconds": 4000.0},
            {"label": "PEMSCL s66", "seconds": 3000.0}]
    bar = F.cost_bars(rows).data[0]
    assert list(bar.x) == ["ATL s66", "PEMSCL s66", "PEMSCL s66 (2)"]  # sorted, most expensive first
    assert list(bar.y) == [4000.0, 3000.0, 2000.0]


def test_leaderboard_plot_names_seeds_intervals_and_published_encoders():
    vs = {"reference": "pemscl", "verdict": "not resolved"}
    rows = [{"labels": "gold", "regime": "redocred-mini", "loss": "pemscl", "test_f1": 0.576, "ci_low": 0.556,
             "ci_high": 0.596, "n_seeds": 3, "vs_best": vs},
            {"labels": "gold", "regime": "redocred-mini", "loss": "afl", "test_f1": 0.58, "ci_low": 0.57,
             "ci_high": 0.59, "n_seeds": 1, "vs_best": vs},
            {"labels": "gold", "regime": "redocred-mini", "loss": "ssr-pu", "test_f1": None, "ci_low": None,
             "ci_high": None, "n_seeds": 0, "vs_best": vs},  # nothing trained yet: left out
            {"labels": "incomplete", "regime": "oog-mini", "loss": "atl", "test_f1": 0.3, "ci_low": 0.29,
             "ci_high": 0.31, "n_seeds": 2, "vs_best": vs}]
    pub = {("gold", "pemscl"): {"test_f1": 79.9, "encoder": "RoBERTa-large", "source": "Table 2"},
           ("gold", "afl"): {"test_f1": 78.35, "encoder": "not named in the stored listing", "source": "x"}}
    fig = F.leaderboard_plot(rows, pub)
    ours = [t for t in fig.data if t.name.startswith("ours")]
    assert [list(t.y) for t in ours] == [["pemscl (3 seeds)", "afl (1 seed)"], ["atl (2 seeds)"]]  # worst first
    assert list(ours[0].x) == pytest.approx([57.6, 58.0])
    assert list(ours[0].error_x.array) == pytest.approx([2.0, 1.0]) and list(ours[0].error_x.arrayminus) == pytest.approx([2.0, 1.0])
    (published,) = [t for t in fig.data if t.name.startswith("published")]
    assert list(published.y) == ["pemscl (3 seeds)", "afl (1 seed)"] and list(published.x) == [79.9, 78.35]
    assert list(published.text) == ["RoBERTa-large", "encoder not named"]
    assert fig.layout.legend.y < 0  # under the panels, not over their titles
    assert [a.text for a in fig.layout.annotations] == ["redocred-mini (gold labels)", "oog-mini (incomplete labels)"]
