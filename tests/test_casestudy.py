"""Case study: highlighted text, the logit-vs-NA figure, the browser and the static example.

Text and figure are checked on hand-made inputs; the browser and the static example run
two untrained MiniLM models (one encoder, two differently seeded heads, so they disagree)
on two real documents.
"""

import re

import numpy as np
import pytest
import torch

from pemscl import casestudy as CS

DOC = {
    "title": "Hand",
    "sents": [["Alice", "Smith", "lives", "in", "Paris", "."],
              ["In", "Paris", ",", "Smith", "met", "Bob", "."]],
    "vertexSet": [
        [{"name": "Alice Smith", "sent_id": 0, "pos": [0, 2], "type": "PER"},
         {"name": "Smith", "sent_id": 1, "pos": [3, 4], "type": "PER"}],
        [{"name": "Paris", "sent_id": 0, "pos": [4, 5], "type": "LOC"},
         {"name": "Paris", "sent_id": 1, "pos": [1, 2], "type": "LOC"}],
        [{"name": "Bob", "sent_id": 1, "pos": [5, 6], "type": "PER"}],
    ],
    "labels": [{"h": 0, "t": 1, "r": "P551", "evidence": [0]}],
}


def marks(html):
    return re.findall(r'<mark data-role="(\w+)"[^>]*>(.*?)</mark>', html)


def test_highlight_marks_exactly_the_mentions():
    html = CS.highlight(DOC, 0, 1, evidence=[0])
    assert marks(html) == [("head", "Alice Smith"), ("tail", "Paris"), ("tail", "Paris"), ("head", "Smith")]
    assert "Bob" in html and ("head", "Bob") not in marks(html) and ("tail", "Bob") not in marks(html)
    # sentences are kept, in order, and the evidence sentence is shaded
    assert html.count('class="sent"') == 2
    assert html.index('data-sent="0"') < html.index('data-sent="1"')
    assert re.search(r'data-sent="0" style="background', html) and not re.search(r'data-sent="1" style', html)
    assert "in <mark" in html and "Paris</mark>." in html  # no space before the full stop
    # the reverse pair swaps the roles
    assert marks(CS.highlight(DOC, 1, 2)) == [("head", "Paris"), ("head", "Paris"), ("tail", "Bob")]


def test_highlight_escapes_html():
    doc = {"title": "x", "sents": [["a", "<b>", "&", "c"]],
           "vertexSet": [[{"name": "<b>", "sent_id": 0, "pos": [1, 2]}], [{"name": "c", "sent_id": 0, "pos": [3, 4]}]]}
    html = CS.highlight(doc, 0, 1)
    body = html[html.index("<p>"):]
    assert "<b>" not in body and "&amp;" in body and marks(html) == [("head", "&lt;b&gt;"), ("tail", "c")]


def hand_view():
    names = {0: "NA", 1: "country", 2: "located in", 3: "capital", 4: "founded by"}
    a = np.full(97, -5.0); a[0] = 10.1; a[1] = 16.8; a[2] = 4.0; a[3] = 2.0  # predicts country
    b = np.full(97, -5.0); b[0] = 9.9; b[1] = 9.3; b[4] = 12.0  # misses country, predicts founded by
    return {"doc_index": 0, "title": "t", "h": 0, "t": 1, "head": "Lincoln Center", "tail": "U.S.",
            "html": "", "gold": [1],
            "runs": [{"name": "PEMSCL", "logits": a, "na": 10.1, "threshold": 10.1, "pred": [1], "correct": True},
                     {"name": "ATL", "logits": b, "na": 9.9, "threshold": 9.9, "pred": [4], "correct": False}],
            "names": names}


