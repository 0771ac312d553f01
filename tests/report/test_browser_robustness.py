"""The robustness section in headless Chromium: chart, tables and diffs shown, nothing run or fetched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.report.pages import (
    assert_inert,
    errors,
    hover_all,
    open_section,
    screenshot,
    show,
    wait_for,
)
from tests.report.probe_run import MODELS, UNITS

pytestmark = pytest.mark.browser


def test_robustness_section_renders_and_stays_inert(browser: Any, probe_run: Path) -> None:
    log = open_section(browser, probe_run / "report.html", "robustness", "Robustness")
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
    compared = browser.find_element("id", "probe-comparisons-robustness")
    shown = compared.find_elements("css selector", "tr.probe-comparison")
    assert compared.is_displayed() and shown and all(row.is_displayed() for row in shown)
    assert shown[0].text.startswith("small vs base")

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

    hover_all(browser, "#robustness .text, #robustness code")
    assert assert_inert(browser, probe_run / "report.html", 3, "#rx-list *") <= {"DIV", "SPAN"}
    assert "<script>window.__pwned = 1</script>" in browser.find_element("id", "rx-list").text
    assert errors(log + browser.get_log("browser")) == []
    screenshot(browser, "robustness", "robustness-report.png")
