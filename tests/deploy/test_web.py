"""The web page in a real headless Chromium: upload a rendered video, read the label off the page."""

from __future__ import annotations

import shutil

import pytest

from .conftest import NAMES

webdriver = pytest.importorskip("selenium.webdriver")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser():
    if not CHROMIUM or not shutil.which(CHROMEDRIVER):
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
        )
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    yield drv
    drv.quit()


def test_upload_through_the_page(server, video, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server[1] + "/")
    wait = WebDriverWait(browser, 90)
    wait.until(lambda d: "classes" in d.find_element(By.ID, "model-line").text)
    browser.find_element(By.ID, "file").send_keys(str(video))
    wait.until(EC.visibility_of_element_located((By.ID, "result")))
    label = browser.find_element(By.ID, "label").text
    assert label in NAMES
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars rect")
    assert bars and bars[0].get_attribute("data-label") == label
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#maps img"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#maps img")) == 4
    assert "error" not in browser.find_element(By.ID, "status").get_attribute("class")
