"""The browser demo: its image functions, and the real app driven in headless Chromium on 127.0.0.1."""

from __future__ import annotations

import io
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustdepth.app import condition_grid, degrade_frame, depth_downloads, load_models, to_rgb_array
from robustdepth.checkpoint import save_checkpoint
from robustdepth.config import to_dict
from robustdepth.configure import load_config
from robustdepth.networks import DepthNet

H, W = 64, 96


def make_checkpoint(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    cfg = load_config("monodepth2", [f"data.height={H}", f"data.width={W}"])
    return save_checkpoint(folder / "checkpoints" / "last.pt",
                           {"config": to_dict(cfg), "models": {"depth": DepthNet(18).state_dict()}, "step": 0})


def frame_png(path: Path) -> Path:
    rng = np.random.default_rng(0)
    sky = np.linspace(200, 60, H)[:, None, None] * np.ones((H, W, 3))
    Image.fromarray(np.clip(sky + rng.normal(0, 20, (H, W, 3)), 0, 255).astype(np.uint8)).save(path)
    return path


def test_degrade_frame_applies_the_translators():
    rgb = to_rgb_array(np.full((H, W, 3), 128, np.uint8))
    assert np.array_equal(degrade_frame(rgb, "clear", 1.0), rgb)
    night = degrade_frame(rgb, "night", 1.0)
    assert night.dtype == np.uint8 and night.shape == rgb.shape and night.mean() < rgb.mean() - 20
    assert np.array_equal(degrade_frame(rgb, "fog", 0.7), degrade_frame(rgb, "fog", 0.7))  # deterministic
    assert not np.array_equal(degrade_frame(rgb, "fog", 0.3), degrade_frame(rgb, "fog", 0.9))
    with pytest.raises(ValueError, match="unknown condition"):
        degrade_frame(rgb, "hail", 1.0)


def test_depth_downloads_formats(tmp_path):
    depth = np.array([[1.0, 2.5], [80.0, np.nan]], np.float32)
    png16, gray, npy = depth_downloads(depth, tmp_path, "m")
    stored = np.asarray(Image.open(png16))
    assert stored.dtype == np.uint16 and stored.tolist() == [[256, 640], [20480, 0]]  # metres × 256, NaN → 0
    g = np.asarray(Image.open(gray))
    assert g.dtype == np.uint8 and g[0, 0] == 255 and g[0, 0] > g[0, 1] > g[1, 0] and g[1, 1] == 0  # near = bright
    np.testing.assert_array_equal(np.load(npy), depth)


def test_condition_grid_has_every_condition_and_model(tmp_path):
    models = load_models([str(make_checkpoint(tmp_path / "a", 0)), str(make_checkpoint(tmp_path / "b", 1))], "cpu")
    assert [m.name for m in models] == ["a", "b"]
    grid = condition_grid(models, to_rgb_array(np.asarray(Image.open(frame_png(tmp_path / "f.png")))), 1.0)
    assert grid.shape == (5 * H, 3 * W, 3)


def _browser_or_skip() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver; `make browser`)")
    pytest.importorskip("gradio", reason="the app extra is not installed (pip install 'robustdepth[app]')")
    pytest.importorskip("selenium", reason="selenium is not installed (pip install 'robustdepth[app]')")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _image_at(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=30) as response:  # the app's own loopback server
        return np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))


@pytest.mark.browser
@pytest.mark.slow
def test_app_in_headless_chromium(tmp_path, monkeypatch):
    chromium, driver = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from robustdepth.app import build_app

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    models = load_models([str(make_checkpoint(tmp_path / "a", 0)), str(make_checkpoint(tmp_path / "b", 1))], "cpu")
    app = build_app(models)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, share=False, inbrowser=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 90)
        upload = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#frame input[type=file]"))
        upload.send_keys(str(frame_png(tmp_path / "frame.png")))
        time.sleep(1.0)  # let the upload land before asking for depth
        browser.find_element(By.CSS_SELECTOR, "#run").click()

        def depth_src(b, previous=None):
            imgs = b.find_elements(By.CSS_SELECTOR, "#depth-0 img")
            src = imgs[0].get_attribute("src") if imgs else None
            return src if src and src != previous else False

        clear_src = wait.until(depth_src)
        clear = _image_at(clear_src)
        assert clear.shape == (H, W, 3) and clear.std() > 0
        assert browser.find_elements(By.CSS_SELECTOR, "#depth-1 img")  # the second model, side by side
        night_label = next(e for e in browser.find_elements(By.CSS_SELECTOR, "#condition label")
                           if e.text.strip() == "night")
        night_label.click()
        night_src = wait.until(lambda b: depth_src(b, clear_src))
        night = _image_at(night_src)
        assert night.shape == clear.shape and not np.array_equal(night, clear)
        assert wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#downloads a"))
    finally:
        browser.quit()
        app.close()
