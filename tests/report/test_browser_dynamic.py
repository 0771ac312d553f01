"""The dynamic-evaluation section in headless Chromium, on a run of scripted models: the DyVal table and
difficulty curves, the GSM-Symbolic table and worst cases shown, the models' hostile answers shown as text,
nothing run or fetched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dynamic import scripted
from tests.dynamic.scripted import model, run_cli, write_config
from tests.report.pages import assert_inert, errors, hover_all, open_section, screenshot

pytestmark = pytest.mark.browser
MODELS = ("reasoner", "shallow", "memorizer")
DRAWN = {"DETAILS", "SUMMARY", "DIV", "SPAN", "P", "H2", "H3", "TABLE", "TBODY", "TR", "TH", "TD", "BR"}
DRAWN |= {"FIGURE", "FIGCAPTION", "svg", "line", "polyline", "circle", "text", "title", "g"}


@pytest.fixture(scope="module")
def dynamic_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("dynamic-report")
    body = {
        "models": [model(MODELS[0]), *(model(m, baseline=MODELS[0]) for m in MODELS[1:])],
        "probes": [
            {"kind": "dyval_arithmetic", "limit": 4},
            {"kind": "dyval_boolean", "limit": 4, "levels": [1, 3]},
            {"kind": "gsm_symbolic", "limit": 6, "sets": 2},
        ],
    }
    scripted.register(data_dir)
    try:
        assert run_cli(folder, write_config(folder, "dynamic", body, data_dir)) == 0
    finally:
        scripted.unregister()
    yield folder / "out" / "dynamic" / "report.html"


def test_dynamic_section_renders_and_stays_inert(browser: Any, dynamic_run: Path) -> None:
    log = open_section(browser, dynamic_run, "dynamic", "Dynamic evaluation")
    assert not browser.find_elements("id", "robustness") and not browser.find_elements("id", "hallucination")
    for family, units in (("dyval", 2), ("gsm_symbolic", 1)):
        table = browser.find_element("id", f"probe-{family}")
        assert len(table.find_elements("css selector", "tr.probe-row")) == units * len(MODELS), family
        assert table.find_element("css selector", "th[title]").get_attribute("title")  # hover help

    curves = browser.find_elements("css selector", "svg.difficulty-curve")
    assert len(curves) == 2
    for curve, levels in zip(curves, (4, 2), strict=True):
        series = curve.find_elements("css selector", "g.difficulty-series")
        assert len(series) == len(MODELS)
        points = curve.find_elements("css selector", "circle.difficulty-point")
        assert len(points) == levels * len(MODELS)
        assert all(p.size["width"] > 0 for p in points)
    # the shallow model's arithmetic curve falls from the top of the plot (level 1) to its bottom
    shallow = curves[0].find_elements("css selector", "g.difficulty-series")[1]
    heights = [p.location["y"] for p in shallow.find_elements("css selector", "circle.difficulty-point")]
    assert heights[0] < heights[1] == heights[2] == heights[3]

    rows = browser.find_elements("css selector", "#symbolic-table tr.symbolic-row")
    assert [r.find_elements("tag name", "td")[1].text for r in rows] == list(MODELS)
    assert "+1.000" in rows[2].text  # the memorizer's drop

    hover_all(browser, "#dynamic .text, #dynamic .bidi")
    text = browser.find_element("id", "dynamic-worst").text
    assert "original right, 2 of 2 fresh instances wrong" in text
    assert "<script>window.__pwned = 1</script>" in text and "[U+202E]evil" in text  # shown as text
    assert "\u202e" not in text

    tags = assert_inert(browser, dynamic_run, 2, "#dynamic *")  # 2: data, ours
    assert tags <= DRAWN  # no element came from the answers
    assert errors(log + browser.get_log("browser")) == []
    screenshot(browser, "difficulty-curves", "dynamic-report.png")
