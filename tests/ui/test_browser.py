"""The page in a real browser: Debian's headless Chromium driven by Selenium through Debian's chromedriver.

No browser is downloaded at run time: Selenium gets both paths, so selenium-manager never runs (``SE_OFFLINE`` makes
sure). ``scripts/install-browser.sh`` installs them; without them this test skips loudly, and fails under CI=true.
The server is the real app under uvicorn on a loopback port, over a Milvus Lite file made by another process (every
collection released, as in every file a user opens); screenshots go to the test's tmp dir (their path is printed with
the measured render times), and with VLLM_RANKER_UI_DOCS=DIR also to DIR/ui.png and DIR/ui-eval.png, reduced to 128
and 64 colours as docs/ keeps them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.collections import build_elsewhere
from tests.ui.conftest import serve
from tests.ui.reports import report
from vllm_ranker.testing import RerankServer
from vllm_ranker.ui.app import create_app

# Debian's paths; the variables let another machine point at its own (still never downloaded here).
CHROMIUM = os.environ.get("VLLM_RANKER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("VLLM_RANKER_CHROMEDRIVER", "/usr/bin/chromedriver")
QUERY = "open and read a file"  # on this corpus the model moves hits up, down, and in from below the top 6


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return f"no Chromium/chromedriver at {CHROMIUM} / {CHROMEDRIVER}: run scripts/install-browser.sh"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {missing}")
        # Loud: a warning lands in pytest's summary even without -rs.
        warnings.warn(f"SKIPPING the browser test: {missing}", UserWarning, stacklevel=1)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let selenium-manager look for (or fetch) a browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1360,1100",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        # Tests reach loopback only: no DNS lookups (every host name but the loopback ones resolves to nothing) and
        # none of Chromium's background calls home (updates, safe browsing, metrics, translation).
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-breakpad",
        "--no-pings",
        "--dns-prefetch-disable",
        "--metrics-recording-only",
        "--disable-features=OptimizationHints,MediaRouter,DialMediaRouteProvider,Translate,"
        "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--mute-audio",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory, rerank: RerankServer) -> Iterator[str]:
    """The page over a Milvus Lite file made by another process that has exited: every collection released."""
    db = build_elsewhere(tmp_path_factory.mktemp("ui-browser") / "reopened.db", rerank.endpoint)
    with serve(create_app(db, rerank.endpoint)) as url:
        yield url


def wait_for(driver: Any, condition: str, timeout: float = 30) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(f"return {condition}"))


def fill(driver: Any, element_id: str, value: str, *, typed: bool = True) -> None:
    """Put ``value`` in a form field: typed key by key (as a person does), or set at once (typing costs ~50 ms a
    key over WebDriver on a small machine; the checks do not need it for every field)."""
    field = driver.find_element("id", element_id)
    if typed:
        field.clear()
        field.send_keys(value)
    else:
        driver.execute_script("arguments[0].value = arguments[1]", field, value)


def run_query(driver: Any, query: str, *, typed: bool = True) -> tuple[float, float]:
    """Submit ``query``; (ms from click to painted lists, of which not spent in the rerank service), as measured
    by the page itself."""
    fill(driver, "query", query, typed=typed)
    driver.find_element("id", "run").click()
    wait_for(driver, "document.body.dataset.state === 'done'")
    render = driver.find_element("id", "render")
    return float(render.get_attribute("data-page-ms")), float(render.get_attribute("data-over-service-ms"))


def full_page_screenshot(driver: Any, path: Path) -> None:
    """The whole page, not just the window: the viewport is stretched to the content's height for the shot."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    metrics = {"width": 1360, "height": int(size["height"]) + 1, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def keep_for_docs(shot: Path, name: str, colours: int, crop: tuple[int, int] | None = None) -> None:
    """``shot`` as docs/ keeps it (``VLLM_RANKER_UI_DOCS=docs``): fewer colours (a 4x smaller file), maybe cropped to
    its top-left ``crop`` (width, height)."""
    folder = os.environ.get("VLLM_RANKER_UI_DOCS")
    if not folder:
        return
    from PIL import Image

    with Image.open(shot) as image:
        kept = image.convert("RGB").crop((0, 0, *crop)) if crop else image.convert("RGB")
        kept.quantize(colours).save(Path(folder) / name, optimize=True)


