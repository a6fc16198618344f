"""The evaluation report opens in headless chromium, every image decodes, and the new plots render.

Skips without a chromium binary (`make chromium` installs Debian's).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from cadenza.evaluation.evaluate import EvalConfig, evaluate
from cadenza.evaluation.report import GAIN_COLOUR
from cadenza.training.synthetic import ToneDecoder, make_synthetic_tokens
from cadenza.training.trainer import TrainConfig, train

CHROMIUM = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (`make chromium` installs Debian's chromium as root)"
)
NEW_PLOTS = ("caption_gain.png", "distances.png", "adherence.png", "mainstream_pull.png")


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'chrome-profile'}", "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _colour_pixels(pixels: np.ndarray) -> int:
    target = np.array([int(GAIN_COLOUR[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels[..., :3].astype(int) - target).sum(axis=2) < 12).sum())


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("eval-browser")
    make_synthetic_tokens(tmp / "tok", clips=32, shards=2, distinct_styles=True)
    make_synthetic_tokens(tmp / "held", clips=12, shards=1, seed=5, key_prefix="h", distinct_styles=True)
    train(TrainConfig.preset("tiny", str(tmp / "tok"), str(tmp / "run"), steps=40, progress=False, crop_seconds=2.0))
    labels = {f"hsyn{i:08d}"[-11:]: f"style{i % 4}" for i in range(12)}
    evaluate(tmp / "run", str(tmp / "held"), tmp / "eval", labels=labels, decoder=ToneDecoder(),
             config=EvalConfig(num_samples=8, seconds=1.5, write_wavs=False))
    return tmp, tmp / "eval" / "report.html"


@pytest.mark.slow
def test_report_loads_and_every_image_decodes(report):
    tmp, html = report
    proc = _chromium(tmp, "--dump-dom", html.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    tag = re.search(r"<html[^>]*>", proc.stdout).group(0)
    assert 'data-images-ok="true"' in tag, tag
    assert int(re.search(r'data-images="(\d+)"', tag).group(1)) == len(list(html.parent.glob("*.png")))
    for plot in NEW_PLOTS:
        assert plot in proc.stdout


@pytest.mark.slow
def test_screenshot_shows_the_new_plots(report):
    tmp, html = report
    # the plots' colour appears nowhere else on the page: count it in the PNGs, then on the screen
    in_files = sum(_colour_pixels(np.asarray(Image.open(html.parent / p).convert("RGB"))) for p in NEW_PLOTS)
    assert in_files > 2000
    shot = tmp / "shot.png"
    proc = _chromium(tmp, "--hide-scrollbars", "--window-size=1200,6000", f"--screenshot={shot}", html.as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    on_screen = _colour_pixels(np.asarray(Image.open(shot).convert("RGB")))
    assert on_screen > 0.5 * in_files, (on_screen, in_files)
