"""report.html in a real headless Chromium: hostile content never runs, and the key parts are visible."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.report.conftest import write_hostile_run
from tests.report.forest_run import write_forest_run
from tests.report.pages import SHOTS, errors, open_report, screenshot, wait_for

pytestmark = pytest.mark.browser


def test_hostile_outputs_never_run(browser: Any, hostile_run: Path) -> None:
    log = open_report(browser, hostile_run / "report.html")
    browser.find_element("css selector", "#sample-browser > summary").click()  # decode and show samples
    wait_for(lambda: "shown" in browser.find_element("id", "f-count").text)
    for show in ("all", "wrong", "errors", "flips", "disagree"):
        browser.execute_script(
            "const s = document.getElementById('f-show'); s.value = arguments[0];"
            "s.dispatchEvent(new Event('change'));",
            show,
        )
    browser.execute_script("document.querySelectorAll('#sample-list details').forEach(d => d.open = true)")
    for element in browser.find_elements("css selector", "#sample-list .text"):
        browser.execute_script(
            "arguments[0].dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))", element
        )
    state = browser.execute_script(
        "return {pwned: window.__pwned, scripts: document.scripts.length,"
        " images: document.images.length,"
        " jsLinks: document.querySelectorAll('a[href^=\"javascript\"]').length,"
        " cards: document.querySelectorAll('#sample-list .sample').length}"
    )
    assert state["pwned"] is None, f"an injected script ran: {state}"
    assert state["scripts"] == 2 and state["images"] == 0 and state["jsLinks"] == 0
    log += browser.get_log("browser")
    assert errors(log) == []
    browser.execute_script(
        "document.getElementById('f-show').value = 'all';"
        "document.getElementById('f-show').dispatchEvent(new Event('change'))"
    )
    assert browser.execute_script("return document.querySelectorAll('#sample-list .sample').length") > 0
    text = browser.find_element("id", "sample-list").text
    assert "<script>window.__pwned = 1</script>" in text  # shown as text, for the reviewer to see
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "hostile-report.png"))


def test_quickstart_style_report_shows_verdict_results_and_forest(
    browser: Any, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_compare import BASE, WORSE, scripted_run

    gates = {"rules": [{"kind": "non_inferiority", "margin": 0.45, "name": "variant no worse than base"}]}
    run_dir = scripted_run(tmp_path, data_dir, {"base": BASE, "worse": WORSE}, name="shown", gates=gates)
    log = open_report(browser, run_dir / "report.html")
    assert errors(log) == []
    for element_id in ("verdict-banner", "results-table", "comparison-table"):
        element = browser.find_element("id", element_id)
        assert element.is_displayed() and element.size["height"] > 0, element_id
    forest = browser.find_element("css selector", "svg.forest-plot")
    assert forest.is_displayed() and forest.size["width"] > 300
    assert "Gates passed" in browser.find_element("id", "verdict-banner").text
    assert "quickstart_mc" in browser.find_element("id", "results-table").text
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "report.png"))
    capsys.readouterr()


def test_hostile_run_built_twice_renders_the_same(tmp_path: Path, data_dir: Path, hostile_run: Path) -> None:
    again = write_hostile_run(tmp_path, data_dir)
    assert (again / "report.html").read_text(encoding="utf-8").count("<tr>") == (
        hostile_run / "report.html"
    ).read_text(encoding="utf-8").count("<tr>")
    assert (
        json.loads((again / "results.json").read_text())["results"]
        == json.loads((hostile_run / "results.json").read_text())["results"]
    )
    assert yaml.safe_load((again.parent.parent / "hostile.yaml").read_text())["tasks"] == [
        "hostile_mc",
        "hostile_gen",
    ]


def test_the_quickstart_report(browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real quickstart (SmolLM2-135M and its int8 variant) renders its banner, table and forest plot."""
    from evalsuite import cli

    assert cli.main(["quickstart", "--output-dir", str(tmp_path)]) == 0
    report = tmp_path / "quickstart" / "report.html"
    log = open_report(browser, report)
    assert errors(log) == []
    banner = browser.find_element("id", "verdict-banner")
    assert banner.is_displayed() and "Gates passed" in banner.text
    table = browser.find_element("id", "results-table")
    assert table.is_displayed() and "smollm2-135m-int8" in table.text and "quickstart_qa" in table.text
    forest = browser.find_element("css selector", "svg.forest-plot")
    assert forest.is_displayed() and forest.size["height"] > 40
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "quickstart-report.png"))
    capsys.readouterr()


# Every text of every forest plot: what it shows (its tooltip aside) and its box, the plot's box, and
# where the plot area begins (the leftmost line or point drawn, which a label must not reach). Labels
# are the texts not centred on a tick.
FOREST_BOXES = """return [...document.querySelectorAll('svg.forest-plot')].map((svg) => {
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const shown = (t) => [...t.childNodes].filter((n) => n.nodeName !== 'title').map((n) => n.textContent);
  const texts = (css) => [...svg.querySelectorAll(css)].map((t) => ({lines: shown(t), box: box(t)}));
  return {
    svg: box(svg),
    plot: Math.min(...[...svg.querySelectorAll('line, circle')].map((e) => box(e)[0])),
    labels: texts('text:not([text-anchor])'),
    ticks: texts('text[text-anchor]'),
  };
})"""


def squeeze(text: str) -> str:
    return text.replace(" ", "")


def test_forest_plot_labels_are_never_cut_off(browser: Any, tmp_path: Path) -> None:
    """Model and task names of any length: each label lies whole inside its plot's visible box, left of
    the plot area, and says the whole name (wrapped, never shortened)."""
    from evalsuite.report.render import clean
    from tests.report.forest_run import PAIRS, TASKS

    run = write_forest_run(tmp_path)
    log = open_report(browser, run / "report.html")
    assert errors(log) == []
    plots = browser.execute_script(FOREST_BOXES)
    assert len(plots) == len(TASKS)
    for plot, task in zip(plots, TASKS.values(), strict=True):
        left, top, right, bottom = plot["svg"]
        assert [squeeze("".join(label["lines"])) for label in plot["labels"]] == [
            squeeze(clean(f"{variant} vs {baseline} · {task}")) for baseline, variant in PAIRS
        ]  # every character, wrapped over lines
        for text in plot["labels"] + plot["ticks"]:
            x0, y0, x1, y1 = text["box"]
            assert left <= x0 and x1 <= right and top <= y0 and y1 <= bottom, (text, plot["svg"])
        for label in plot["labels"]:
            assert label["box"][2] <= plot["plot"], label  # beside the plot, not over it
    screenshot(browser, "comparisons", "forest-long-names.png")


def test_a_label_a_font_draws_wider_than_estimated_is_squeezed_not_cut(browser: Any, tmp_path: Path) -> None:
    run = write_forest_run(tmp_path)
    open_report(browser, run / "report.html")
    width = browser.execute_script(
        "const line = document.querySelector('svg.forest-plot tspan[data-room]');"
        "line.dataset.room = String(line.getComputedTextLength() / 2); evalsuite.fitLabels();"
        "return [line.getBoundingClientRect().width, Number(line.dataset.room)];"
    )
    assert width[0] <= width[1] + 1
