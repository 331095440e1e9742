"""The page at ``/`` in a real headless browser (Debian's chromium through its chromedriver, Selenium): ask, see
the quote with its marked sentence, press "More context" and "Next match", see a refusal said plainly, and markup
in an article title shown as text. A screenshot is saved in ``test-artifacts/`` for a person to look at."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import httpx
import pytest

from index.analysis.embed import Embedder
from index.answer import not_found, uncertain
from index.config import IndexConfig
from index.reading.article import article_from_paragraphs
from index.store.library import Library
from tests.support.http_server import serving
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow  # starts a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
#: Where the test leaves its screenshot (ignored by git).
ARTIFACTS = ROOT / "test-artifacts"
#: A title holding markup, which the page must show as text.
TITLE = "<img src=x onerror=\"document.title='pwned'\"> <b>Harbour</b> & tides"
HARBOUR = [
    "The harbour of Port Ellis handles grain and timber.",
    "Fog closes the harbour mouth on about twenty mornings a year.",
]

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("chromium and chromedriver are missing: .ci/run installs them")
    pytest.skip("chromium and chromedriver are not installed (.ci/run installs them)", allow_module_level=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[httpx.Client]:
    data_dir = tmp_path_factory.mktemp("page") / "data"
    library = Library(data_dir, IndexConfig(data_dir=data_dir))
    library.ensure_ready(embedder)
    library.add(article_from_paragraphs(HARBOUR, title=TITLE, source="/news/harbour.txt"), embedder)
    library.close()
    with serving(data_dir, embedder, CITEBOT_API_BURST="1000") as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=420,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _ask(driver, question: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    box = driver.find_element(By.ID, "question")
    box.clear()
    box.send_keys(question)
    driver.find_element(By.CSS_SELECTOR, "#ask button[type=submit]").click()  # the page sets aria-busy at once
    answer = driver.find_element(By.ID, "answer")
    WebDriverWait(driver, 30).until(lambda d: answer.get_attribute("aria-busy") == "false")
    WebDriverWait(driver, 5).until(expected_conditions.visibility_of_element_located((By.ID, "answer")))


def test_the_page_quotes_marks_goes_on_refuses_and_shows_markup_as_text(site: httpx.Client, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get(str(site.base_url))
    assert driver.find_element(By.CSS_SELECTOR, "label[for=question]").text == "Your question"
    assert "a library of 2 articles" in driver.find_element(By.ID, "library").text

    question = "Which two roads meet at Saraqeb?"
    _ask(driver, question)
    expected = site.post("/v1/ask", json={"question": question, "k": 3}).json()
    first = expected["passages"][0]
    start, end = first["highlight"][0]
    assert driver.find_element(By.CSS_SELECTOR, "#quote mark").text == first["text"][start:end]
    assert driver.find_element(By.ID, "quote").text == first["text"]
    assert f"paragraph {first['paragraph']} of {first['paragraphs']}" in driver.find_element(By.ID, "place").text

    driver.find_element(By.ID, "more").click()
    around = site.get(f"/v1/articles/{first['article']['id']}/context", params={"paragraph": first["paragraph"]})
    before = [p["text"] for p in around.json()["context"] if p["paragraph"] < first["paragraph"]]
    after = [p["text"] for p in around.json()["context"] if p["paragraph"] > first["paragraph"]]
    assert before and after  # the quote is in the middle of the article
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#after p"))
    shown_before = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#before p")]
    shown_after = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#after p")]
    assert [t.rsplit("\n", 1)[0] for t in shown_before] == before  # each paragraph, then where it stands
    assert [t.rsplit("\n", 1)[0] for t in shown_after] == after
    assert shown_after[0].endswith(f"paragraph {first['paragraph'] + 1} of {first['paragraphs']}")
    assert driver.find_element(By.CSS_SELECTOR, "#quote mark").text == first["text"][start:end]  # still marked
    assert not driver.find_element(By.ID, "more").is_displayed()
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "serve-page.png"))

    driver.find_element(By.ID, "next").click()
    second = expected["passages"][1]
    assert driver.find_element(By.ID, "quote").text == second["text"]
    assert not driver.find_elements(By.CSS_SELECTOR, "#before p, #after p")  # the context was of the first quote
    assert driver.find_element(By.ID, "more").is_displayed()

    _ask(driver, "How long should I boil an egg?")
    assert driver.find_element(By.ID, "said").text == not_found(2)
    assert not driver.find_element(By.ID, "passage").is_displayed()

    _ask(driver, "How many mornings does fog close the harbour mouth?")
    title = driver.find_element(By.ID, "title")
    assert title.text == TITLE  # the markup is text: no image, no bold, nothing run
    assert not title.find_elements(By.CSS_SELECTOR, "img, b")
    assert driver.title == "citebot"

    # Asking one article: the chooser lists the library (titles as text), and the answer is the API's within it.
    from selenium.webdriver.support.ui import Select

    records = site.get("/v1/articles").json()
    harbour = next(r for r in records if r["title"] == TITLE)
    scope = Select(driver.find_element(By.ID, "scope"))
    assert [o.text for o in scope.options] == ["every article", *(f"{r['id']}. {r['title']}" for r in records)]
    scope.select_by_value(str(harbour["id"]))
    question = "Which two roads meet at Saraqeb?"
    _ask(driver, question)
    within = site.post("/v1/ask", json={"question": question, "k": 3, "in": [harbour["id"]]}).json()
    assert within["verdict"] != "answered" and all(p["article"]["id"] == harbour["id"] for p in within["passages"])
    said = {"unanswered": not_found(1), "uncertain": uncertain(1)}[within["verdict"]]
    assert driver.find_element(By.ID, "said").text == said  # said of one article, as the console says it
    if within["verdict"] == "uncertain":
        assert driver.find_element(By.ID, "quote").text == within["passages"][0]["text"]
    assert not driver.find_elements(By.CSS_SELECTOR, "#scope option img, #scope option b")
