"""Take the README's demo screenshot (docs/demo.png) from the bundled models, reproducibly.

    python demo/screenshot.py                    # -> docs/demo.png
    python demo/screenshot.py --out shot.png --label seven

Serves demo/app.py with its defaults (the bundled models) on a free local port, opens it in
headless Chromium (apt-get install chromium chromium-driver; selenium from the dev extra),
generates four clips of the default model at 2 steps, seed 0, each label in turn, and saves
the page.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CMAUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CMAUDIO_CHROMEDRIVER", "/usr/bin/chromedriver")
EACH = "(each in turn)"  # the label dropdown's entry for one clip of each class (handlers.EACH_CLASS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_served(url: str, server: subprocess.Popen, timeout: float = 120.0) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if server.poll() is not None:
            sys.exit(f"demo/screenshot.py: error: the demo exited with status {server.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"demo/screenshot.py: error: the demo did not answer at {url} within {timeout:.0f} s")


def headless_chromium(window: str = "1280,1160", profile: Path | None = None):
    """A Selenium driver of headless Chromium (the demo's browser test uses it too)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in [
        "--headless=new",
        "--no-sandbox",  # CI runs as root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--window-size={window}",
        *([f"--user-data-dir={profile}"] if profile else []),
    ]:
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def wait_for(driver, css: str, timeout: float = 20.0):
    """The first element matching ``css`` once one exists (Gradio renders asynchronously)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: (d.find_elements(By.CSS_SELECTOR, css) or [None])[0])


def shoot(url: str, out: Path, label: str | None) -> None:
    driver = headless_chromium()
    try:
        driver.get(url)
        if label:
            wait_for(driver, "#label input", 60).click()
            wait_for(driver, f'[role="option"][aria-label="{label}"]').click()
        wait_for(driver, "#generate-button").click()
        for k in range(4):
            wait_for(driver, f"#spec-{k} img[src]", 60)
        time.sleep(1.0)  # let the images finish drawing
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="demo/screenshot.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "demo.png")
    p.add_argument("--label", default=EACH, help=f"label to pick before generating (default: {EACH})")
    args = p.parse_args(argv)
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not Path(tool).is_file():
            p.error(f"needs {tool} (apt-get install chromium chromium-driver)")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "demo.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "demo" / "app.py"), "--port", str(port)], stdout=log, stderr=log
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_served(url, server)
            shoot(url, args.out, args.label)
        finally:
            server.terminate()
            server.wait(30)
    print(f"saved {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
