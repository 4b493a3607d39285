"""The HTML report in a real browser: Debian's chromium, driven over the DevTools protocol from the standard library.

Chromium is started with ``--remote-debugging-pipe`` (DevTools messages on file descriptors 3 and 4), so the
test needs neither a driver package nor a browser download: only /usr/bin/chromium (CI installs it:
`apt-get install -y chromium`). Without it the tests fail with that instruction instead of skipping, so a missing
browser cannot pass unnoticed.

Checked: the page loads with no console error and no request beyond the file itself and its data URIs; every
inlined image decodes; hovering a heatmap cell shows the results table's value for that pair; the measure
selector and the model filter switch the figures; at 400 px no table overflows the viewport and no figure text
is smaller than 9 px.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from reprsim.report import write_report
from reprsim.results import ResultTable

CHROMIUM = Path("/usr/bin/chromium")


def require_chromium() -> Path:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} not found: the report browser test needs Debian's chromium "
            "(apt-get update && apt-get install -y chromium)"
        )
    return CHROMIUM


class Browser:
    """One headless chromium with one page, spoken to over the DevTools pipe (fd 3: commands in, fd 4: out)."""

    def __init__(self, profile: Path, width: int = 1200, height: int = 900) -> None:
        require_chromium()
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # Move the child's ends above 9 so that placing them at 3 and 4 cannot clobber one another.
        low_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        low_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        os.close(to_chrome_r)
        os.close(from_chrome_w)

        def place_pipes() -> None:
            os.dup2(low_r, 3)
            os.dup2(low_w, 4)

        command = [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            "--disable-dev-shm-usage", "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank",
        ]
        # close_fds=False keeps the two descriptors placed after the fork (pass_fds would need them to exist in
        # this process already); every other descriptor Python opens is non-inheritable anyway (PEP 446).
        self.process = subprocess.Popen(command, close_fds=False, preexec_fn=place_pipes,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(low_r)
        os.close(low_w)
        self.write_fd, self.read_fd = to_chrome_w, from_chrome_r
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.resize(width, height)

    def _read_message(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe: " + self.stderr_tail())
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 60.0) -> dict[str, Any]:
        """Send a command to the browser (or to the page's session) and wait for its answer."""
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a command to the page."""
        return self.call(method, params, session=self.session)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for the next event named `method` not yet seen."""
        seen = len(self.events)
        deadline = time.monotonic() + timeout
        for event in self.events[:seen]:
            if event["method"] == method and not event.get("_taken"):
                event["_taken"] = True
                return event
        while time.monotonic() < deadline:
            message = self._read_message(deadline - time.monotonic())
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    message["_taken"] = True
                    return message
        raise TimeoutError(f"no {method} event in {timeout} s")

    def resize(self, width: int, height: int) -> None:
        """Set the viewport size in CSS pixels."""
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def open(self, url: str) -> None:
        """Load a page and wait for its load event."""
        for event in self.events:
            if event["method"] == "Page.loadEventFired":
                event["_taken"] = True
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (promises awaited) and return its value."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def hover(self, x: float, y: float) -> None:
        """Move the mouse to viewport coordinates."""
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        """Save a PNG of the viewport (or the whole page)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", params)["data"]))
        return path

    def drain(self, seconds: float = 0.3) -> None:
        """Collect the events that arrive within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.events.append(self._read_message(max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                break

    def console_errors(self) -> list[str]:
        """Errors the page reported: uncaught exceptions, console.error calls and error log entries."""
        self.drain()
        errors = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                errors.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(params["entry"]["text"])
        return errors

    def requested_urls(self) -> list[str]:
        """Every URL the page requested."""
        self.drain()
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def stderr_tail(self) -> str:
        if self.process.poll() is None:
            return ""
        return (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")[-2000:]

    def close(self) -> None:
        """End the browser."""
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self.write_fd, self.read_fd):
            os.close(fd)
        if self.process.stderr:
            self.process.stderr.close()


MODELS = {"a1": 0, "a2": 0, "b1": 1, "b2": 1}  # two families of two models
MEASURES = [("svcca", "sym", "representation"), ("maxsim", "a->b", "representation"),
            ("attention_js", "a->b", "attention")]
WARNING = {"category": "FewRowsWarning", "message": "n=200 rows is fewer than 10 x 384 <check escaping>",
           "measure": "svcca"}


def synthetic_table() -> ResultTable:
    """Two families of two models, three layers, one measure of each kind the report draws."""
    ids = [(m, layer) for m in MODELS for layer in range(3)]
    rows = []
    for measure, direction, level in MEASURES:
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                if direction == "sym" and j < i:
                    continue
                same = MODELS[a[0]] == MODELS[b[0]]
                value = 1.0 if a == b else (0.8 if same else 0.3) - 0.1 * abs(a[1] - b[1]) + 0.02 * a[1]
                if measure == "maxsim":
                    value = value * 0.9 + 0.013 * j  # directed: differs from svcca and from its transpose
                rows.append({"model_a": a[0], "layer_a": a[1], "model_b": b[0], "layer_b": b[1],
                             "measure": measure, "direction": direction, "value": value, "level": level,
                             "n_rows": 200, "subsample": False})
    return ResultTable.from_records(rows, {"corpus_hash": "feed" * 8, "warnings": [WARNING]})


@pytest.fixture(scope="module")
def table() -> ResultTable:
    return synthetic_table()


@pytest.fixture(scope="module")
def page(table, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser")
    return write_report(table, out / "report", finetuned={"a1": ["a2"]}, progress=False)


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Browser]:
    chromium = Browser(tmp_path_factory.mktemp("profile"), 1200, 900)
    try:
        yield chromium
    finally:
        chromium.close()


def reopen(browser: Browser, page: Path, width: int = 1200, height: int = 900) -> None:
    browser.resize(width, height)
    browser.events.clear()
    browser.open(page.as_uri())
    browser.evaluate("new Promise(function (done) { setTimeout(done, 300); })")


# Centre of heatmap cell (row i, column j) of the plot div matching `selector`, in viewport coordinates.
CELL_CENTRE = """
(function (selector, i, j) {
  var div = document.querySelector(selector);
  div.scrollIntoView({block: 'center'});
  window.reprsim.render(div);
  var full = div._fullLayout, box = div.getBoundingClientRect();
  return [box.left + full.xaxis._offset + full.xaxis.l2p(j), box.top + full.yaxis._offset + full.yaxis.l2p(i)];
})(%s, %d, %d)
"""


def hover_text(browser: Browser, selector: str, i: int, j: int) -> str:
    x, y = browser.evaluate(CELL_CENTRE % (json.dumps(selector), i, j))
    browser.hover(x, y)
    return browser.evaluate("""new Promise(function (done) { setTimeout(function () {
      var label = document.querySelector('.hoverlayer .hovertext');
      done(label ? label.textContent : ''); }, 150); })""")


def heatmap_selector(measure: str) -> str:
    return f'.rs-plot[data-measure="{measure}"][data-kind="layers"]'


def test_page_loads_without_errors_or_requests_and_every_image_decodes(browser, page):
    reopen(browser, page)
    assert browser.console_errors() == []
    outside = [u for u in browser.requested_urls() if not u.startswith(("file://", "data:"))]
    assert outside == []
    html = page.read_text(encoding="utf-8")
    n_images = html.count("<img ")
    # Per measure a model and a layer dendrogram and the depth-normalised aggregate (inlined), the summary's
    # model dendrogram, localisation and one fine-tuning figure per level; the heatmaps and pair grids are
    # interactive.
    assert n_images == 3 * len(MEASURES) + 1 + 1 + 2
    decoded = browser.evaluate("Array.prototype.map.call(document.images, function (img) {"
                               " return img.complete && img.naturalWidth > 0; })")
    assert decoded == [True] * n_images
    # The warning recorded in the provenance is on the page, in svcca's section, escaped.
    section = browser.evaluate("document.getElementById('m-svcca').textContent")
    assert WARNING["message"] in section and "FewRowsWarning" in section
    assert WARNING["message"] not in browser.evaluate("document.getElementById('m-maxsim').textContent")


@pytest.mark.parametrize("measure", ["maxsim", "svcca"])
def test_hovering_a_heatmap_cell_shows_the_tables_value(browser, page, table, measure):
    reopen(browser, page)
    labels = table.matrix(measure).labels
    for i, j in [(0, 4), (5, 1), (11, 11), (7, 10)]:
        text = hover_text(browser, heatmap_selector(measure), i, j)
        a, b = labels[i], labels[j]
        expected = table.value(measure, a, b)
        shown = re.search(r"= (-?\d+\.\d+)", text)
        assert shown is not None, text
        assert float(shown.group(1)) == pytest.approx(expected, abs=5e-5), (a, b, text)
        assert f"row: {a.model} L{a.layer}" in text and f"column: {b.model} L{b.layer}" in text
    assert browser.console_errors() == []


def test_measure_selector_switches_figures_and_model_filter_redraws(browser, page, table):
    reopen(browser, page)
    browser.evaluate("var s = document.getElementById('rs-measure'); s.value = 'svcca';"
                     "s.dispatchEvent(new Event('change'))")
    shown = browser.evaluate("Array.prototype.filter.call(document.querySelectorAll('.rs-measure'),"
                             " function (s) { return s.offsetParent !== null; })"
                             ".map(function (s) { return s.getAttribute('data-measure'); })")
    assert shown == ["svcca"]
    plotted = browser.evaluate(f"document.querySelector('{heatmap_selector('svcca')}').data[0].z")
    assert np.allclose(np.array(plotted, dtype=float), table.matrix("svcca").values, atol=1e-6)
    text = hover_text(browser, heatmap_selector("svcca"), 0, 4)
    assert float(re.search(r"= (-?\d+\.\d+)", text).group(1)) == pytest.approx(
        table.value("svcca", ("a1", 0), ("a2", 1)), abs=5e-5)
    # Leaving out b2 redraws the heatmap without its layers and hides the summary's pairs with it.
    browser.evaluate("var box = document.querySelector('input[data-model=\"b2\"]'); box.checked = false;"
                     "box.dispatchEvent(new Event('change'))")
    rows = browser.evaluate(f"document.querySelector('{heatmap_selector('svcca')}').data[0].y")
    assert len(rows) == 9 and not any(r.startswith("b2 ") for r in rows)
    hidden = browser.evaluate("Array.prototype.filter.call(document.querySelectorAll('td[data-pair]'),"
                              " function (c) { return c.style.display === 'none'; }).length")
    visible = browser.evaluate("Array.prototype.filter.call(document.querySelectorAll('td[data-pair]'),"
                               " function (c) { return c.style.display !== 'none'; }).length")
    assert hidden == 3 * len(MEASURES) and visible == 3 * len(MEASURES)  # 3 of the 6 pairs include b2
    assert browser.console_errors() == []


NARROW_CHECK = """
(function () {
  var width = document.documentElement.clientWidth;
  var tables = Array.prototype.map.call(document.querySelectorAll('table'), function (t) {
    var box = (t.closest('.scroll') || t).getBoundingClientRect();
    return box.right <= width + 0.5 && box.left >= -0.5;
  });
  var texts = Array.prototype.map.call(document.querySelectorAll('.rs-plot svg text'), function (t) {
    return t.textContent.trim() ? parseFloat(getComputedStyle(t).fontSize) : 99;
  });
  var images = Array.prototype.map.call(document.images, function (img) {
    return img.getBoundingClientRect().width + 0.5 >= parseFloat(img.style.minWidth || '0');
  });
  return {scroll: document.documentElement.scrollWidth, width: width, tables: tables,
          smallest: Math.min.apply(null, texts), texts: texts.length, images: images};
})()
"""


def test_at_400_px_nothing_overflows_and_figure_text_is_readable(browser, page):
    reopen(browser, page, 400, 800)
    browser.evaluate("document.querySelectorAll('details').forEach(function (d) { d.open = true; });"
                     "document.querySelectorAll('.rs-plot').forEach(window.reprsim.render)")
    found = browser.evaluate(NARROW_CHECK)
    assert found["scroll"] <= found["width"] == 400
    assert found["tables"] and all(found["tables"])
    assert found["texts"] > 50 and found["smallest"] >= 9
    assert found["images"] and all(found["images"])  # static figures scroll rather than shrink their text
    assert browser.console_errors() == []


@pytest.mark.parametrize("width", [1200, 400])
def test_screenshot_shows_the_page(browser, page, tmp_path, width):
    reopen(browser, page, width, 1600)
    shot = browser.screenshot(tmp_path / f"shot-{width}.png")
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (1600, width)
    # A blank or failed page is one flat colour; the header, tables and figures give many distinct colours.
    distinct = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(distinct) > 300
    # The top of the page is the dark header bar.
    assert pixels[10:40, 10:300].mean() < 0.35
