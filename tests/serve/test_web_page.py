"""End to end: the real server on 127.0.0.1, the page driven in headless Chromium (selenium).

Builds a history through the autocomplete, checks the recommendations shown against the API
(bars, not logits; links out; each one's similar items), the "no match" message, and that
/docs renders without a network, and saves a screenshot to test-artifacts/web_page.png
(git-ignored) for a person to look at.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from live_server import live_server
from tiny_run import USERS, make_run_dir

from bert4rec.serve import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app under uvicorn in a thread, on a free port of 127.0.0.1; yields its base URL."""
    run = make_run_dir(tmp_path_factory.mktemp("run"), users=USERS, links=True)
    with live_server(create_app(run)) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not CHROMIUM or not DRIVER:
        pytest.skip("no browser: install Debian's chromium and chromium-driver (see .ci/run)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def pick(browser, typed: str, wanted: str) -> None:
    """Type into the search box and click the suggestion whose text contains `wanted`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    box = browser.find_element(By.ID, "search")
    box.clear()
    box.send_keys(typed)
    wait = WebDriverWait(browser, 10)
    option = wait.until(lambda b: next(
        (li for li in b.find_elements(By.CSS_SELECTOR, "#suggestions li")
         if wanted in li.text), None))
    option.click()
    wait.until(lambda b: wanted in b.find_element(By.ID, "history").text)


def test_page_builds_a_history_and_shows_recommendations(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    assert browser.title.startswith("bert4rec")
    pick(browser, "philosopher", "Sorcerer's Stone")
    pick(browser, "chamber of sec", "Chamber of Secrets")
    pick(browser, "matrix", "Matrix, The (1999)")

    expected = httpx.post(server + "/recommend", json={
        "history": [4896, 5816, 2571], "k": 10, "explain": True}).json()["items"]

    def shown(b):
        titles = [e.text for e in b.find_elements(By.CSS_SELECTOR, "#results > li > .title")]
        return titles if len(titles) == len(expected) else None

    wait = WebDriverWait(browser, 10)
    titles = wait.until(shown)
    assert titles == [r["title"] for r in expected]
    rows = browser.find_elements(By.CSS_SELECTOR, "#results > li")
    first_genres = [g.text for g in rows[0].find_elements(By.CSS_SELECTOR, ".genre")]
    assert first_genres == expected[0]["genres"]
    because = rows[0].find_element(By.CSS_SELECTOR, ".because").text
    for contribution in expected[0]["because"]:
        assert contribution["title"] in because
    assert "3 titles" in browser.find_element(By.ID, "status").text

    # a bar relative to the first recommendation instead of the logits
    results = browser.find_element(By.ID, "results").text
    assert not any(f"{number:.2f}" in results for r in expected
                   for number in [r["score"], *(c["score_drop"] for c in r["because"])])
    bars = [float(b.get_attribute("value"))
            for b in browser.find_elements(By.CSS_SELECTOR, "#results > li > .bar")]
    assert bars[0] == 1.0 and bars == sorted(bars, reverse=True) and len(bars) == len(expected)

    # links out where links.csv had them (Toy Story: imdb tt0114709), none elsewhere
    for row, rec in zip(rows, expected, strict=True):
        hrefs = [a.get_attribute("href") for a in row.find_elements(By.CSS_SELECTOR, "a.link")]
        assert hrefs == list(rec["links"].values()), rec["title"]
    assert any(r["links"] for r in expected) and any(not r["links"] for r in expected)

    # each result's similar items, as GET /items/{id}/similar gives them, less the history
    # while "Hide what I watched" is checked (issue 24): a row whose five nearest hold some
    history = {4896, 5816, 2571}
    position = next(n for n, rec in enumerate(expected)
                    if history & {i["item"] for i in nearest(server, rec["item"], 5)})
    nested = open_similar(browser, rows[position])
    unseen = [i["title"] for i in nearest(server, expected[position]["item"], 8)
              if i["item"] not in history][:5]
    assert nested == unseen and len(nested) == 5
    assert len(rows[position].find_elements(By.CSS_SELECTOR, ".similar .bar")) == 5
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "web_page.png"))

    # unchecked: the API's five nearest, history and all
    browser.find_element(By.ID, "exclude-seen").click()
    everything = httpx.post(server + "/recommend", json={
        "history": [4896, 5816, 2571], "k": 10, "filter_viewed": False}).json()["items"]
    wait.until(lambda b: [e.text for e in b.find_elements(
        By.CSS_SELECTOR, "#results > li > .title")] == [r["title"] for r in everything])
    rows = browser.find_elements(By.CSS_SELECTOR, "#results > li")
    position = next(n for n, rec in enumerate(everything)
                    if history & {i["item"] for i in nearest(server, rec["item"], 5)})
    assert open_similar(browser, rows[position]) == [
        i["title"] for i in nearest(server, everything[position]["item"], 5)]


def nearest(server: str, item: int, k: int) -> list[dict]:
    """GET /items/{item}/similar's items."""
    return httpx.get(f"{server}/items/{item}/similar", params={"k": k}).json()["items"]


def open_similar(browser, row) -> list[str]:
    """Click a result's "Similar" and return the titles it then lists."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    row.find_element(By.CSS_SELECTOR, ".show-similar").click()
    return WebDriverWait(browser, 10).until(lambda b: [e.text for e in row.find_elements(
        By.CSS_SELECTOR, ".similar .title")] or None)


def test_nonsense_search_says_no_match(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    browser.find_element(By.ID, "search").send_keys("zzqqxx")
    message = WebDriverWait(browser, 10).until(lambda b: next(
        (li.text for li in b.find_elements(By.CSS_SELECTOR, "#suggestions li.no-match")), None))
    assert message == "No title matches “zzqqxx”."
    assert not browser.find_elements(By.CSS_SELECTOR, "#suggestions li:not(.no-match)")


def test_docs_render_without_a_network(server, browser):
    """Swagger UI's scripts come from the package: the page renders the API's title."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/docs")
    title = WebDriverWait(browser, 15).until(lambda b: next(
        (e.text for e in b.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title")), None))
    assert title.startswith("bert4rec")
