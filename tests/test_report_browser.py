"""The HTML report in a real browser: headless Chromium renders it and the plots show."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_report import SIZES, _fake_sweep

from tracesim.analysis.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _screenshot(html: Path, png: Path, profile: Path) -> None:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        "--window-size=1280,2000",
        html.resolve().as_uri(),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.is_file(), f"chromium wrote no screenshot (exit {res.returncode}): {res.stderr}"


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not installed (Debian: apt-get install -y chromium); browser test skipped",
)
def test_report_renders_plots_in_chromium(tmp_path: Path) -> None:
    from PIL import Image

    p99 = dict(zip(SIZES, [0.1, 0.1, 0.3, 2.3, 6.3], strict=True))
    root = _fake_sweep(tmp_path / "sweep", p99)
    paths = write_report(root, tmp_path / "report")
    html = paths["html"].read_text()
    # Every <img> is an inline PNG that decodes (self-contained: no file or network refs).
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(srcs) >= 3
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert img.format == "PNG" and img.width > 300 and img.height > 200

    shot = tmp_path / "shot.png"
    _screenshot(paths["html"], shot, tmp_path / "chromium-profile")
    px = np.asarray(Image.open(shot).convert("RGB"))
    assert px.shape[1] == 1280
    # Text alone is black/grey on white; rendered plots bring area, colours and plot lines.
    non_white = (px < 245).any(axis=2)
    assert non_white.mean() > 0.02, f"only {non_white.mean():.1%} of the page is drawn"
    colours = np.unique(px.reshape(-1, 3)[non_white.reshape(-1)], axis=0)
    assert len(colours) > 200, f"only {len(colours)} colours: plots not rendered?"
    # The curve colour of the plots (matplotlib's first colour, report.PALETTE[0]) fills
    # many pixels, spread over a tall part of the page (several plots, not one legend).
    blue = np.abs(px.astype(int) - [31, 119, 180]).sum(axis=2) < 60
    assert blue.sum() > 2000, f"{blue.sum()} pixels of the plot line colour"
    assert blue.any(axis=1).sum() > 400, "plot lines cover too few rows of the page"
