"""report.html of the fixture run renders in headless Chromium: the screenshot is a real page (text, tables and the
embedded colour figures), not a blank or an error page. Skipped where Chromium is not installed."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reports import build_report

RUN = Path(__file__).resolve().parents[1] / "data" / "run_small" / "run"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
WIDTH, HEIGHT = 1200, 4000


def screenshot(html: Path, png: Path, profile: Path) -> None:
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--screenshot={png}",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not on PATH (Debian: apt-get install chromium)")
def test_report_html_renders_in_headless_chromium(tmp_path):
    build_report([RUN], tmp_path / "out", "html", n_boot=10)
    png = tmp_path / "shot.png"
    screenshot(tmp_path / "out" / "report.html", png, tmp_path / "profile")
    with Image.open(png) as im:
        assert im.size == (WIDTH, HEIGHT)
        rgb = np.asarray(im.convert("RGB")).astype(np.int16)
    gray = rgb.mean(axis=2)
    assert gray.std() > 20  # a blank (or uniformly grey error) page has almost none
    inked = gray < 128  # text, table rules, plot lines
    assert 0.01 < inked.mean() < 0.5
    assert inked[:80].any()  # the page heading at the top
    # the embedded PNG figures were decoded: saturated colours with red or green in them (the severity and w
    # colours, heatmaps; the links are pure blue). The same page without its <img> tags has ~10x fewer.
    saturated = (rgb.max(axis=2) - rgb.min(axis=2) > 100) & (np.maximum(rgb[..., 0], rgb[..., 1]) > 120)
    assert saturated.mean() > 0.0008
    assert png.stat().st_size > 50_000