def test_logit_figure_has_na_lines_gold_and_predictions():
    view = hand_view()
    fig = CS.logit_figure(view, top=3)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 2
    assert list(bars[0].x)[0] == "country"  # ordered by the larger logit
    assert {"country", "founded by"} <= set(bars[0].x)
    # one dashed NA line per panel at that model's NA logit
    lines = sorted(round(s.y0, 3) for s in fig.layout.shapes if s.type == "line")
    assert lines == [9.9, 10.1]
    # gold is hatched and starred, predicted bars are coloured
    x = list(bars[0].x)
    ci = x.index("country")
    assert bars[0].marker.pattern.shape[ci] == "/" and bars[1].marker.pattern.shape[ci] == "/"
    stars = [t for t in fig.data if t.name == "gold"]
    assert len(stars) == 2 and list(stars[0].x) == ["country"]
    assert bars[0].marker.color[ci] != "#c7c7c7" and bars[1].marker.color[ci] == "#c7c7c7"
    fi = x.index("founded by")
    assert bars[1].marker.color[fi] != "#c7c7c7"
    html = CS.summary_html(view)
    assert "+6.70" in html and "-0.60" in html  # country margin over NA for each model


# --------------------------------------------------------------------------- real models
@pytest.fixture(scope="module")
def two_models():
    from pemscl.model import DocREModel, ModelConfig

    torch.manual_seed(0)
    a = DocREModel(ModelConfig(encoder="minilm")).eval()
    torch.manual_seed(1)
    b = DocREModel(ModelConfig(encoder="minilm"), plm=a.plm).eval()  # same encoder, another head
    return a, b


@pytest.fixture(scope="module")
def docs(data_dir):
    from pemscl import data as D

    return D.load_regime("redocred-mini").dev[:2]


@pytest.fixture(scope="module")
def study(two_models, docs):
    return CS.CaseStudy(*two_models, docs, names=("A", "B"))  # logits cached across the tests


def test_browser_updates_figure_when_pair_changes(study, docs):
    ui = CS.browser(study)
    assert ui.doc_dd.value == 0 and ui.figure is not None
    opts = ui.pair_dd.options
    assert opts[0][0].startswith("★")  # gold pairs first
    first = ui.view
    # the next distinct pair: setting the dropdown fires the observer
    ui.pair_dd.value = opts[-1][1]
    assert ui.view is not first and (ui.view["h"], ui.view["t"]) == opts[-1][1]
    h, t = opts[-1][1]
    assert ui.figure.layout.title.text.startswith(docs[0]["vertexSet"][h][0]["name"])
    # calling the observer directly does the same
    ui.on_pair({"new": opts[0][1]})
    assert (ui.view["h"], ui.view["t"]) == opts[0][1] and ui.view["gold"]
    assert ui.text.value == ui.view["html"] and "<mark" in ui.text.value
    # a new document refreshes the pair list; logits are cached per document and model
    ui.doc_dd.value = 1
    assert ui.view["doc_index"] == 1 and set(ui.study._cache) == {0, 1}


def test_static_example_returns_html_and_figure(two_models, study, docs):
    ex = CS.static_example(study)
    assert "<table>" in ex["html"] and "<mark" in ex["html"]
    assert ex["figure"].data and ex["view"]["runs"][0]["name"] == "A"
    i, h, t = ex["view"]["doc_index"], ex["view"]["h"], ex["view"]["t"]
    v = CS.pair_view(*two_models, docs, i, h, t)  # the module-level entry point agrees
    assert np.allclose(v["runs"][1]["logits"], ex["view"]["runs"][1]["logits"], atol=1e-4)
    # two differently initialised heads disagree somewhere: that is the example chosen
    a, b = ex["view"]["runs"]
    assert a["pred"] != b["pred"]


def test_headless_outside_a_kernel_and_under_the_pipeline(monkeypatch):
    monkeypatch.delenv("PEMSCL_HEADLESS", raising=False)
    assert CS.headless()  # plain Python (pytest): no kernel, no one to click
    monkeypatch.setenv("PEMSCL_HEADLESS", "1")
    assert CS.headless()
    monkeypatch.setenv("PEMSCL_HEADLESS", "0")  # forced on, even here
    assert not CS.headless()
