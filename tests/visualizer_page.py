"""Loads ttnn-visualizer pages in Debian's headless Chromium and prints each page's text as JSON.

Run by tests/test_ttnn_tools.py with the visualizer's own venv (.venv-tools/visualizer: selenium):
    python visualizer_page.py BASE_URL INSTANCE_ID SHOT_DIR PATH=TEXT...
Each PATH is opened with the report instance selected (?instanceId=, as the visualizer's own launcher
links it), the page is given up to a minute to show TEXT (it renders from its API asynchronously),
then its screenshot is saved as SHOT_DIR/<path>.png and its visible text recorded.
"""

import contextlib
import json
import sys
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait


def main() -> None:
    base, instance, shots = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
        "--no-first-run",
        "--disable-background-networking",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    pages = {}
    try:
        for spec in sys.argv[4:]:
            path, _, wanted = spec.partition("=")
            driver.get(f"{base}{path}?instanceId={instance}")
            with contextlib.suppress(TimeoutException):  # the test reports what the page showed instead
                WebDriverWait(driver, 60).until(
                    lambda d, wanted=wanted: wanted in d.find_element("tag name", "body").text
                )
            driver.save_screenshot(str(shots / (path.strip("/").replace("/", "_") + ".png")))
            pages[path] = driver.find_element("tag name", "body").text
    finally:
        driver.quit()
    print(json.dumps(pages))


if __name__ == "__main__":
    main()
