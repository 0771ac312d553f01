"""The robustness section in headless Chromium: chart, tables and diffs shown, nothing run or fetched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.report.probe_run import MODELS, UNITS
from tests.report.test_browser import SHOTS, errors, open_report, wait_for

pytestmark = pytest.mark.browser

STATE = """return {
  pwned: window.__pwned,
  scripts: document.scripts.length,
  embedded: document.querySelectorAll('img, iframe, object, embed, link, style:not(head style)').length,
  jsLinks: document.querySelectorAll('a[href^="javascript"]').length,
  handlers: [...document.querySelectorAll('*')].filter(
    (e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
  exampleTags: [...new Set([...document.querySelectorAll('#rx-list *')].map((e) => e.tagName))].sort(),
  resources: performance.getEntriesByType('resource').length,
}"""


def requests(browser: Any, page: str) -> list[str]:
    """URLs requested for the document at ``page`` (itself included), from the DevTools performance log."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent" and message["params"]["documentURL"] == page:
            urls.append(message["params"]["request"]["url"])
    return urls


def show(browser: Any, select: str, value: str) -> None:
    browser.execute_script(
        "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
        "s.dispatchEvent(new Event('change'));",
        select,
        value,
    )


def test_robustness_section_renders_and_stays_inert(browser: Any, probe_run: Path) -> None:
    browser.get_log("performance")  # drop what earlier pages asked for
    log = open_report(browser, probe_run / "report.html")
    section = browser.find_element("id", "robustness")
    assert section.is_displayed() and "Robustness" in section.text
    for family in ("perturbations", "option_order", "prompt_format", "attack"):
        table = browser.find_element("id", f"probe-{family}")
        assert table.is_displayed() and len(table.find_elements("css selector", "tr.probe-row")) >= len(
            MODELS
        )
    with_pdr = sum("pdr" in metrics for _, metrics, _ in UNITS.values()) * len(MODELS)
    bars = browser.find_elements("css selector", "svg.pdr-chart rect.pdr-bar")
    assert len(bars) == with_pdr and all(bar.size["width"] > 0 for bar in bars)
    zero = browser.find_element("css selector", "svg.pdr-chart line.pdr-zero").rect["x"]
    left = [bar for bar in bars if bar.rect["x"] + bar.rect["width"] <= zero + 1]
    assert len(left) == 1  # the one negative PDR is drawn left of the zero line

    browser.find_element("css selector", "#robustness-examples > summary").click()
    wait_for(lambda: "shown" in browser.find_element("id", "rx-count").text)
    highlighted = {}
    for index, unit in enumerate(UNITS):
        show(browser, "rx-unit", str(index))
        cards = browser.find_elements("css selector", "#rx-list .rx-example")
        assert 0 < len(cards) <= 20, unit
        marks = browser.find_elements("css selector", "#rx-list .rx-ins, #rx-list .rx-del")
        assert marks and all(m.is_displayed() for m in marks[:5]), unit
        highlighted[unit] = {m.text for m in marks}
        show(browser, "rx-show", "flips")
        flips = browser.find_elements("css selector", "#rx-list .rx-example")
        assert all("flip" in card.find_element("css selector", ".head").text for card in flips)
        show(browser, "rx-show", "all")
    assert "\u0430" in highlighted["homoglyph/arc_local"]  # the Cyrillic a, highlighted
    assert "⟨U+200B⟩" in highlighted["invisible/arc_local"]  # the zero-width space, made visible
    assert browser.find_element("css selector", "#rx-list .rx-example .rx-ins").get_attribute("title")

    browser.execute_script("document.querySelectorAll('details').forEach((d) => d.open = true)")
    for element in browser.find_elements("css selector", "#robustness .text, #robustness code"):
        browser.execute_script(
            "arguments[0].dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))", element
        )
    state = browser.execute_script(STATE)
    assert state["pwned"] is None, f"an injected script ran: {state}"
    assert state["scripts"] == 3 and state["embedded"] == 0 and state["jsLinks"] == 0
    assert state["handlers"] == 0 and set(state["exampleTags"]) <= {"DIV", "SPAN"}
    assert "<script>window.__pwned = 1</script>" in browser.find_element("id", "rx-list").text
    assert state["resources"] == 0  # nothing fetched, not even from disk ...
    page = (probe_run / "report.html").resolve().as_uri()
    assert requests(browser, page) == [page]  # ... but the page itself
    log += browser.get_log("browser")
    assert errors(log) == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.execute_script("document.getElementById('robustness').scrollIntoView()")
    browser.save_screenshot(str(SHOTS / "robustness-report.png"))
