"""The hallucination section: a table per kind, reliability diagrams, and each unit's worst cases."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lxml import html

from evalsuite.probes.registry import families, probe_kind
from evalsuite.records import ReliabilityBin, Results, SampleRecord
from evalsuite.report import SECTIONS, render_report
from evalsuite.report.dynamic import dynamic
from evalsuite.report.hallucination import Reliability, hallucination, reliability
from evalsuite.report.render import _manifest, _results
from evalsuite.report.robustness import robustness
from evalsuite.report.worst_cases import Worst, softmax, worst_cases
from evalsuite.rundir import RunDir, load_run
from tests.report import hallucination_run as built
from tests.report.hallucination_run import BINS, UNITS, result
from tests.report.probe_run import MODELS
from tests.test_manifest import a_manifest


def test_no_section_without_hallucination_units(tmp_path: Path, probe_run: Path) -> None:
    plain = RunDir(tmp_path, a_manifest("plain"), Results(run="plain", results=[]), ())
    assert hallucination(plain) is None
    assert hallucination(load_run(probe_run)) is None  # robustness probes only


def test_registered_after_robustness_before_the_manifest() -> None:
    assert SECTIONS.count(hallucination) == 1
    # the dynamic-evaluation section follows it, then the manifest
    assert SECTIONS.index(robustness) + 1 == SECTIONS.index(hallucination) == SECTIONS.index(_manifest) - 2
    assert SECTIONS.index(dynamic) == SECTIONS.index(hallucination) + 1


KINDS = ["fabricated", "unanswerable", "halueval", "self_consistency", "calibration", "faithfulness"]


def test_a_table_for_every_kind_with_its_metrics_in_order() -> None:
    tables = families("hallucination")
    assert [family.key for family, _ in tables] == KINDS
    for family, names in tables:
        assert names == (family.key,)  # a table each
        kind = probe_kind(family.key)
        assert family.metrics == kind.metrics
        assert list(kind.report.labels) == list(kind.metrics)
        assert all(heading and meaning for heading, meaning in kind.report.labels.values())


def test_one_row_per_unit_and_model_in_its_kinds_table(hallucination_run: Path) -> None:
    section = hallucination(load_run(hallucination_run))
    assert section is not None and section.anchor == "hallucination"
    tables = {family.key: rows for family, rows in section.data["tables"]}
    assert list(tables) == KINDS
    for family, rows in section.data["tables"]:
        assert [(r.unit, r.model) for r in rows] == [
            (unit, model) for model in MODELS for unit, kind in UNITS.items() if kind == family.key
        ]
        assert all(len(r.metrics) == len(family.metrics) and all(r.metrics) for r in rows)


def test_results_table_and_robustness_leave_hallucination_units_out(hallucination_run: Path) -> None:
    run = load_run(hallucination_run)
    results = _results(run)
    assert results is not None and results.data["tasks"] == ["arc_local"]
    assert robustness(run) is None


def test_a_diagram_per_calibration_unit_and_model_with_its_non_empty_bins(hallucination_run: Path) -> None:
    section = hallucination(load_run(hallucination_run))
    assert section is not None
    diagrams = section.data["diagrams"]
    assert [d.label for d in diagrams] == [f"calibration/arc_local · {m}" for m in MODELS]
    for diagram, model in zip(diagrams, MODELS, strict=True):
        assert [(b.count, b.accuracy) for b in diagram.bins] == [(n, a) for n, a in BINS[model] if n]


def test_reliability_geometry() -> None:
    bins = [ReliabilityBin(low=0.8, high=0.9, count=5, mean_confidence=0.85, accuracy=0.5)]
    d = Reliability("u", bins, None, size=200, left=40, top=10, bottom=30)
    assert (d.x(0), d.x(1), d.y(0), d.y(1)) == (40, 240, 210, 10)  # the plot square
    assert d.x(0.8) == 200 and d.x(0.9) == 220 and d.y(0.5) == 110
    assert d.x(1.5) == d.x(1) and d.y(-1) == d.y(0)  # kept inside the frame
    assert (d.width, d.height) == (40 + 200 + 14, 10 + 200 + 30) and d.most == 5
    empty = reliability(result("calibration/arc_local", "base", 0).model_copy(update={"probe": None}))
    assert empty.bins == [] and empty.most == 0


def test_drawn_bars_match_their_bins(hallucination_run: Path) -> None:
    tree = html.fromstring((hallucination_run / "report.html").read_text(encoding="utf-8"))
    svgs = tree.xpath("//*[local-name()='svg'][@class='reliability-diagram']")
    assert len(svgs) == len(MODELS)
    d = Reliability("", [], None)  # the default geometry the report draws with
    for svg, model in zip(svgs, MODELS, strict=True):
        diagonal = svg.xpath(".//*[local-name()='line'][@class='rel-diagonal']")[0]
        assert [float(diagonal.get(k)) for k in ("x1", "y1", "x2", "y2")] == [d.x(0), d.y(0), d.x(1), d.y(1)]
        bars = svg.xpath(".//*[local-name()='rect'][@class='rel-bar']")
        counts = svg.xpath(".//*[local-name()='text'][@class='rel-count']")
        shown = [(n, a) for n, a in BINS[model] if n]
        assert len(bars) == len(counts) == len(shown)
        for bar, count, (n, accuracy), low in zip(bars, counts, shown, _lows(model), strict=True):
            x, y, width, height = (float(bar.get(k)) for k in ("x", "y", "width", "height"))
            assert x == d.x(low) + 1 and x + width == d.x(low + 0.1) - 1
            assert accuracy is not None and y + height == d.y(0)
            assert y == (d.y(accuracy) if accuracy > 0 else d.y(0) - 1.5)  # a 0-accuracy bar still shows
            assert count.text == str(n) and float(count.get("y")) < y


def _lows(model: str) -> list[float]:
    return [i / 10 for i, (n, _) in enumerate(BINS[model]) if n]


# --- worst cases on hand-built records ----------------------------------------------------------------


def picked(records: list[SampleRecord], unit: str, limit: int = 15) -> Worst:
    (worst,) = worst_cases(records, [result(unit, "base", len(records))], limit)
    return worst


def test_fabricated_worst_are_hallucinations_least_like_an_abstention_then_controls() -> None:
    records = [
        built.fabricated(0, "base", made_up=True, abstained=True),  # fine
        built.fabricated(1, "base", made_up=True, abstained=False, similarity=0.5),
        built.fabricated(2, "base", made_up=True, abstained=False, similarity=0.1),
        built.fabricated(3, "base", made_up=False, abstained=True),  # a control abstained on
        built.fabricated(4, "base", made_up=False, abstained=False, correct=False),
        built.fabricated(5, "base", made_up=False, abstained=False, correct=True),  # fine
        built.fabricated(6, "small", made_up=True, abstained=False),  # another model
    ]
    worst = picked(records, "fabricated")
    assert [c.doc for c in worst.cases] == [2, 1, 4, 3]
    assert (worst.failures, worst.records) == (4, 6)
    first = worst.cases[0]
    assert first.label.startswith("hallucinated") and "similarity to an abstention: 0.10" in first.decision
    assert "does not exist" in first.expected and first.answer.startswith("It was founded by")
    assert (
        worst.cases[3].label == "control abstained on"
        and "rule: i do not know <script>" in worst.cases[3].decision
    )
    assert worst.cases[2].expected.startswith("one of: Steve Jobs")


def test_unanswerable_worst_are_answers_then_abstentions_then_wrong_answers() -> None:
    records = [
        built.unanswerable(0, "base", no_answer=False, abstained=False, right=False),
        built.unanswerable(1, "base", no_answer=False, abstained=True),
        built.unanswerable(2, "base", no_answer=True, abstained=False),
        built.unanswerable(3, "base", no_answer=True, abstained=True),  # fine
        built.unanswerable(4, "base", no_answer=False, abstained=False, right=True),  # fine
    ]
    worst = picked(records, "unanswerable")
    assert [c.doc for c in worst.cases] == [2, 1, 0]
    assert worst.cases[0].question.startswith("Passage: The bridge") and "Question: When was it built?" in (
        worst.cases[0].question
    )
    assert worst.cases[0].expected == "an abstention" and "abstained" in worst.cases[1].decision


def test_halueval_worst_are_missed_hallucinations_then_false_alarms_then_unparseable() -> None:
    records = [
        built.halueval(0, "base", hallucinated=True, judgement=None),
        built.halueval(1, "base", hallucinated=False, judgement=True),
        built.halueval(2, "base", hallucinated=True, judgement=False),
        built.halueval(3, "base", hallucinated=True, judgement=True),  # fine
        built.halueval(4, "base", hallucinated=False, judgement=False),  # fine
    ]
    worst = picked(records, "halueval")
    assert [c.doc for c in worst.cases] == [2, 1, 0]
    assert [c.decision for c in worst.cases] == [
        "judged right (No)",
        "judged hallucinated (Yes)",
        "no judgement found",
    ]
    assert (
        "Answer judged: Paris" in worst.cases[0].question and "right answer: Lyon" in worst.cases[0].expected
    )


def test_faithfulness_worst_are_answers_from_memory_first() -> None:
    records = [
        built.faithfulness(0, "base", counterfactual=False, follows=False),
        built.faithfulness(1, "base", counterfactual=True, follows=False),
        built.faithfulness(2, "base", counterfactual=True, follows=False, memory=True),
        built.faithfulness(3, "base", counterfactual=True, follows=True),  # fine
    ]
    worst = picked(records, "faithfulness")
    assert [c.doc for c in worst.cases] == [2, 1, 0]
    assert worst.cases[0].answer == "Paris" and "answered from memory: yes" in worst.cases[0].decision
    assert worst.cases[0].expected == "Marseille (from memory it would be: Paris)"


def test_self_consistency_worst_are_wrong_answers_with_the_lowest_entropy() -> None:
    unit = "self_consistency/triviaqa_local"
    records = [
        *built.consistency(0, "base", wrong=True, entropy=1.1, disagreement=0.5),
        *built.consistency(1, "base", wrong=True, entropy=0.0, disagreement=0.0),
        *built.consistency(2, "base", wrong=False, entropy=0.0, disagreement=0.0),  # right
        *built.consistency(3, "base", wrong=True, entropy=0.64, disagreement=0.25),
    ]
    worst = picked(records, unit)
    assert [c.doc for c in worst.cases] == [1, 3, 0]
    confident = worst.cases[0]
    assert confident.label.startswith("confidently wrong") and confident.answer.startswith("Marlowe")
    assert "semantic entropy 0.000" in confident.decision and "[cluster 0]" in confident.decision
    assert confident.expected.startswith("one of: Shakespeare")


def test_calibration_worst_are_the_most_confident_wrong_predictions() -> None:
    unit = "calibration/arc_local"
    records = [
        built.calibration(0, "base", probabilities=[0.6, 0.3, 0.1], gold=1),
        built.calibration(1, "base", probabilities=[0.1, 0.9, 0.0001], gold=0),
        built.calibration(2, "base", probabilities=[0.8, 0.1, 0.1], gold=0),  # right
    ]
    worst = picked(records, unit)
    assert [c.doc for c in worst.cases] == [1, 0]
    assert worst.cases[0].answer.startswith("option 1") and "p = 0.900" in worst.cases[0].answer
    assert worst.cases[0].expected.startswith("option 0") and "p = 0.100" in worst.cases[0].expected


def test_at_most_the_limit_and_errors_left_out() -> None:
    records = [built.fabricated(i, "base", made_up=True, abstained=False) for i in range(20)]
    records.append(records[0].model_copy(update={"doc_id": 99, "error": "backend failed"}))
    worst = picked(records, "fabricated")
    assert len(worst.cases) == 15 and worst.failures == 20 and worst.records == 20
    assert [c.doc for c in worst.cases] == list(range(15))  # ties in document order


def test_softmax_of_failed_options() -> None:
    assert softmax([None, None]) == [0.5, 0.5]
    assert softmax([0.0, None]) == [1.0, 0.0]
    assert softmax([0.0, 0.0]) == pytest.approx([0.5, 0.5])


# --- the rendered run ---------------------------------------------------------------------------------


def test_every_unit_and_model_has_a_worst_list_cut_at_fifteen(hallucination_run: Path) -> None:
    section = hallucination(load_run(hallucination_run))
    assert section is not None
    lists = section.data["worst"]
    assert [(w.unit, w.model) for w in lists] == [(u, m) for m in MODELS for u in UNITS]
    assert all(len(w.cases) == min(15, w.failures) for w in lists)
    for unit in UNITS:
        assert max(w.failures for w in lists if w.unit == unit) > 15, unit


def test_worst_cases_are_clean_text(hallucination_run: Path) -> None:
    section = hallucination(load_run(hallucination_run))
    assert section is not None
    flat = json.dumps([c.__dict__ for w in section.data["worst"] for c in w.cases], ensure_ascii=False)
    assert "\u202e" not in flat and "\x00" not in flat and "\x1b" not in flat
    assert "[U+202E]evil" in flat and "<script>window.__pwned = 1</script>" in flat  # kept, as text


def test_page_stays_inert(hallucination_run: Path) -> None:
    page = (hallucination_run / "report.html").read_text(encoding="utf-8")
    tree = html.fromstring(page)
    assert [(s.get("type"), s.get("id")) for s in tree.findall(".//script")] == [
        ("application/octet-stream", "sample-data"),
        (None, None),
    ]
    assert not tree.xpath("//img | //iframe | //object | //embed | //a[starts-with(@href, 'javascript')]")
    assert not tree.xpath("//@onerror | //@onload | //@onmouseover")
    assert "\u202e" not in page and not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    section = tree.get_element_by_id("hallucination")
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html.tostring(section, encoding="unicode")
    assert len(section.xpath(".//details[@class='worst']")) == len(UNITS) * len(MODELS)
    assert not section.xpath(".//*[local-name()='script']")


def test_a_unit_without_failures_says_so(tmp_path: Path) -> None:
    records = (built.halueval(0, "base", hallucinated=True, judgement=True),)
    results = Results(run="x", results=[result("halueval", "base", 1)])
    page = render_report(RunDir(tmp_path, a_manifest("x"), results, records))
    assert "halueval · base: no failures in 1 records." in page
