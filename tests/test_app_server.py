"""The web page served for real: ``python -m saga_hsmad.app`` in a subprocess on a free local port, driven with
``gradio_client`` (upload, run, audio of the right rate and length; a corrupt file gives the command line's
error and the server goes on) and by a headless Chromium (load, upload, run, the output player appears, a
screenshot that is not blank, no request leaves the machine).

The browser test needs Debian's ``chromium`` (``install.sh`` installs it where apt-get is available) and the
``playwright`` package (a test dependency, used with ``executable_path``: no browser download); without them it
is skipped with the reason.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO
from test_app import make_ckpt
from test_sr_inference import noise, write

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def loopback_error() -> str | None:
    """Why a local server cannot be reached here (None when it can): ``unshare -n`` leaves the loopback down."""
    try:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            socket.create_connection(listener.getsockname(), timeout=2).close()
    except OSError as e:
        return f"no loopback network ({e}); in a network namespace, bring it up with 'ip link set lo up'"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reason = loopback_error()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("app_server")
    ckpt = make_ckpt(folder, "saga_sr")
    port = free_port()
    log = open(folder / "server.log", "w")
    scratch = folder / "tmp"  # the app's temporary folder goes here, and must be gone after SIGTERM
    scratch.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "TMPDIR": str(scratch)}
    proc = subprocess.Popen([sys.executable, "-m", "saga_hsmad.app", "--ckpt", str(ckpt), "--port", str(port),
                             "--device", "cpu"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the app exited with {proc.returncode}:\n{(folder / 'server.log').read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the app did not answer in 300 s:\n{(folder / 'server.log').read_text()[-4000:]}")
            time.sleep(1.0)
        yield {"url": url, "ckpt": ckpt.name, "folder": folder}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    left = [p.name for p in scratch.glob("saga_hsmad_app_*")]
    assert not left, f"SIGTERM left the app's temporary folder {left}:\n{(folder / 'server.log').read_text()[-2000:]}"


def test_client_upload_run_and_a_corrupt_file(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    clip = write(tmp_path / "clip.wav", noise(0.5, 16_000, 1), 16_000)
    client = Client(server["url"], download_files=str(tmp_path / "downloads"), verbose=False)
    settings = dict(how="upsample", cutoff_hz=4000, text="noise", f_h=0.6, cfg_a=1.4, cfg_t=1.2, n_steps=2,
                    seed_value=0, use_lfr=True, api_name="/super_resolve")
    heard, output, image, summary, _, download = client.predict(server["ckpt"], handle_file(str(clip)), **settings)
    info = sf.info(output)
    assert (info.samplerate, info.channels, info.frames) == (44_100, 1, int(round(0.5 * 44_100)))
    assert sf.info(heard).samplerate == 44_100 and sf.info(heard).frames == info.frames
    np.testing.assert_array_equal(sf.read(download)[0], sf.read(output)[0])
    assert "clip.wav" in summary and os.path.getsize(image) > 10_000

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    with pytest.raises(AppError, match=r"ERROR broken.wav: "):
        client.predict(server["ckpt"], handle_file(str(broken)), **settings)
    # the server is still there and still runs models
    again = client.predict(server["ckpt"], handle_file(str(clip)), **settings)[1]
    assert sf.info(again).frames == info.frames


def test_page_in_a_real_browser(server, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed: install.sh installs Debian's chromium where apt-get is available "
                    "(apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")
    from PIL import Image

    url = server["url"]
    clip = write(tmp_path / "clip.wav", noise(0.5, 16_000, 2), 16_000)
    outside = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: outside.append(r.url)
                    if not r.url.startswith((url, "data:", "blob:")) else None)
            page.goto(url)
            page.wait_for_selector("#sr-run", timeout=60_000)
            page.locator("#sr-input input[type=file]").set_input_files(str(clip))
            page.wait_for_selector("#sr-input audio[src]", state="attached", timeout=30_000)
            page.get_by_label("caption").fill("noise")
            steps = page.locator("#sr-steps input[type=number]")
            steps.fill("2")
            steps.press("Enter")
            page.locator("#sr-run").click()
            page.wait_for_selector("#sr-output audio[src]", state="attached", timeout=120_000)
            page.wait_for_selector("#sr-spectrogram img[src]", timeout=30_000)
            assert "input roll-off" in page.inner_text("#sr-summary")
            shot = tmp_path / "page.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.shape[0] >= 900 and pixels.shape[1] == 1280
    not_white = (pixels < 235).any(axis=-1).mean()
    assert not_white > 0.05 and pixels.std() > 20, f"blank screenshot? {not_white:.3f} non-white, std {pixels.std():.1f}"
    assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 200  # a spectrogram has many colours
    assert outside == [], f"the page asked for resources off this machine: {outside[:5]}"
