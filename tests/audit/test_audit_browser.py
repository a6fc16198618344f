"""report.html opens in a real headless browser (Debian's chromium) without errors, and the plots render.

`make test` installs chromium when it is missing and apt-get is usable; otherwise this test skips.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from audit_synth import write_dataset
from PIL import Image

from cadenza.audit import AuditConfig, run_audit
from cadenza.audit.plots import NORTH

CHROMIUM = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (`make chromium` installs Debian's chromium as root)"
)


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
        "--virtual-time-budget=10000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    data = write_dataset(tmp, planted=True, n=600)
    run_audit(
        AuditConfig(
            csv=str(data["csv"]),
            out=str(tmp / "audit"),
            taxonomy=str(data["taxonomy"]),
            available=str(data["available"]),
        )
    )
    return tmp, tmp / "audit" / "report.html"


def test_report_loads_without_errors_and_every_image_decodes(report):
    tmp, html = report
    proc = _chromium(tmp, "--dump-dom", html.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    root = re.search(r"<html[^>]*>", proc.stdout)
    assert root, proc.stdout[:500]
    tag = root.group(0)
    n_images = int(re.search(r'data-images="(\d+)"', tag).group(1))
    assert n_images == len(list(html.parent.glob("*.png"))) >= 8
    assert 'data-images-ok="true"' in tag, tag
    assert "data-js-error" not in tag, tag
    assert "Findings" in proc.stdout


def test_screenshot_shows_the_plots(report):
    tmp, html = report
    shot = tmp / "shot.png"
    proc = _chromium(tmp, "--hide-scrollbars", "--window-size=1000,3500", f"--screenshot={shot}", html.as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[0] >= 3000 and pixels.std() > 20  # not a blank page
    # the coverage bars are drawn in the plots' blue: many pixels of it can only come from rendered plots
    target = np.array([int(NORTH[i : i + 2], 16) for i in (1, 3, 5)])
    bar_pixels = int((np.abs(pixels - target).sum(axis=2) < 12).sum())
    # measured: ~37000 such pixels with the plots, ~2000 without them (the info boxes' borders)
    assert bar_pixels > 8000, bar_pixels


def test_audit_report_summary_and_sortable_appendix(report):
    tmp, html = report
    proc = _chromium(tmp, "--dump-dom", html.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert 'id="findings"' in dom and dom.count('class="finding"') >= 1
    assert dom.count("<svg") >= dom.count('class="finding"')  # one picture per ranked finding
    assert 'id="appendix"' in dom and 'class="sortable"' in dom
    assert "data-js-error" not in re.search(r"<html[^>]*>", dom).group(0)


@pytest.fixture(scope="module")
def chain_page(report, tmp_path_factory):
    from cadenza.audit.chain_report import write_chain_report

    tmp, html = report
    out = tmp_path_factory.mktemp("chain")
    write_chain_report(str(html.parent), str(out))
    return out / "chain.html"


def test_chain_page_renders_with_its_plots(chain_page):
    tmp = chain_page.parent
    proc = _chromium(tmp, "--dump-dom", chain_page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    tag = re.search(r"<html[^>]*>", proc.stdout).group(0)
    assert int(re.search(r'data-images="(\d+)"', tag).group(1)) == 3
    assert 'data-images-ok="true"' in tag and "data-js-error" not in tag
    assert "not run" in proc.stdout and "Download survival" in proc.stdout
    shot = tmp / "chain-shot.png"
    proc = _chromium(tmp, "--hide-scrollbars", "--window-size=1000,2500", f"--screenshot={shot}", chain_page.as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    target = np.array([int(NORTH[i : i + 2], 16) for i in (1, 3, 5)])
    # the chain's dots are drawn in the plots' blue: only rendered plots give many such pixels
    assert int((np.abs(pixels - target).sum(axis=2) < 12).sum()) > 300
