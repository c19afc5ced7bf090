"""What the herald browser tests share: a headless Chromium, a check that counts failures, and
logging in through the login form. Imported by the Python the test scripts run (PYTHONPATH)."""
import os
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


class Checks:
    """check(ok, what) prints PASS/FAIL lines in the suite's format and counts the failures."""

    def __init__(self, test):
        self.test, self.fails = test, 0

    def __call__(self, ok, what):
        print(("PASS: " if ok else "FAIL: ") + self.test + ": " + what, flush=True)
        if not ok:
            self.fails += 1


def browser(height=900):
    """A fresh headless Chromium with a profile of its own (no cookies shared between users)."""
    o = webdriver.ChromeOptions()
    profile = os.path.join(os.environ.get("TMPDIR", "/tmp"), "herald-web-%d-%d" % (os.getpid(), time.monotonic_ns()))
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,%d" % height, "--user-data-dir=" + profile):
        o.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def login(d, base, user, password="s3cret", path="/login"):
    """Logs USER in through the form at PATH and waits for the events table."""
    d.get(base + path)
    WebDriverWait(d, 10).until(lambda d: d.find_elements(By.ID, "login"))
    d.find_element(By.ID, "user").send_keys(user)
    d.find_element(By.ID, "password").send_keys(password)
    d.find_element(By.ID, "submit").click()
    WebDriverWait(d, 10).until(lambda d: d.find_elements(By.ID, "events"))
