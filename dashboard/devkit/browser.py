"""Headless Chromium (Debian's chromium + chromedriver) for the browser tests, benches and
screenshots. Never downloads a browser."""

from __future__ import annotations

import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

# No back/forward cache: a page left for another (d.get) stayed in it with its live streams
# (EventSource) open, and after two or three screens the six HTTP/1.1 connections Chromium
# allows per host were all held: the next page load or callback waited ~45 s (seen in
# test_wall_command: a 50 s test, and a drill that timed out).
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--disable-dev-shm-usage", "--disable-features=BackForwardCache",
)

# camera, microphone and sound without a person: a fake device (a moving test pattern and a
# beep), permission granted, audio plays without a gesture (what a kiosk wall is started with)
FAKE_MEDIA = (
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
)

# assets/vc.js, as tests, benches and scripts watch it: the screen's signalling stream is open
# (it can ring and call), and the remote <video data-vc-peer=arguments[0]> decodes frames
VC_READY = "return !!(window.pinganVC && window.pinganVC.state().peer)"
VC_DECODING = ("var v = document.querySelector('video[data-vc-peer=\"' + arguments[0] + '\"]');"
               "return !!v && v.readyState >= 2 && v.videoWidth > 0;")


def chromium(width: int = 1920, height: int = 1080, extra: tuple[str, ...] = ()) -> webdriver.Chrome:
    """A headless Chromium whose viewport is exactly width x height CSS pixels."""
    binary = shutil.which("chromium")
    driver_bin = shutil.which("chromedriver")
    if not binary or not driver_bin:
        raise RuntimeError("Debian chromium and chromium-driver are needed (scripts/test.sh installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, *extra):
        opts.add_argument(flag)
    opts.add_argument(f"--window-size={width},{height}")
    d = webdriver.Chrome(options=opts, service=Service(driver_bin))
    resize(d, width, height)
    return d


def resize(d: webdriver.Chrome, width: int, height: int) -> None:
    d.set_window_size(width, height)
    inner = d.execute_script("return [window.innerWidth, window.innerHeight]")
    if inner != [width, height]:
        d.set_window_size(2 * width - inner[0], 2 * height - inner[1])


def sign_in(d: webdriver.Chrome, url: str, user: str, password: str) -> None:
    """Open `url`, which sends a visitor to the sign-in page, and sign in there; the caller
    waits for the page it expects (the form's answer arrives after the click returns)."""
    d.get(url)
    d.find_element(By.NAME, "username").send_keys(user)
    d.find_element(By.NAME, "password").send_keys(password)
    d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
