"""The hallucination section in headless Chromium: tables, diagrams and worst cases shown, nothing run or
fetched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.report.hallucination_run import BINS, UNITS
from tests.report.pages import assert_inert, errors, hover_all, open_section, screenshot
from tests.report.probe_run import MODELS

pytestmark = pytest.mark.browser
# the elements the section draws
DRAWN = {"DETAILS", "SUMMARY", "DIV", "SPAN", "P", "H2", "H3", "TABLE", "TBODY", "TR", "TH", "TD", "BR"}
DRAWN |= {"FIGURE", "FIGCAPTION", "svg", "line", "rect", "text", "title", "g"}


def test_hallucination_section_renders_and_stays_inert(browser: Any, hallucination_run: Path) -> None:
    log = open_section(browser, hallucination_run / "report.html", "hallucination", "Hallucination")
    assert not browser.find_elements("id", "robustness")
    assert "fabricated" not in browser.find_element("id", "results-table").text
    for kind in UNITS.values():
        table = browser.find_element("id", f"probe-{kind}")
        rows = table.find_elements("css selector", "tr.probe-row")
        assert table.is_displayed() and len(rows) == len(MODELS), kind
        assert table.find_element("css selector", "th[title]").get_attribute("title")  # hover help

    diagrams = browser.find_elements("css selector", "svg.reliability-diagram")
    assert len(diagrams) == len(MODELS)
    for diagram, model in zip(diagrams, MODELS, strict=True):
        bars = diagram.find_elements("css selector", "rect.rel-bar")
        assert len(bars) == sum(1 for n, _ in BINS[model] if n)  # one mark per non-empty bin
        assert all(bar.size["width"] > 0 and bar.size["height"] > 0 for bar in bars)
        counts = [t.text for t in diagram.find_elements("css selector", "text.rel-count")]
        assert counts == [str(n) for n, _ in BINS[model] if n]
        diagonal = diagram.find_element("css selector", "line.rel-diagonal").rect
        assert diagonal["width"] > 200 and diagonal["height"] > 200

    lists = browser.find_elements("css selector", "#worst-cases details.worst")
    assert len(lists) == len(UNITS) * len(MODELS)
    hover_all(browser, "#hallucination .text, #hallucination .bidi")
    cases = browser.find_elements("css selector", "#worst-cases .worst-case")
    assert len(cases) == 15 * len(lists)  # every unit and model of this run fails more than 15 times
    assert all(case.is_displayed() for case in cases[:5])
    text = browser.find_element("id", "worst-cases").text
    assert "<script>window.__pwned = 1</script>" in text and "[U+202E]evil" in text  # shown as text
    assert "\u202e" not in text

    tags = assert_inert(browser, hallucination_run / "report.html", 2, "#hallucination *")  # 2: data, ours
    assert tags <= DRAWN  # no element came from the data
    assert errors(log + browser.get_log("browser")) == []
    screenshot(browser, "reliability-diagrams", "hallucination-report.png")
