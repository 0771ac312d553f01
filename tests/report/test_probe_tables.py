"""Each probe section's "Variant vs base on probes" table: the comparisons of its own units, those that
could not be made with their reason, and nothing shown when there are none."""

from __future__ import annotations

from pathlib import Path

from lxml import html

from evalsuite.report.hallucination import hallucination
from evalsuite.report.robustness import robustness
from evalsuite.rundir import load_run
from tests.report import hallucination_run as hallucination_data
from tests.report import probe_run as probe_data


def rows(page: Path, section: str) -> list[list[str]]:
    tree = html.fromstring(page.read_text(encoding="utf-8"))
    (table,) = tree.xpath(f'//table[@id="probe-comparisons-{section}"]')
    return [
        [" ".join(td.text_content().split()) for td in row.xpath("./td")]
        for row in table.xpath('.//tr[@class="probe-comparison"]')
    ]


def test_each_section_shows_the_comparisons_of_its_own_units(
    probe_run: Path, hallucination_run: Path
) -> None:
    robust = robustness(load_run(probe_run))
    assert robust is not None
    assert {c.unit for c in robust.data["compared"]} == set(probe_data.UNITS)
    found = hallucination(load_run(hallucination_run))
    assert found is not None
    assert {c.unit for c in found.data["compared"]} <= set(hallucination_data.UNITS)
    assert {c.kind for c in found.data["compared"]} == set(hallucination_data.UNITS.values())
    sections = [
        (probe_run, "robustness", robust.data),
        (hallucination_run, "hallucination", found.data),
    ]
    for page, section, data in sections:
        shown = rows(page / "report.html", section)
        assert len(shown) == len(data["compared"]) > 0
        first = data["compared"][0]
        assert shown[0][:3] == ["small vs base", f"{first.unit} · {first.metric}", str(first.n)]
        assert shown[0][-1] == first.reading


def test_what_could_not_be_compared_is_listed_with_its_reason(hallucination_run: Path) -> None:
    section = hallucination(load_run(hallucination_run))
    assert section is not None
    skipped = {(s.unit, s.metric): s.reason for s in section.data["skipped"]}
    # the hand-built HaluEval records keep no per-reply correctness among parsed replies
    assert skipped[("halueval", "accuracy_parsed")] == (
        "0 sample(s) scored by both; a paired comparison needs at least 2"
    )
    page = (hallucination_run / "report.html").read_text(encoding="utf-8")
    assert "Not compared: small vs base on halueval · accuracy_parsed: 0 sample(s) scored by both" in page


def test_no_table_without_comparisons(tmp_path: Path) -> None:
    run = probe_data.write_run(tmp_path / "plain", probe_data.plain_results(), [])
    assert 'id="probe-comparisons-' not in (run / "report.html").read_text(encoding="utf-8")
