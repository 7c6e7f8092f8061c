"""The real dashboard in a real browser: headless Chromium opens every page served on 127.0.0.1.

The workspace comes from a real small federation run. Chromium (Debian's ``/usr/bin/chromium``) is driven
over the DevTools protocol: navigate, wait until the page shows the run id and a drawn chart, screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.dashboard_workspace import demo_workspace

CHROMIUM = Path("/usr/bin/chromium")
DASHBOARD = Path(__file__).resolve().parents[1] / "app" / "dashboard.py"
PAGES = {  # page -> its URL path
    "overview": "",
    "run": "run",
    "parties": "parties",
    "contributions": "rewards",
    "catalog": "catalog",
    "models": "models",
}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MAIN = 'document.querySelector("[data-testid=stMain]")'
BUSY = (
    '[data-testid="stSpinner"], [data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"]'
)
DRAWN_CHART = (
    '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg, [data-testid="stGraphVizChart"] svg'
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
    ),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.25)
    raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Chromium:
    """Headless Chromium with one tab, driven over the DevTools protocol (a websocket on 127.0.0.1)."""

    def __init__(self, profile: Path) -> None:
        self.process = subprocess.Popen(
            [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        port = _wait_for(lambda: port_file.exists() and port_file.read_text().split("\n")[0], 30, "Chromium's port")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
            tab = next(t for t in json.load(response) if t["type"] == "page")
        self.socket: ClientConnection = connect(tab["webSocketDebuggerUrl"], max_size=None)
        self.last_id = 0
        self.call("Emulation.setDeviceMetricsOverride", width=1400, height=2400, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        self.socket.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        shot = self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Iterator[tuple[str, str]]:
    """The dashboard served on a free port of 127.0.0.1 over the demo workspace; yields (url, run id)."""
    root, summary = demo_workspace(tmp_path_factory)
    port = _free_port()
    log = (tmp_path_factory.mktemp("dashboard-server") / "streamlit.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(DASHBOARD),
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        env={**os.environ, "CONSORTIA_WORKSPACE": str(root)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _healthy(url), 60, "the dashboard to answer")
        yield url, summary.run_id
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.mark.parametrize("page", PAGES)
def test_page_shows_the_run_and_draws_a_chart(dashboard, browser, page, tmp_path):
    url, run_id = dashboard
    browser.call("Page.navigate", url=f"{url}/{PAGES[page]}")
    ready = (
        f"{MAIN} !== null && {MAIN}.textContent.includes({json.dumps(run_id)}) "
        f"&& document.querySelector({json.dumps(DRAWN_CHART)}) !== null "
        f"&& document.querySelector({json.dumps(BUSY)}) === null"
    )
    try:
        _wait_for(lambda: browser.evaluate(ready), 90, f"page {page} to show {run_id} and a chart")
        time.sleep(1)  # let charts finish drawing
    finally:
        shot = browser.screenshot(tmp_path / f"{page}.png")

    assert shot.stat().st_size > 10_000
    assert browser.evaluate(f"{MAIN}.textContent.includes({json.dumps(run_id)})")
    assert browser.evaluate(f"document.querySelectorAll({json.dumps(DRAWN_CHART)}).length") >= 1
    assert not browser.evaluate('document.querySelector("[data-testid=stException]")')
