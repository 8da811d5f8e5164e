"""The presentation notebooks as a researcher meets them: JupyterLab on localhost in a window 1600
px wide, each notebook opened in headless Chromium, its outputs cleared, all cells run and saved;
no cell may end in an error or write to stderr, every figure must be a loaded image, every table
a table as wide as the notebook at most, the paper's figure readable where it is shown (its
smallest text at least `READABLE_PX` CSS pixels), and the epsilon explorer's slider must redraw
its figure, which a saved and reopened notebook shows again without its kernel's widget. Then git
sees no change: the notebooks saved as they are committed, the results rebuilt byte for byte.

Runs on a fresh clone of the repository set up by ./reproduce.sh (`repository.set_up_clone`: the
notebook filter, aoi's Jupyter server extension). Screenshots of each notebook, and of the paper's
figure whole (``03_figure.ipynb-figure.png``), are left in the test's temporary folder, whose path
the test prints. Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them;
skipped when they are absent) and selenium. About three minutes on 2 cores; alone:
``python -m pytest -s tests/test_browser.py``.
"""

import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from repository import environment, fresh_copy, git, set_up_clone

from aoi.plots import THEME

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (  # the machine's network is closed and CI runs as root
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1100",
)
READABLE_PX = 11  # the smallest text of a figure, in CSS pixels as shown (browsers' minimum font size is 6 to 12)
NOTEBOOKS = {  # notebook -> (images at least, tables at least)
    "03_figure.ipynb": (2, 2),
    "04_tables.ipynb": (0, 3),
    "05_stf.ipynb": (1, 1),
    "06_explorer.ipynb": (1, 0),
}
PANEL = "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
READY = PANEL + "return !!(w && w.context && w.context.path === arguments[0] && w.sessionContext.session"
READY += " && w.sessionContext.session.kernel && w.sessionContext.session.kernel.status === 'idle');"
FINISHED = (
    PANEL
    + """
const cells = w.content.model.cells;
for (let i = 0; i < cells.length; i++) {
  const cell = cells.get(i);
  if (cell.type === 'code' && cell.executionCount === null) return false;
}
return w.sessionContext.session.kernel.status === 'idle';
"""
)
OUTPUTS = (
    PANEL
    + """
const found = [];
const cells = w.content.model.cells;
for (let i = 0; i < cells.length; i++) {
  const cell = cells.get(i);
  if (cell.type === 'code') found.push(...cell.outputs.toJSON());
}
return JSON.stringify(found);
"""
)
RENDERED = (
    PANEL
    + """
const images = [...w.node.querySelectorAll('.jp-OutputArea-output img')];
return [images.length, images.filter(i => i.complete && i.naturalWidth > 0).length,
        w.node.querySelectorAll('.jp-OutputArea-output table').length];
"""
)
EXPLORER_IMAGE = PANEL + "const i = w.node.querySelector('.widget-output img'); return i ? i.src : null;"
FIRST_IMAGE = (  # the first figure of the notebook: its natural width (PNG pixels) and its width as shown (CSS px)
    PANEL
    + """
const i = w.node.querySelector('.jp-OutputArea-output img');
i.scrollIntoView();
const box = i.getBoundingClientRect();
return [i.naturalWidth, box.width, box.height];
"""
)
TABLES_FIT = (  # each table's width and the width of the output area that shows it
    PANEL
    + """
return [...w.node.querySelectorAll('.jp-OutputArea-output table')].map(
  t => [t.getBoundingClientRect().width, t.closest('.jp-OutputArea-output').clientWidth]);
"""
)
SAVE = """
const done = arguments[arguments.length - 1];
window.jupyterapp.commands.execute('docmanager:save').then(() => done(true), e => done(String(e)));
"""
WIDGET_ERRORS = PANEL + "return [...w.node.querySelectorAll('.jupyter-widgets')].map(e => e.textContent);"

