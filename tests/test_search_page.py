"""The search page in headless Chromium: type a query, see the expected top hit, switch hybrid
off, apply a metadata filter; a screenshot goes to docs/search-page.png."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from test_server import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REPORT_ANSWER = "The lighthouse keeper's parrot recites tide tables in fluent Portuguese."
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def page_server(tmp_path_factory):
    from retriever import Document, Index, load_encoder, read_corpus
    from conftest import SAMPLE

    documents = read_corpus(SAMPLE)
    for d in documents:
        d.metadata = {"topic": d.id.split("-")[0]}
    # A report longer than the encoder's window (256 tokens), answering in its last sentence.
    filler = " ".join(d.text for d in documents) * 2
    documents.append(Document(id="report", title="Annual report", text=f"{filler} {REPORT_ANSWER}",
                              metadata={"topic": "report"}))
    path = tmp_path_factory.mktemp("page") / "idx"
    Index.build(path, documents, load_encoder(device="cpu"), show_progress=False)
    server = Server(path).start()
    yield server
    server.stop()


def test_page_is_served_without_external_resources(page_server):
    html = httpx.get(f"{page_server.url}/").text
    assert "<form id=\"search\"" in html and "http://" not in html and "https://" not in html


def test_search_page_in_chromium(page_server):
    if CHROMIUM is None:
        pytest.skip("Chromium not installed (apt-get install chromium; .ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api", reason="Playwright not installed (pip install playwright)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(f"{page_server.url}/")
        page.fill("#q", "how do solar panels make electricity")
        page.click("button[type=submit]")
        page.wait_for_selector(".hit")
        assert page.locator(".hit").first.get_attribute("data-id") == "solar-1"
        assert page.locator(".hit").first.locator("mark").count() >= 1          # matched terms highlighted
        assert "ms" in page.inner_text("#status")
        hybrid_scores = page.locator(".hit .score").all_inner_texts()
        page.uncheck("#hybrid")
        page.click("button[type=submit]")
        page.wait_for_function("document.querySelector('.hit .score') && "
                               f"document.querySelector('.hit .score').textContent !== '{hybrid_scores[0]}'")
        assert page.locator(".hit").first.get_attribute("data-id") == "solar-1"   # dense ranking, other scores
        page.fill("#filter", '{"topic": "wind"}')
        page.click("button[type=submit]")
        page.wait_for_function("[...document.querySelectorAll('.hit')].every(h => h.dataset.id.startsWith('wind'))")
        ids = [h.get_attribute("data-id") for h in page.locator(".hit").all()]
        assert ids and all(i.startswith("wind") for i in ids)
        page.fill("#filter", "{not json")
        page.click("button[type=submit]")
        assert "not JSON" in page.inner_text("#error")
        page.fill("#filter", "")
        page.fill("#q", "which parrot recites tide tables in Portuguese?")
        page.click("button[type=submit]")
        page.wait_for_selector(".hit[data-id='report']")        # the best passage is shown, not the start
        report = page.locator(".hit[data-id='report']")
        assert REPORT_ANSWER in report.locator(".passage").inner_text()
        assert "passage at characters" in report.locator(".where").inner_text()
        page.fill("#q", "how do solar panels make electricity")
        page.click("button[type=submit]")
        page.wait_for_selector(".hit[data-id='solar-1']")
        page.screenshot(path=str(ROOT / "docs" / "search-page.png"), full_page=True)
        browser.close()
