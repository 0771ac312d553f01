"""The robustness section: one table per family, a PDR chart, examples with diffs, and an inert page."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path
from typing import Any

from lxml import html

from evalsuite.records import Results
from evalsuite.report import SECTIONS
from evalsuite.report.render import _manifest, _results, _samples
from evalsuite.report.robustness import pdr_chart, robustness
from evalsuite.rundir import RunDir, load_run
from tests.report.probe_run import MODELS, UNITS
from tests.test_manifest import a_manifest


def examples(run_dir: Path) -> dict[str, Any]:
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    payload = re.search(
        r'<script type="application/octet-stream" id="robustness-data">([A-Za-z0-9+/=]*)</script>', page
    )
    assert payload is not None  # base64 only: nothing in it can close the script element
    return json.loads(gzip.decompress(base64.b64decode(payload.group(1))))  # type: ignore[no-any-return]


def test_no_section_without_probes(tmp_path: Path) -> None:
    run = RunDir(tmp_path, a_manifest("plain"), Results(run="plain", results=[]), ())
    assert robustness(run) is None


def test_registered_once_before_the_manifest() -> None:
    import evalsuite.report.robustness as module

    assert SECTIONS.count(module.robustness) == 1
    assert SECTIONS.index(_samples) < SECTIONS.index(module.robustness) < SECTIONS.index(_manifest)


def test_one_row_per_unit_and_model_in_its_familys_table(probe_run: Path) -> None:
    section = robustness(load_run(probe_run))
    assert section is not None and section.anchor == "robustness"
    tables = {family.key: rows for family, rows in section.data["tables"]}
    assert list(tables) == ["perturbations", "option_order", "prompt_format", "attack"]
    assert len(tables["perturbations"]) == 2 * len(MODELS)
    for key in ("option_order", "prompt_format", "attack"):
        assert len(tables[key]) == len(MODELS)
    for family, rows in section.data["tables"]:
        assert all(len(r.metrics) == len(family.metrics) and all(r.metrics) for r in rows)
    assert tables["attack"][0].outcomes == [
        ("success", "2"),
        ("failed", "1"),
        ("skipped", "1"),
        ("maximized", "0"),
    ]


def test_results_table_leaves_probe_units_out(probe_run: Path) -> None:
    section = _results(load_run(probe_run))
    assert section is not None and section.data["tasks"] == ["arc_local"]


def test_pdr_chart_has_a_bar_per_unit_and_model_and_draws_negative_left(probe_run: Path) -> None:
    run = load_run(probe_run)
    chart = pdr_chart([r for r in run.results.results if r.probe is not None])
    assert chart is not None
    with_pdr = [u for u, (_, metrics, _) in UNITS.items() if "pdr" in metrics]
    assert len(chart.bars) == len(with_pdr) * len(MODELS)
    negative = [b for b in chart.bars if b.value is not None and b.value < 0]
    assert [b.label for b in negative] == ["option_order/mmlu_local · small"]
    zero = chart.x(0)
    assert chart.x(negative[0].value or 0) < zero
    for bar in chart.bars:
        assert bar.low is not None and bar.high is not None and bar.value is not None
        assert chart.label_width <= chart.x(bar.low) <= chart.x(bar.value) <= chart.x(bar.high) <= chart.width


def test_examples_flips_first_at_most_twenty_per_unit(probe_run: Path) -> None:
    data = examples(probe_run)
    assert data["units"] == list(UNITS)
    for unit in UNITS:
        rows = [x for x in data["examples"] if x["unit"] == unit]
        assert 0 < len(rows) <= 20
        flags = [x["flip"] for x in rows]
        assert flags == sorted(flags, reverse=True)  # flips first
        for x in rows:
            assert x["variant"] != "clean"
            if x["flip"]:
                assert x["clean"][1] == 1.0 and x["perturbed"][1] == 0.0
    homoglyph = [x for x in data["examples"] if x["unit"] == "homoglyph/arc_local"]
    assert len(homoglyph) == 20  # 25 samples x 2 models, cut to 20
    assert len({(x["model"], x["doc"]) for x in homoglyph}) == 20  # distinct samples before repeats
    assert all(["insert", "\u0430"] in x["diff"] for x in homoglyph)
    formats = [x for x in data["examples"] if x["unit"] == "prompt_format/boolq_local"]
    assert all(x["clean"] is None and not x["flip"] for x in formats)  # no clean copy, so no flips


def test_example_data_are_clean_text(probe_run: Path) -> None:
    data = examples(probe_run)
    flat = json.dumps(data, ensure_ascii=False)
    assert "\u202e" not in flat and "\u200b" not in flat and "\x00" not in flat
    assert "[U+202E]evil" in flat and "⟨U+200B⟩" in flat
    assert "<script>window.__pwned = 1</script>" in flat  # kept as data, written as text


def test_page_stays_inert(probe_run: Path) -> None:
    page = (probe_run / "report.html").read_text(encoding="utf-8")
    tree = html.fromstring(page)
    types = [(s.get("type"), s.get("id")) for s in tree.findall(".//script")]
    assert types == [
        ("application/octet-stream", "robustness-data"),
        ("application/octet-stream", "sample-data"),
        (None, None),
    ]
    assert not tree.xpath("//img | //iframe | //object | //embed | //a[starts-with(@href, 'javascript')]")
    assert not tree.xpath("//@onerror | //@onload | //@onmouseover")
    assert "&lt;script&gt;window.__pwned = 8&lt;/script&gt;" in page  # a hostile format name, as text
    assert "\u202e" not in page and not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    section = tree.get_element_by_id("robustness")
    assert len(section.xpath(".//*[local-name()='svg']//*[@class='pdr-row']")) == 8
    assert len(section.xpath(".//table[@id='probe-prompt_format']//details[@class='formats']//pre")) == 2 * 3


def test_sample_browser_scores_probe_samples_by_their_own_metric(probe_run: Path) -> None:
    page = (probe_run / "report.html").read_text(encoding="utf-8")
    payload = re.search(r'id="sample-data">([A-Za-z0-9+/=]*)</script>', page)
    assert payload is not None
    primary = json.loads(gzip.decompress(base64.b64decode(payload.group(1))))["primary"]
    assert primary["option_order/mmlu_local"] == "acc" and primary["arc_local"] == "acc"


def test_a_pdr_far_below_minus_one_does_not_stretch_the_axis() -> None:
    from evalsuite.report.robustness import AXIS_FLOOR, Bar, BarChart

    chart = BarChart([Bar("u", -2.7, -10.0, -1.0)], AXIS_FLOOR - 0.1, 0.5)
    assert chart.x(-10.0) == chart.x(AXIS_FLOOR - 0.1) == chart.label_width  # cut at the edge
    assert chart.x(0.0) > chart.label_width
