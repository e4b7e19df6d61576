"""The interactive notebooks as a user meets them: JupyterLab in headless Chromium.

05 (pair embeddings) and 06 (case study) are opened in a throw-away JupyterLab server, run
with Run > Run All Cells, and their selectors are clicked: 06's document and pair dropdowns
(ipywidgets) must redraw the logit figure and the highlighted text for the new choice, 05's
relation-group menu (a plotly dropdown) must change which traces the figure shows.

Only the runs 05/06 need are trained (the smoke configs they pick), into a temporary runs
folder that the server's kernels see through PEMSCL_RUNS, as figures/results go through
PEMSCL_FIGURES/PEMSCL_RESULTS. The notebooks are run from copies whose parameters cell says
profile = "smoke"; the kernels' PEMSCL_EXECUTED points the summaries at the temporary
executed/ folder, and PEMSCL_HEADLESS is unset as for a user (the pipeline sets it, and
pemscl.casestudy.headless() then hides the widgets).
Screenshots (before/after) land beside the summaries in that executed/ folder, and also in
$PEMSCL_BROWSER_SHOTS when set (e.g. for CI artifacts).

Needs Debian's chromium (/usr/bin/chromium, or $PEMSCL_CHROMIUM) and the playwright package;
skipped without them, failed instead when PEMSCL_REQUIRE_BROWSER=1 (CI). Deselect with
`-m "not browser"`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

import jupyterlab_driver as D

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
CASE, EMBED = "06_case_study", "05_embeddings"
RUN_ALL_TIMEOUT = 300  # seconds for Run All Cells (kernel start, torch import, models, embeddings)
WIDGET_TIMEOUT = 60  # seconds for a widget round trip (browser -> kernel -> browser)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def chromium_available():
    reason = D.missing_browser()
    if reason:
        msg = f"{reason}: the browser test needs `{D.INSTALL_HINT}`"
        if D.browser_required():
            pytest.fail(f"PEMSCL_REQUIRE_BROWSER=1 but {msg}")
        pytest.skip(msg)


@pytest.fixture(scope="module")
def smoke_env(tmp_path_factory, chromium_available):
    """A temporary runs/figures/results tree holding the smoke runs 05 and 06 pick, trained
    through the package API (seconds), not by running the notebook sequence."""
    root = tmp_path_factory.mktemp("browser")
    readme = root / "README.md"
    shutil.copyfile(REPO / "README.md", readme)
    env = {"PEMSCL_RUNS": root / "runs", "PEMSCL_FIGURES": root / "figures", "PEMSCL_RESULTS": root / "results",
           "PEMSCL_README": readme}
    env = {k: str(v) for k, v in env.items()}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        from pemscl import experiments, runner

        runner.run_all([*experiments.headline_configs("smoke"), *experiments.scl_configs("smoke")], progress=False)
    return {"root": root, "executed": root / "executed", "env": env}


@pytest.fixture(scope="module")
def lab(smoke_env):
    """JupyterLab serving copies of 05 and 06 (profile smoke, the project's kernel)."""
    from pemscl import pipeline

    root, executed = smoke_env["root"], smoke_env["executed"]
    kernel = pipeline.ensure_kernel()
    for stem in (CASE, EMBED):
        D.prepare_notebook(D.read_source(NOTEBOOKS, stem), root / "lab" / f"{stem}.ipynb", {"profile": "smoke"}, kernel)
    env = {**smoke_env["env"], "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PEMSCL_EXECUTED": str(executed),
           "PYTHONPATH": os.pathsep.join([str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    server = D.LabServer(root / "lab", root / "lab-state", env, unset=("PEMSCL_HEADLESS", "PEMSCL_PROFILE"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=D.CHROMIUM, args=D.CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def shots(smoke_env):
    """Screenshot paths beside the executed notebooks' summaries; copied to $PEMSCL_BROWSER_SHOTS too."""
    taken: list[Path] = []

    def path(name: str) -> Path:
        smoke_env["executed"].mkdir(parents=True, exist_ok=True)
        p = smoke_env["executed"] / f"{name}.png"
        taken.append(p)
        return p

    yield path
    extra = os.environ.get("PEMSCL_BROWSER_SHOTS")
    D.copy_outputs([p for p in taken if p.exists()], Path(extra) if extra else None)


def test_notebook_copy_sets_parameters_and_kernel(tmp_path):
    """The copies the browser runs: only the named parameter line changes, the other parameter
    lines and cells stay as they are."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    params = new_code_cell('profile = "cpu"  # smoke | cpu\ninteractive = True', metadata={"tags": ["parameters"]})
    nb = new_notebook(cells=[new_markdown_cell("# t"), params, new_code_cell("from x import write_summary"),
                             new_code_cell("write_summary('t', {}, profile)")],
                      metadata={"jupytext": {"formats": "ipynb,py:percent"}, "kernelspec": {"name": "python3", "display_name": "Python 3"}})
    out = D.prepare_notebook(nb, tmp_path / "t.ipynb", {"profile": "smoke"}, "pemscl")
    got = nbformat.read(out, as_version=4)
    assert [c.source for c in got.cells] == [
        "# t", "profile = 'smoke'  # set by tests/test_browser.py\ninteractive = True",
        "from x import write_summary", "write_summary('t', {}, profile)"]
    assert got.metadata.kernelspec.name == "pemscl" and "jupytext" not in got.metadata
    with pytest.raises(ValueError, match="no `epochs = ...` line"):
        D.prepare_notebook(nb, tmp_path / "u.ipynb", {"epochs": 1}, "pemscl")


# --------------------------------------------------------------------------- page helpers
def _fail(page, shot: Path, msg: str):
    page.screenshot(path=str(shot))
    pytest.fail(f"{msg}\nscreenshot: {shot}", pytrace=False)


def _wait_or_fail(page, locator, shot: Path, msg: str):
    try:
        locator.wait_for(timeout=WIDGET_TIMEOUT * 1000)
    except Exception:
        _fail(page, shot, msg)


def _open_and_run_all(page, lab, stem: str, shot):
    """Open the notebook, wait for its kernel, Run > Run All Cells, wait until every code cell
    has run (or fail at the first traceback). Returns the notebook's panel (a Locator)."""
    page.goto(f"{lab.base}/lab/tree/{stem}.ipynb?reset")  # reset: no tabs restored from an earlier page
    failed = shot(f"{stem}_failed")
    try:
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
        # the panel of the current tab: every query below stays inside this notebook
        tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text=stem).first
        panel = page.locator(f'.jp-NotebookPanel[id="{tab.get_attribute("data-id", timeout=10_000)}"]')
        panel.locator(".jp-Cell").first.wait_for(timeout=10_000)
    except Exception as e:  # playwright's TimeoutError: say what did not come up
        _fail(page, failed, f"{stem}: the notebook did not open in JupyterLab ({e}); "
                            f"server log {lab.log}:\n{lab.log_tail()}")
    _wait_kernel_ready(page, lab, f"{stem}.ipynb", failed)
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item", has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))).click()
    started = time.time()
    deadline = started + RUN_ALL_TIMEOUT
    prompts: list[str] = []
    while time.time() < deadline:
        state = panel.evaluate(_RUN_STATE)
        prompts = state["prompts"]
        if state["error"]:
            _fail(page, failed, f"{stem}: a cell raised under Run All:\n{state['error']}")
        if prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts) and state["idle"]:
            return panel
        if time.time() > started + 60 and all(p == "[ ]:" for p in prompts):
            _fail(page, failed, f"{stem}: Run > Run All Cells started no cell within 60s")
        page.wait_for_timeout(1000)
    _fail(page, failed, f"{stem}: Run All Cells not finished after {RUN_ALL_TIMEOUT}s; prompts {prompts}")


def _wait_kernel_ready(page, lab, path: str, failed: Path, timeout: float = 120) -> None:
    """Until the notebook's kernel is started, connected to this page and idle. The toolbar's
    indicator alone says "idle" before any kernel exists ("No Kernel | Initializing"), and a
    Run All sent then runs nothing; so the server's session list and the status bar must agree."""
    deadline = time.time() + timeout
    status = ""
    while time.time() < deadline:
        dialog = page.locator(".jp-Dialog")
        if dialog.count():  # e.g. "Select Kernel": take the preselected one (the notebook's), as a user would
            dialog.locator(".jp-mod-accept").first.click()
        with urllib.request.urlopen(f"{lab.base}/api/sessions", timeout=10) as r:
            kernels = [s["kernel"] for s in json.load(r) if s["path"] == path]
        status = page.evaluate(_KERNEL_STATUS)
        if kernels and kernels[0]["connections"] > 0 and status.endswith("| Idle") and not status.startswith("No Kernel"):
            return
        page.wait_for_timeout(250)
    _fail(page, failed, f"{path}: its kernel was not ready after {timeout:.0f}s (status bar {status!r}); "
                        f"server log {lab.log}:\n{lab.log_tail()}")


# the status bar's kernel item: "<kernel display name> | <Idle|Busy|Initializing|...>"
_KERNEL_STATUS = """() => {
  const t = Array.from(document.querySelectorAll('.jp-StatusBar-TextItem')).map(e => e.textContent.trim());
  return t.find(x => / \\| [A-Z][a-z]+$/.test(x)) || '';
}"""

_RUN_STATE = """(panel) => {
  const prompts = Array.from(panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')).map(e => e.textContent.trim());
  const outs = Array.from(panel.querySelectorAll('.jp-OutputArea-output'));
  const err = outs.map(e => e.textContent).find(t => t.includes('Traceback (most recent call last)'));
  const k = Array.from(document.querySelectorAll('.jp-StatusBar-TextItem')).map(e => e.textContent.trim());
  return {prompts, error: err ? err.slice(-1500) : null, idle: k.some(x => x.endsWith('| Idle'))};
}"""


def _shutdown_kernels(lab) -> None:
    """Free the kernel's memory (torch + models) before the next notebook starts its own."""
    try:
        with urllib.request.urlopen(f"{lab.base}/api/sessions", timeout=10) as r:
            sessions = json.load(r)
        for s in sessions:
            req = urllib.request.Request(f"{lab.base}/api/sessions/{s['id']}", method="DELETE")
            urllib.request.urlopen(req, timeout=30).close()
    except OSError:  # the server is gone: stopping it at teardown ends its kernels anyway
        pass


# --------------------------------------------------------------------------- 06: the case-study browser
# The browser widget: a VBox holding the "document" and "pair" dropdowns (their descriptions in
# pemscl.casestudy.Browser), a summary table, an Output with the plotly figure and the text.
_CASE_STATE = """(box) => {
  const nbsp = t => t.replace(/\\u00a0/g, ' ');  // ipywidgets renders option labels with no-break spaces
  const plot = box.querySelector('.js-plotly-plot');
  const dd = Array.from(box.querySelectorAll('.widget-dropdown')).map(w => {
    const s = w.querySelector('select');
    return {label: w.querySelector('label').textContent.trim(), value: s.value,
            text: s.selectedIndex >= 0 ? nbsp(s.options[s.selectedIndex].textContent) : null, n: s.options.length};
  });
  const html = Array.from(box.querySelectorAll('.widget-html .widget-html-content')).map(e => e.innerHTML);
  const doc = box.querySelector('.pemscl-doc');
  return {
    dropdowns: Object.fromEntries(dd.map(d => [d.label, d])),
    title: plot && plot.layout && plot.layout.title ? plot.layout.title.text : null,
    y: plot && plot.data ? plot.data.map(t => Array.from(t.y || [])) : null,
    html: html.join('\\n'),
    doc_title: doc ? (doc.querySelector('b') || {}).textContent : null,
    legend: doc ? doc.querySelector('div').textContent : null,
    marks: doc ? Array.from(doc.querySelectorAll('mark')).map(m => m.dataset.role) : [],
  };
}"""


def _case_state(box) -> dict:
    return box.evaluate(_CASE_STATE)


def _pair_of(title: str | None) -> str:
    """'head → tail' from the logit figure's title ('head → tail &nbsp; <sup>gold: ...')."""
    return (title or "").split(" &nbsp;")[0]


def _view_problem(state: dict) -> str | None:
    """Why the figure and the text do not show the pair selected in the dropdowns (None: they do)."""
    if not state["title"] or not state["y"] or not state["legend"]:
        return "no logit figure or no highlighted text"
    pair_label = state["dropdowns"]["pair"]["text"] or ""
    doc_label = state["dropdowns"]["document"]["text"] or ""
    pair = _pair_of(state["title"])
    if " → " not in pair or not pair_label.removeprefix("★ ").startswith(pair):
        return f"the figure shows {pair!r}, the pair dropdown says {pair_label!r}"
    head, tail = pair.split(" → ", 1)
    if f"head: {head}" not in state["legend"] or f"tail: {tail}" not in state["legend"]:
        return f"the highlighted text is for {state['legend']!r}, not {pair!r}"
    if not {"head", "tail"} <= set(state["marks"]):
        return "head and tail mentions are not highlighted"
    # the document dropdown reads "<i>: <title> (<n> gold pairs)"
    if doc_label.split(": ", 1)[-1].rsplit(" (", 1)[0] != state["doc_title"]:
        return f"the text is document {state['doc_title']!r}, the dropdown says {doc_label!r}"
    return None


def _wait_view(page, box, before: dict | None, shot: Path, what: str) -> dict:
    """Wait until the figure and the text differ from `before` (if given) and agree with the
    dropdowns (one kernel round trip; the widget updates the summary, the text and the figure
    in turn)."""
    deadline = time.time() + WIDGET_TIMEOUT
    problem = "nothing changed"
    while time.time() < deadline:
        now = _case_state(box)
        changed = before is None or (now["title"] != before["title"] and now["html"] != before["html"]
                                     and now["y"] != before["y"])
        problem = _view_problem(now) if changed else "the figure or the text still shows the previous choice"
        if problem is None:
            return now
        page.wait_for_timeout(250)
    _fail(page, shot, f"{what}: after {WIDGET_TIMEOUT}s {problem} (figure title {now['title']!r})")


def _pick_other(box, description: str) -> str:
    """Select the next option of the dropdown labelled `description`; returns its label."""
    select = box.locator(".widget-dropdown", has=box.page.locator("label", has_text=description)).locator("select")
    n, current = select.evaluate("s => [s.options.length, s.selectedIndex]")
    assert n >= 2, f"the {description} dropdown has {n} option(s): nothing else to pick"
    target = (current + 1) % n
    select.select_option(index=target)
    return select.evaluate("(s, i) => s.options[i].textContent", target).replace("\xa0", " ")


def test_case_study_widgets_follow_document_and_pair(lab, browser, shots, smoke_env):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    try:
        panel = _open_and_run_all(page, lab, CASE, shots)
        assert (smoke_env["executed"] / f"{CASE}.json").exists(), "06 ran to its end but wrote no summary"
        box = panel.locator(".widget-vbox", has=page.locator(".widget-dropdown")).first
        _wait_or_fail(page, box.locator(".js-plotly-plot"), shots(f"{CASE}_failed"),
                      "06: the case-study browser (dropdowns + figure) did not render")
        box.scroll_into_view_if_needed()
        before = _wait_view(page, box, None, shots(f"{CASE}_failed"), "06, the first view")
        page.wait_for_timeout(500)  # let plotly finish its first draw before the screenshot
        box.screenshot(path=str(shots(f"{CASE}_browser_before")))

        picked = _pick_other(box, "document")
        doc_changed = _wait_view(page, box, before, shots(f"{CASE}_failed"), f"picking document {picked!r}")
        assert doc_changed["dropdowns"]["document"]["text"] == picked
        assert doc_changed["doc_title"] != before["doc_title"]
        page.wait_for_timeout(500)
        box.screenshot(path=str(shots(f"{CASE}_browser_document")))

        picked = _pick_other(box, "pair")
        pair_changed = _wait_view(page, box, doc_changed, shots(f"{CASE}_failed"), f"picking pair {picked!r}")
        assert pair_changed["dropdowns"]["pair"]["text"] == picked
        assert pair_changed["doc_title"] == doc_changed["doc_title"]  # same document, another pair
        page.wait_for_timeout(500)
        box.screenshot(path=str(shots(f"{CASE}_browser_after")))
    finally:
        page.close()
        _shutdown_kernels(lab)


# --------------------------------------------------------------------------- 05: the relation-group menu
_EMBED_STATE = """(plot) => ({
  visible: plot.data.map(t => t.visible === undefined ? true : t.visible),
  buttons: ((plot.layout.updatemenus || [])[0] || {buttons: []}).buttons.map(b => ({label: b.label, visible: b.args[0].visible})),
  legend: plot.querySelectorAll('.legend .traces').length,
})"""


def test_embedding_relation_menu_changes_the_figure(lab, browser, shots, smoke_env):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    try:
        panel = _open_and_run_all(page, lab, EMBED, shots)
        assert (smoke_env["executed"] / f"{EMBED}.json").exists(), "05 ran to its end but wrote no summary"
        plot = panel.locator(".js-plotly-plot", has=page.locator(".updatemenu-container")).first
        _wait_or_fail(page, plot, shots(f"{EMBED}_failed"), "05: no embedding figure with a relation menu rendered")
        plot.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        before = plot.evaluate(_EMBED_STATE)
        assert all(v is True for v in before["visible"]) and before["legend"] == len(before["visible"]) // 2
        # a group that hides something: the figure must change when it is picked
        target = next((b for b in before["buttons"][1:] if not all(b["visible"])), None)
        assert target is not None, f"05: no relation group hides any trace: {[b['label'] for b in before['buttons']]}"
        plot.screenshot(path=str(shots(f"{EMBED}_menu_before")))

        plot.locator(".updatemenu-header-group").click()
        plot.locator(".updatemenu-dropdown-button", has_text=re.compile("^" + re.escape(target["label"]) + "$")).click()
        deadline = time.time() + WIDGET_TIMEOUT
        after = before
        while time.time() < deadline and after["visible"] == before["visible"]:
            page.wait_for_timeout(250)
            after = plot.evaluate(_EMBED_STATE)
        if after["visible"] != target["visible"]:
            _fail(page, shots(f"{EMBED}_failed"), f"05: picking {target['label']!r} in the relation menu left the "
                                                  f"figure's trace visibility at {after['visible']}")
        # hidden traces leave the legend (one entry per relation, from the left panel)
        assert after["legend"] == sum(after["visible"]) // 2 < before["legend"]
        page.wait_for_timeout(500)
        plot.screenshot(path=str(shots(f"{EMBED}_menu_after")))
    finally:
        page.close()
        _shutdown_kernels(lab)