def hits(driver: Any, list_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' li.hit')].map(li => ({key: li.dataset.key, "
        "move: li.dataset.move, rank: li.querySelector('.rank').textContent, badge: li.querySelector('.move')"
        ".textContent, marks: li.querySelectorAll('mark:not(.chunk)').length, score: li.querySelector('.score')"
        ".textContent, chunk: li.querySelector('mark.chunk')?.textContent ?? null, first: li.querySelector("
        "'.first-score')?.textContent ?? null}))",
        f"#{list_id}",
    )
    return found


def test_query_renders_both_lists_moves_and_timing(
    browser: Any, page_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.support.ui import Select

    browser.get(page_url + "/")
    wait_for(browser, "document.body.dataset.state === 'ready'")
    Select(browser.find_element("id", "collection")).select_by_value("python_docs")
    # Released, as the file was reopened: the page loads it when picked, and says why.
    wait_for(browser, "document.body.dataset.state === 'ready'")
    status = browser.find_element("id", "collection-status").text
    assert status.startswith("Loaded python_docs in ") and "released when a new process opens it" in status
    assert browser.find_element("id", "run").is_enabled() and not browser.find_element("id", "load-box").is_displayed()
    assert browser.find_element("id", "text-field").get_attribute("value") == "document"
    stages = [o.get_attribute("value") for o in Select(browser.find_element("id", "stage")).options]
    assert stages == ["dense", "bm25", "hybrid"]
    assert browser.find_element("id", "stage").get_attribute("value") == "hybrid"  # the default where allowed
    fill(browser, "window", "20", typed=False)
    fill(browser, "shown", "6", typed=False)
    # Long documents scored by their best chunk (the test's documents are short: chunks of 5 words show it).
    fill(browser, "chunk-words", "5", typed=False)
    fill(browser, "chunk-overlap", "2", typed=False)
    # A first query warms the server up (Milvus Lite's first search, the rerank HTTP pool); both are timed.
    cold = run_query(browser, "read a gzip compressed file", typed=False)
    warm = run_query(browser, QUERY)

    first, reranked = hits(browser, "first"), hits(browser, "reranked")
    assert [h["rank"] for h in first] == ["1", "2", "3", "4", "5", "6"] and len(reranked) == 6
    assert any(h["marks"] for h in reranked)  # query words are marked in the snippets
    # Each reranked hit: its best chunk marked in its text, and its first-stage score and rank beside the model's.
    assert all(h["chunk"] for h in reranked) and not any(h["chunk"] or h["first"] for h in first)
    assert all(h["score"].startswith("model ") and h["first"].startswith("first stage ") for h in reranked)
    assert browser.find_element("id", "reranked-label").text == "(model score)"
    assert "(chunks of 5 words, overlap 2)" in browser.find_element("id", "summary").text
    # Each reranked hit's badge agrees with where it stood in the first-stage list on the left.
    left = {h["key"]: int(h["rank"]) for h in first}
    for hit in reranked:
        was, now = left.get(hit["key"]), int(hit["rank"])
        if was is None:
            assert hit["move"] == "new" and hit["badge"].startswith("new")
        elif was > now:
            assert hit["move"] == "up" and hit["badge"] == f"▲ {was - now}"
        elif was < now:
            assert hit["move"] == "down" and hit["badge"] == f"▼ {now - was}"
        else:
            assert hit["move"] == "same"
    assert {"up", "down", "new"} <= {h["move"] for h in reranked}
    right = {h["key"] for h in reranked}
    assert [h["key"] for h in first if h["move"] == "dropped"] == [h["key"] for h in first if h["key"] not in right]
    links = browser.execute_script("return document.querySelectorAll('#moves path.link').length")
    assert links == len(first) + sum(h["move"] == "new" for h in reranked)

    timing = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#timing tr[data-metric]')]"
        ".map(tr => [tr.dataset.metric, tr.querySelector('td').textContent]))"
    )
    for key in ("first_stage_search", "rerank_service", "rerank_overhead", "total"):
        assert timing[key].endswith(" ms") and float(timing[key].split()[0]) >= 0
    assert int(timing["candidates"]) >= 20 and int(timing["requests"]) >= 1 and timing["cache_hits"] == "0"
    assert int(timing["chunks"]) > int(timing["candidates"]) and timing["chunk_unit"] == "words"
    assert len(browser.find_elements("css selector", "#time-bar .seg")) == 3
    assert "Traceback" not in browser.page_source

    shot = tmp_path / "ui-compare.png"
    full_page_screenshot(browser, shot)
    keep_for_docs(shot, "ui.png", 128)
    with capsys.disabled():  # in the test log even without -s: the measurement is what this line is for
        print(
            f"\nrender (click to painted lists): first query {cold[0]:.0f} ms ({cold[1]:.0f} ms on top of the rerank "
            f"service's own time), next query {warm[0]:.0f} ms ({warm[1]:.0f} ms on top); window 20, 6 shown; "
            f"screenshot: {shot}"
        )

    # The document opens in full, with the query's words and the winning chunk marked.
    browser.find_element("css selector", "#reranked li.hit").click()
    wait_for(browser, "document.getElementById('doc').open")
    assert browser.find_elements("css selector", "#doc-text mark:not(.chunk)")
    assert (
        browser.find_element("css selector", "#doc-text mark.chunk").get_attribute("textContent")
        == reranked[0]["chunk"]
    )
    assert browser.find_element("id", "doc-title").text.startswith("python_docs · id ")
    browser.save_screenshot(str(tmp_path / "ui-document.png"))
    browser.find_element("css selector", "#doc .close").click()

    # A bad value is said in words in the error box, and the form keeps what was typed.
    fill(browser, "chunk-overlap", "5", typed=False)
    browser.find_element("id", "run").click()
    wait_for(browser, "document.body.dataset.state === 'error'")
    assert "overlap (5) must be smaller than chunk words (5)" in browser.find_element("id", "error").text
    kept = [browser.find_element("id", i).get_attribute("value") for i in ("chunk-words", "chunk-overlap", "query")]
    assert kept == ["5", "5", QUERY]
    # Fixed, and fused with the first stage by RRF: the reranked score says it is the fused one.
    fill(browser, "chunk-overlap", "2", typed=False)
    Select(browser.find_element("id", "fuse")).select_by_value("rrf")
    assert (
        browser.find_element("id", "fuse-k").is_enabled() and not browser.find_element("id", "fuse-weight").is_enabled()
    )
    run_query(browser, QUERY, typed=False)
    assert browser.find_element("id", "reranked-label").text.startswith("(fused score: RRF (k = 60)")
    assert all(h["score"].startswith("fused ") and h["chunk"] for h in hits(browser, "reranked"))


def test_service_down_is_shown_in_words(browser: Any, page_url: str) -> None:
    browser.get(page_url + "/")
    wait_for(browser, "document.body.dataset.state === 'ready'")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    fill(browser, "endpoint", dead)
    fill(browser, "query", QUERY)
    browser.find_element("id", "run").click()
    wait_for(browser, "document.body.dataset.state === 'error'")
    error = browser.find_element("id", "error")
    assert error.is_displayed() and "call service failed" in error.text and "Traceback" not in browser.page_source


def test_evaluation_view_draws_a_report(browser: Any, page_url: str, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    path = tmp_path / "scifact-eval.json"
    path.write_text(json.dumps(report()))
    browser.get(page_url + "/")
    wait_for(browser, "document.body.dataset.state === 'ready'")
    browser.find_element("id", "tab-evaluation").click()
    browser.find_element("id", "eval-file").send_keys(str(path))
    wait_for(browser, "document.body.dataset.evalState === 'done'")
    bars = browser.find_elements("css selector", "#eval-bars rect.metric-bar")
    assert len(bars) == 3 * 3
    assert {b.get_attribute("data-pipeline") for b in bars} == {"bm25", "bm25+rerank", "dense"}
    tally = browser.find_element("css selector", ".pair[data-pair='bm25+rerank'] .tally").text
    assert tally == "6 wins · 4 ties · 2 losses"
    assert len(browser.find_elements("css selector", ".pair .strip rect")) == 12
    # Drawn heights follow the values (a stray CSS rule once squashed every bar to a line).
    heights = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#eval-bars rect.metric-bar')]"
        ".filter(r => r.dataset.metric === 'nDCG@10')"
        ".map(r => [r.dataset.pipeline, r.getBoundingClientRect().height]))"
    )
    assert heights["bm25+rerank"] > 50 and abs(heights["bm25"] / heights["bm25+rerank"] - 4.9 / 6.8) < 0.02
    Select(browser.find_element("id", "pair-metric")).select_by_value("MRR@10")
    wait_for(browser, "document.querySelector('.pair h3').textContent.includes('MRR@10')")
    full_page_screenshot(browser, tmp_path / "ui-evaluation.png")
    keep_for_docs(tmp_path / "ui-evaluation.png", "ui-eval.png", 64, crop=(820, 690))

    bad = tmp_path / "not-a-report.json"
    bad.write_text('{"collection": "x"}')
    browser.find_element("id", "eval-file").send_keys(str(bad))
    wait_for(browser, "document.body.dataset.evalState === 'error'")
    assert "it has no 'pipelines' list" in browser.find_element("id", "eval-error").text


def test_a_released_collection_on_a_server_waits_for_the_load_button(
    browser: Any, released_server: str, rerank: RerankServer, tmp_path: Path
) -> None:
    from selenium.webdriver.support.ui import Select

    with serve(create_app(released_server, rerank.endpoint)) as url:
        browser.get(url + "/")
        wait_for(browser, "document.body.dataset.state === 'released'")  # the first one listed, bm25_only
        Select(browser.find_element("id", "collection")).select_by_value("python_docs")
        assert browser.execute_script("return document.body.dataset.state") == "released"
        why = browser.find_element("id", "load-why").text
        assert why.startswith("python_docs is released on this Milvus server: it must be loaded before it can be")
        assert "query nodes' memory, for everyone using this Milvus" in why
        assert not browser.find_element("id", "run").is_enabled()
        browser.save_screenshot(str(tmp_path / "ui-load-button.png"))
        browser.find_element("id", "load").click()
        wait_for(browser, "document.body.dataset.state === 'ready'")
        assert not browser.find_element("id", "load-box").is_displayed()
        assert browser.find_element("id", "collection-status").text.startswith("Loaded python_docs in ")
        run_query(browser, QUERY, typed=False)
        assert len(hits(browser, "reranked")) == 10


def test_an_empty_milvus_shows_how_to_get_data_in(browser: Any, tmp_path: Path, rerank: RerankServer) -> None:
    beside = build_elsewhere(tmp_path / "vllm_ranker_demo.db", None)
    missing = tmp_path / "milvus.db"
    with serve(create_app(str(missing), rerank.endpoint)) as url:
        browser.get(url + "/")
        wait_for(browser, "document.body.dataset.state === 'empty'")
        text = browser.find_element("id", "get-data").text
        assert not browser.find_element("id", "query-form").is_displayed()
        assert f"There is no Milvus Lite file at {missing}. The page only reads: it creates none." in text
        assert f"vllm-ranker demo --uri {missing}" in text and f"vllm-ranker ingest DIR|FILE --uri {missing}" in text
        assert "Then reload this page." in text
        assert browser.find_element("id", "neighbours").text == beside
        full_page_screenshot(browser, tmp_path / "ui-empty.png")
    assert not missing.exists()
    with serve(create_app(beside, rerank.endpoint)) as url:  # there, but empty: and this page holds it open
        browser.get(url + "/")
        wait_for(browser, "document.body.dataset.state === 'empty'")
        text = browser.find_element("id", "get-data").text
        assert f"Milvus at {beside} has no collections." in text and "stop vllm-ranker ui (Ctrl-C)" in text
        assert not browser.find_element("id", "empty-neighbours").is_displayed()
