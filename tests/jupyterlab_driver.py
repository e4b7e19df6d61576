"""Helpers for tests/test_browser.py: notebook copies, a throw-away JupyterLab server, Chromium.

Kept out of the test module so the test reads as what a user does (open, run all, pick, look).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

CHROMIUM = os.environ.get("PEMSCL_CHROMIUM", "/usr/bin/chromium")
# headless Debian Chromium in a container without network or GPU; WebGL (plotly's scattergl)
# falls back to SwiftShader, which has to be allowed explicitly
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]
INSTALL_HINT = "apt-get install -y chromium && .venv/bin/pip install playwright"


def browser_required() -> bool:
    return os.environ.get("PEMSCL_REQUIRE_BROWSER", "") not in ("", "0", "false", "False")


def missing_browser() -> str | None:
    """Why the browser test cannot run here (None when it can)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


# --------------------------------------------------------------------------- notebook copies
def read_source(folder: Path, stem: str) -> nbformat.NotebookNode:
    """notebooks/<stem>.ipynb, or its jupytext .py twin when only that one exists."""
    ipynb, py = folder / f"{stem}.ipynb", folder / f"{stem}.py"
    if ipynb.exists():
        return nbformat.read(ipynb, as_version=4)
    import jupytext

    return jupytext.read(py)


def prepare_notebook(nb: nbformat.NotebookNode, dest: Path, parameters: dict, kernel: str) -> Path:
    """Write a copy of `nb` to `dest` as a user would run it: in the cell tagged "parameters",
    the line `name = ...` of each of `parameters` set to the given value (as a user edits it),
    and the project's kernel."""
    nb = nbformat.from_dict(nb)
    nb.metadata.pop("jupytext", None)  # no pairing: saving must never write a .py beside the copy
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": f"Python ({kernel})", "language": "python"}
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{dest.name}: expected one cell tagged 'parameters', found {len(tagged)}")
    for name, value in parameters.items():
        line = re.compile(rf"^{re.escape(name)} = .*$", re.M)
        if not line.search(tagged[0].source):
            raise ValueError(f"{dest.name}: no `{name} = ...` line in the parameters cell")
        tagged[0].source = line.sub(lambda _: f"{name} = {value!r}  # set by tests/test_browser.py", tagged[0].source)
    nbformat.validate(nb)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return dest


# --------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    """`jupyter lab` on a free local port, token-less, rooted at `root`, with `env` added to
    this process's environment (the kernels it starts inherit it)."""

    root: Path
    state: Path  # settings, workspaces and runtime files: nothing written to ~/.jupyter
    env: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()  # variables of this process the server must not pass on
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.state / "jupyterlab.log"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"

    def start(self, timeout: float = 90.0) -> "LabServer":
        self.port = self.port or free_port()
        for d in ("settings", "workspaces", "runtime"):
            (self.state / d).mkdir(parents=True, exist_ok=True)
        self._write_settings()
        env = {k: v for k, v in os.environ.items() if k not in self.unset}
        env.update(self.env, JUPYTER_RUNTIME_DIR=str(self.state / "runtime"))
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
               "--allow-root", "--IdentityProvider.token=", "--ServerApp.disable_check_xsrf=True",
               f"--ServerApp.root_dir={self.root}", "--ServerApp.open_browser=False",
               f"--LabServerApp.user_settings_dir={self.state / 'settings'}",
               f"--LabServerApp.workspaces_dir={self.state / 'workspaces'}",
               "--LabApp.news_url=", "--LabApp.extension_manager=readonly", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}; log {self.log}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/api/status", timeout=5) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"jupyter lab did not answer on {self.base} within {timeout:.0f}s; "
                           f"log {self.log}:\n{self.log_tail()}")

    def _write_settings(self) -> None:
        # every cell kept in the DOM (no windowing: off-screen outputs stay queryable), the
        # notebook's kernel started without a "Select Kernel" dialog, no "news" toast
        for plugin, values in (("notebook-extension/tracker", {"windowingMode": "none", "autoStartDefaultKernel": True}),
                               ("apputils-extension/notification", {"fetchNews": "false"})):
            f = self.state / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values))

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # SIGTERM: the server shuts its kernels down
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def copy_outputs(files, dest: Path | None) -> None:
    """Copy screenshots to an extra folder (e.g. $PEMSCL_BROWSER_SHOTS for CI artifacts)."""
    if dest is None:
        return
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, dest / Path(f).name)
