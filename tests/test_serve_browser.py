"""``zoo serve`` end to end in a real headless browser (Debian's ``chromium`` driven by Selenium
through ``chromium-driver``): start the server as a user does, open the page, upload an
image, draw a mask stroke with the mouse, run ``telea`` and ``conv-l1`` (a tiny checkpoint
trained here), wait for both fills, check that every pixel outside the stroke equals the
input, and save a screenshot. Where the browser, its driver or Selenium is missing the test
is skipped with a message naming the missing piece (README, *Install*, has the apt line).

``ZOO_SCREENSHOT=PATH`` also writes the screenshot there (docs/serve.png is made this way).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
APT = "apt-get install -y chromium chromium-driver"


def _browser() -> tuple[str, str]:
    """(chromium binary, chromedriver) or a skip that names what is missing."""
    pytest.importorskip("selenium", reason="the browser test needs selenium: python -m pip install -e '.[test]'")
    pytest.importorskip("fastapi", reason="zoo serve needs fastapi: python -m pip install -e '.[test]'")
    binary = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if binary is None:
        pytest.skip(f"the browser test needs chromium (not found on PATH): {APT}")
    driver = shutil.which("chromedriver")
    if driver is None:
        pytest.skip(f"the browser test needs chromedriver (package chromium-driver; not found on PATH): {APT}")
    return binary, driver


def _start_server(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """``zoo serve ARGS`` in a new process, as a user starts it."""
    return subprocess.Popen([sys.executable, "-m", "zoo_cli.main", "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=ROOT)


def _url_and_folder(proc: subprocess.Popen) -> tuple[str, Path]:
    """The URL and the temporary folder the server printed."""
    url = folder = None
    lines = []
    end = time.time() + 180
    while time.time() < end and (url is None or folder is None):
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        lines.append(line)
        if m := re.search(r"(http://\S+/)", line):
            url = m.group(1)
        if m := re.match(r"temporary files: (\S+)", line):
            folder = Path(m.group(1))
    if url is None or folder is None:
        proc.kill()
        raise AssertionError("zoo serve did not print its URL:\n" + "".join(lines) + (proc.stdout.read() if proc.stdout else ""))
    return url, Path(folder)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read()


def test_brush_a_mask_and_see_telea_and_conv_l1_side_by_side(tmp_path, cli):
    binary, driver_path = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from zoo.data import render

    res = cli("train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--steps", 10, "--batch-size", 4, "--out", tmp_path / "runs" / "conv")
    assert res.exit_code == 0, res.output
    picture = np.ascontiguousarray(render(5, 3, 64))
    image_file = tmp_path / "shapes.png"
    Image.fromarray(picture).save(image_file)

    env = {**os.environ, "ZOO_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    server = _start_server(["--port", "0", "--checkpoint", str(tmp_path / "runs" / "conv" / "model.safetensors"), "--device", "cpu"], env)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,760"):
        options.add_argument(arg)
    browser = folder = None
    try:
        browser = webdriver.Chrome(service=Service(driver_path), options=options)  # starts while the server imports
        url, folder = _url_and_folder(server)
        assert folder.is_dir()
        wait = WebDriverWait(browser, 90, poll_frequency=0.2)
        browser.get(url)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#methods input[type=checkbox]"))
        browser.find_element(By.ID, "image-input").send_keys(str(image_file))
        canvas = browser.find_element(By.ID, "canvas")
        wait.until(lambda b: canvas.size["width"] > 100)
        # one stroke with the mouse across the middle of the picture (offsets from the canvas centre)
        chain = ActionChains(browser).move_to_element_with_offset(canvas, -canvas.size["width"] // 4, 0).click_and_hold()
        for _ in range(10):
            chain = chain.move_by_offset(canvas.size["width"] // 20, 0)
        chain.release().perform()
        drawn = browser.execute_script("return holeCount()")
        assert drawn > 50, drawn
        # erase part of it, then undo the erasing: the stroke comes back whole
        browser.find_element(By.ID, "mode-erase").click()
        ActionChains(browser).move_to_element_with_offset(canvas, 0, 0).click_and_hold().move_by_offset(canvas.size["width"] // 10, 0).release().perform()
        assert 0 < browser.execute_script("return holeCount()") < drawn
        browser.find_element(By.ID, "undo").click()
        assert browser.execute_script("return holeCount()") == drawn
        browser.find_element(By.ID, "mode-brush").click()
        # a mask file of another size is refused on the page, and the drawn mask is kept
        small = tmp_path / "small-mask.png"
        Image.fromarray(np.full((10, 10), 255, np.uint8)).save(small)
        browser.find_element(By.ID, "mask-input").send_keys(str(small))
        wait.until(lambda b: "the mask is 10x10 but the image is 64x64" in b.find_element(By.ID, "status").text)
        assert browser.execute_script("return holeCount()") == drawn
        for value in ("telea", "conv-l1@conv"):
            browser.find_element(By.CSS_SELECTOR, f"#methods input[value='{value}']").click()
        run = browser.find_element(By.ID, "run")
        wait.until(lambda b: run.is_enabled())
        run.click()
        cards = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".result-card[data-status=done] img") if
                           len(b.find_elements(By.CSS_SELECTOR, ".result-card[data-status=done]")) == 2 else None)
        wait.until(lambda b: all(b.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img) for img in cards))
        labels = [c.get_attribute("data-label") for c in browser.find_elements(By.CSS_SELECTOR, ".result-card[data-status=done]")]
        assert labels == ["telea", "conv-l1@conv"]
        browser.find_elements(By.CSS_SELECTOR, ".result-card button")[1].click()  # compare conv-l1 with the original
        wait.until(lambda b: b.find_element(By.ID, "compare").is_displayed())
        shot = tmp_path / "serve.png"
        browser.save_screenshot(str(shot))
        if os.environ.get("ZOO_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["ZOO_SCREENSHOT"])
        urls = [c.get_attribute("data-url") for c in browser.find_elements(By.CSS_SELECTOR, ".result-card[data-status=done]")]
        job_id = urls[0].split("/")[3]
        mask = np.asarray(Image.open(io.BytesIO(_get(f"{url}api/jobs/{job_id}/mask.png")))) > 127
        stored = np.asarray(Image.open(io.BytesIO(_get(f"{url}api/jobs/{job_id}/image.png"))).convert("RGB"))
        assert np.array_equal(stored, picture)
        # the stroke: a horizontal band through the middle, from about x = 16 to x = 48
        rows, cols = np.nonzero(mask)
        assert 50 < mask.sum() < 0.5 * mask.size, mask.sum()
        assert abs(rows.mean() - 32) < 4 and cols.min() < 20 and cols.max() > 44, (rows.mean(), cols.min(), cols.max())
        for u in urls:
            result = np.asarray(Image.open(io.BytesIO(_get(url.rstrip("/") + u))).convert("RGB"))
            assert result.shape == picture.shape
            assert np.array_equal(result[~mask], picture[~mask]), u  # every pixel outside the stroke is the input's
            assert not np.array_equal(result[mask], picture[mask]), u  # and the stroke was filled
        with Image.open(shot) as img:
            assert img.size[0] >= 1000 and np.asarray(img.convert("L")).std() > 10
    finally:
        if browser is not None:
            browser.quit()
        server.send_signal(signal.SIGINT)
        try:
            code = server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            code = None
    assert code == 0, (server.stdout.read() if server.stdout else "")
    assert folder is not None and not folder.exists()  # the server's temporary folder is removed on exit
