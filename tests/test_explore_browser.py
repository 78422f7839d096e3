"""End to end in a real browser: `varitex-explore` on the tiny demo world, driven through Debian's headless
Chromium (/usr/bin/chromium, `apt-get install chromium`) by Playwright; no browser is downloaded.

The server runs as its own process (`python -m varitex.explore`) on a free port of 127.0.0.1. Set
VARITEX_EXPLORE_SCREENSHOT=path.png to keep a screenshot of the page after the yaw change.
"""
import importlib.util
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from helpers import world_paths

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 600     # imports, the model, encoding two people and the first picture on a busy 2-core CPU
EVENT_TIMEOUT_MS = 120_000
UPLOAD_LIMIT_MB = 1
SCREENSHOT_ENV = "VARITEX_EXPLORE_SCREENSHOT"


def require_browser():
    """Skip without gradio, playwright or Chromium; with CI=true their absence fails instead."""
    missing = [name for name in ("gradio", "playwright") if importlib.util.find_spec(name) is None]
    if not os.path.isfile(CHROMIUM):
        missing.append(CHROMIUM)
    if missing:
        message = (f"the browser test needs {', '.join(missing)} (pip install -e '.[app]' playwright; "
                   f"apt-get install chromium)")
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true requires them")
        pytest.skip(message)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_world, explore_checkpoint, tmp_path_factory):
    require_browser()
    port = free_port()
    log_path = tmp_path_factory.mktemp("explore_server") / "server.log"
    paths = [flag for name, value in world_paths(tiny_world).items() for flag in (f"--{name}", value)]
    command = [sys.executable, "-m", "varitex.explore", "--checkpoint", str(explore_checkpoint), *paths,
               "--device", "cpu", "--port", str(port), "--max_upload_mb", str(UPLOAD_LIMIT_MB)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while "serving on" not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"varitex-explore did not start (exit code {process.poll()}):\n{log_path.read_text()}")
        time.sleep(0.5)
    yield dict(url=f"http://127.0.0.1:{port}/", process=process, log=log_path)
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium_profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(EVENT_TIMEOUT_MS)
        page.goto(server["url"], wait_until="load")
        page.locator("#image img").wait_for()
        yield page
        context.close()


def shown_image(page):
    """(src, pixels) of the generated image as the browser has it."""
    source = page.locator("#image img").get_attribute("src")
    with urllib.request.urlopen(source, timeout=30) as response:
        return source, np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB")).astype(int)


def wait_for_new_image(page, old_source):
    page.wait_for_function("old => document.querySelector('#image img').src !== old", arg=old_source)
    return shown_image(page)


def test_page_shows_the_first_person(page):
    assert "val #0" in page.locator("#caption").inner_text()
    source, pixels = shown_image(page)
    assert pixels.shape == (64, 64, 3) and pixels.std() > 1


def test_yaw_slider_changes_the_image(page):
    source, before = shown_image(page)
    page.get_by_role("tab", name="Geometry").click()
    page.locator("#yaw input[type=range]").fill("30")
    _, after = wait_for_new_image(page, source)
    assert "yaw 30°" in page.locator("#caption").inner_text()
    assert np.abs(after - before).mean() > 1
    if os.environ.get(SCREENSHOT_ENV):
        page.screenshot(path=os.environ[SCREENSHOT_ENV], full_page=True)


def upload(page, path):
    page.get_by_role("tab", name="Identity").click()
    page.locator("#latents input[type=file]").set_input_files(str(path))


def test_uploading_a_non_array_shows_why_in_the_page(page, tmp_path):
    path = tmp_path / "photo.npy"
    path.write_bytes(b"\xff\xd8\xff\xe0 not an array")
    upload(page, path)
    message = page.locator("#message")
    message.get_by_text("photo.npy: not a .npy array").wait_for()
    assert "NumPy's magic bytes" in message.inner_text()


def test_uploading_a_file_over_the_limit_shows_why_in_the_page(page, tmp_path):
    path = tmp_path / "huge.npy"
    np.save(path, np.zeros((UPLOAD_LIMIT_MB * 2 ** 20 // 4 + 1000, 1), dtype=np.float32))
    upload(page, path)
    # Gradio refuses it before it reaches the app, with a notice in the page.
    page.get_by_text(re.compile(r'exceed the maximum allowed size of 1(\.0)? ?Mb: "huge.npy"', re.IGNORECASE)).wait_for()


def test_uploaded_latents_are_shown(page, tmp_path):
    source, _ = shown_image(page)
    np.save(tmp_path / "mine.npy", np.random.default_rng(0).normal(size=(2, 16)).astype(np.float32))
    upload(page, tmp_path / "mine.npy")
    wait_for_new_image(page, source)
    assert "mine.npy #0" in page.locator("#caption").inner_text()
    assert page.locator("#message").inner_text().strip() == ""


def upload_photo(page, path):
    page.get_by_role("tab", name="Your photo").click()
    page.locator("#photo_steps input[type=range]").fill("1")  # one refinement step: the test's CPU time
    page.locator("#photo input[type=file]").set_input_files(str(path))


def test_uploading_a_non_image_as_photo_shows_why_and_the_page_keeps_working(page, tmp_path):
    source, _ = shown_image(page)
    caption = page.locator("#caption").inner_text()
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    upload_photo(page, path)
    page.locator("#message").get_by_text("notes.png: not a readable image").wait_for()
    assert page.locator("#caption").inner_text() == caption and shown_image(page)[0] == source
    page.get_by_role("tab", name="Geometry").click()
    page.locator("#pitch input[type=range]").fill("10")
    wait_for_new_image(page, source)
    assert "pitch 10°" in page.locator("#caption").inner_text()


def test_your_photo_becomes_the_scene_and_the_yaw_slider_turns_it(page, tmp_path, astronaut_photo):
    source, before = shown_image(page)
    Image.fromarray(astronaut_photo).save(tmp_path / "astronaut.png")
    upload_photo(page, tmp_path / "astronaut.png")
    source, photo = wait_for_new_image(page, source)
    caption = page.locator("#caption").inner_text()
    assert "astronaut.png (your photo, 1 steps)" in caption and "shape of astronaut.png" in caption
    assert page.locator("#message").inner_text().strip() == ""
    assert np.abs(photo - before).mean() > 1
    page.get_by_role("tab", name="Geometry").click()
    # The pose sliders start at the photo's pose (nearly frontal), not at the 30 degrees set before.
    assert abs(float(page.locator("#yaw input[type=range]").input_value())) < 5
    page.locator("#yaw input[type=range]").fill("30")
    _, turned = wait_for_new_image(page, source)
    caption = page.locator("#caption").inner_text()
    assert "yaw 30°" in caption and "astronaut.png (your photo" in caption
    assert np.abs(turned - photo).mean() > 1


def test_server_log_has_no_error_and_stop_removes_the_temporary_folder(server, page):
    assert server["process"].poll() is None, "the server stopped"
    server["process"].send_signal(signal.SIGTERM)
    assert server["process"].wait(timeout=60) == 0
    log = server["log"].read_text()
    assert not re.search(r"Traceback|Error|Exception", log), log
    folder = re.search(r"uploads and exports in (\S+),", log).group(1)
    assert not os.path.exists(folder), f"{folder} was not removed"
    assert "stopped, temporary folder removed" in log