pytestmark = pytest.mark.skipif(
    not (CHROMEDRIVER.exists() and shutil.which("chromium")),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait(condition, timeout: float, what: str):
    """Poll ``condition`` until it returns something true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a fresh clone of the repository set up by ./reproduce.sh: yields (base
    url, token, the clone)."""
    repo = fresh_copy(tmp_path / "repo")
    config = set_up_clone(repo)
    port, token = free_port(), secrets.token_hex(16)
    private = tmp_path / "jupyter"  # nothing read from or left in the user's Jupyter folders
    env = {
        **environment(repo),
        "JUPYTER_CONFIG_DIR": str(private / "config"),
        "JUPYTER_CONFIG_PATH": str(config),  # the clone's .venv: aoi's server extension, as ./reproduce.sh set it up
        "JUPYTER_RUNTIME_DIR": str(private / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(private / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(private / "workspaces"),
    }
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}"]
    command += [f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={repo}", "--allow-root"]
    command += ["--LabApp.expose_app_in_browser=True"]
    command += ["--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = open(tmp_path / "jupyterlab.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(command, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    try:
        wait(up, 90, "JupyterLab to start")
        yield base, token, repo
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def open_notebook(driver, base: str, token: str, name: str) -> None:
    """Open notebooks/``name`` and wait for its kernel to be idle."""
    path = f"notebooks/{name}"
    driver.get(f"{base}/lab/tree/{path}?token={token}")
    wait(lambda: driver.execute_script(READY, path), 120, f"{name} to open with an idle kernel")


def run_all(driver, base: str, token: str, name: str) -> list[dict]:
    """Open notebooks/``name``, clear its outputs, run all cells, save; return every output (nbformat JSON)."""
    open_notebook(driver, base, token, name)
    driver.execute_script("return window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs');")
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
    wait(lambda: driver.execute_script(FINISHED), 300, f"{name} to run all cells")
    assert driver.execute_async_script(SAVE) is True, f"{name} not saved"
    return json.loads(driver.execute_script(OUTPUTS))


def check_the_figure_is_readable(driver, shots) -> None:
    """The paper's figure (03's first image): its smallest text, in points at the inline figure's
    dpi, at least `READABLE_PX` CSS pixels as shown; a screenshot of the whole figure into ``shots``."""
    natural, shown, height = driver.execute_script(FIRST_IMAGE)
    smallest_pt = min(THEME[key] for key in ("legend.fontsize", "xtick.labelsize", "ytick.labelsize", "axes.titlesize"))
    smallest_px = smallest_pt * THEME["figure.dpi"] / 72 * shown / natural
    driver.set_window_size(1600, int(height) + 400)  # the whole figure in view, at the same width
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, ".jp-OutputArea-output img").screenshot(
        str(shots / "03_figure.ipynb-figure.png")
    )
    driver.set_window_size(1600, 1100)
    print(f"03_figure: the figure {natural} px wide shown {shown:.0f} px wide, its smallest text {smallest_px:.1f} px")
    assert smallest_px >= READABLE_PX, (natural, shown, smallest_px)


def test_the_presentation_notebooks_run_in_jupyterlab_without_errors(lab, browser, tmp_path):
    base, token, repo = lab
    print(f"screenshots in {tmp_path}")
    for name, (images, tables) in NOTEBOOKS.items():
        outputs = run_all(browser, base, token, name)
        browser.save_screenshot(str(tmp_path / f"{name}.png"))
        errors = [o for o in outputs if o["output_type"] == "error" or o.get("name") == "stderr"]
        assert errors == [], f"{name}: {errors}"
        loaded_all = lambda least=images: (r := browser.execute_script(RENDERED))[1] >= least and r  # noqa: E731
        shown, loaded, found = wait(loaded_all, 30, f"the figures of {name} to load")
        assert shown == loaded and loaded >= images and found >= tables, (name, shown, loaded, found)
        assert [w for w in browser.execute_script(TABLES_FIT) if w[0] > w[1] + 1] == [], f"{name}: a table too wide"
        if name == "03_figure.ipynb":
            check_the_figure_is_readable(browser, tmp_path)
    before = wait(lambda: browser.execute_script(EXPLORER_IMAGE), 30, "the explorer's figure")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle").send_keys(Keys.ARROW_RIGHT)
    wait(lambda: browser.execute_script(EXPLORER_IMAGE) not in (None, before), 30, "the explorer to redraw")
    # reopened with a new kernel, the saved explorer shows its static figure, not a widget no kernel serves
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=10) as answer:
        sessions = json.load(answer)
    for session in sessions:
        request = urllib.request.Request(f"{base}/api/sessions/{session['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()
    open_notebook(browser, base, token, "06_explorer.ipynb")
    wait(lambda: browser.execute_script(RENDERED)[1] >= 1, 30, "the reopened explorer's static figure")
    assert browser.execute_script(WIDGET_ERRORS) == []
    browser.save_screenshot(str(tmp_path / "06_explorer.ipynb-reopened.png"))
    assert git(repo, "status", "--porcelain") == ""  # saved as committed; the results rebuilt byte for byte
