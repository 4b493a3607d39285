"""Open the HTML report in headless Chromium and check that every figure actually renders.

Needs Debian's chromium at /usr/bin/chromium (CI installs it: `apt-get install -y chromium`). Without it
the test fails with that instruction instead of skipping, so a missing browser cannot pass unnoticed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from reprsim.report import write_report
from reprsim.results import ResultTable

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]

# Injected into a copy of the page (the report itself carries no script): after load, mark each image
# with whether the browser decoded it, and count them.
CHECK_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  images.forEach(function (img) {
    img.setAttribute('data-rendered', img.complete && img.naturalWidth > 0 ? 'yes' : 'no');
  });
  document.body.setAttribute('data-image-count', String(images.length));
  document.body.setAttribute('data-check', 'done');
});
</script>
"""


def require_chromium() -> Path:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} not found: the report browser test needs Debian's chromium "
            "(apt-get update && apt-get install -y chromium)"
        )
    return CHROMIUM


def run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    command = [str(require_chromium()), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def synthetic_table() -> ResultTable:
    """Two families of two models, three layers, one measure of each kind the report draws."""
    family = {"a1": 0, "a2": 0, "b1": 1, "b2": 1}
    ids = [(m, layer) for m in family for layer in range(3)]
    rows = []
    for measure, direction, level in [
        ("svcca", "sym", "representation"),
        ("maxsim", "a->b", "representation"),
        ("attention_js", "a->b", "attention"),
    ]:
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                if direction == "sym" and j < i:
                    continue
                same = family[a[0]] == family[b[0]]
                value = 1.0 if a == b else (0.8 if same else 0.3) - 0.1 * abs(a[1] - b[1]) + 0.02 * a[1]
                rows.append(
                    {
                        "model_a": a[0],
                        "layer_a": a[1],
                        "model_b": b[0],
                        "layer_b": b[1],
                        "measure": measure,
                        "direction": direction,
                        "value": value,
                        "level": level,
                        "n_rows": 200,
                        "subsample": False,
                    }
                )
    return ResultTable.from_records(rows, {"corpus_hash": "feed" * 8})


@pytest.fixture(scope="module")
def checked_page(tmp_path_factory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("browser")
    index = write_report(synthetic_table(), out / "report", finetuned={"a1": ["a2"]})
    page = index.read_text(encoding="utf-8")
    n_images = page.count("<img ")
    checked = out / "report" / "checked.html"
    checked.write_text(page.replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    return checked, n_images


def test_every_figure_renders_in_chromium(checked_page, tmp_path):
    checked, n_images = checked_page
    assert n_images == 3 * 4 + 1 + 2  # per measure 4 figures, localisation, fine-tuning per level
    result = run_chromium(["--virtual-time-budget=15000", "--dump-dom", checked.as_uri()], tmp_path / "p")
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'data-check="done"' in dom, "the load handler did not run: " + result.stderr[-2000:]
    assert f'data-image-count="{n_images}"' in dom
    rendered = re.findall(r'data-rendered="(yes|no)"', dom)
    assert rendered == ["yes"] * n_images


def test_screenshot_shows_the_page(checked_page, tmp_path):
    checked, _ = checked_page
    shot = tmp_path / "shot.png"
    result = run_chromium(
        ["--window-size=1300,2600", f"--screenshot={shot}", checked.as_uri()], tmp_path / "p"
    )
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2600, 1300)
    # A blank or failed page is one flat colour; the header, tables and heatmaps give many distinct colours.
    distinct = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(distinct) > 500
    # The top of the page is the dark header bar.
    assert pixels[20:60, 20:400].mean() < 0.35
