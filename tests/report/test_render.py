"""report.html without a browser: self-contained, escaped, re-renderable from records alone."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import pytest
from lxml import html

from evalsuite import cli
from evalsuite.report.render import LABEL_ROOM, clean, forest, text_width, wrap
from evalsuite.rundir import load_run
from tests.report.conftest import BIG


def test_run_directory_holds_every_output(hostile_run: Path) -> None:
    names = sorted(p.name for p in hostile_run.iterdir())
    assert names == [
        "checksums.sha256",  # the digests `report`, `gate` and `compare` check (evalsuite/rundir.py)
        "junit.xml",
        "manifest.json",
        "report.html",
        "results.json",
        "samples.jsonl",
        "summary.md",
    ]


def test_report_is_self_contained(hostile_run: Path) -> None:
    page = (hostile_run / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched
    assert "@import" not in page and "url(" not in page


def test_hostile_strings_are_escaped_where_they_land(hostile_run: Path) -> None:
    page = (hostile_run / "report.html").read_text(encoding="utf-8")
    tree = html.fromstring(page)
    scripts = tree.findall(".//script")
    assert [s.get("type") for s in scripts] == ["application/octet-stream", None]  # ours only
    assert not tree.xpath("//img") and not tree.xpath("//a[starts-with(@href, 'javascript')]")
    assert not tree.xpath("//@onerror | //@onload | //@onmouseover")
    assert "&lt;script&gt;window.__pwned = 7&lt;/script&gt;" in page  # a hostile gate name, as text
    assert "\x00" not in page and "\x1b" not in page and "\u202e" not in page


def test_sample_data_round_trips_and_stays_inert(hostile_run: Path) -> None:
    page = (hostile_run / "report.html").read_text(encoding="utf-8")
    payload = re.search(
        r'<script type="application/octet-stream" id="sample-data">([A-Za-z0-9+/=]*)</script>', page
    )
    assert payload is not None  # base64 only: nothing in it can close the script element
    data = json.loads(gzip.decompress(base64.b64decode(payload.group(1))))
    assert data["models"] == ["base", "variant"] and set(data["tasks"]) == {"hostile_gen", "hostile_mc"}
    generations = [row[6] for row in data["rows"] if row[6] is not None]
    assert any("<script>window.__pwned = 1</script>" in g for g in generations)  # kept, as data
    assert any(len(g) >= len(BIG) for g in generations)
    assert all("\x00" not in g and "\u202e" not in g for g in generations)
    # the controls made visible: ESC, NUL and BEL as their Control Pictures, bidi overrides as code points
    assert "\u241b[31mred ANSI\u241b[0m and a NUL \u2400 and a bell \u2407" in generations
    assert "right-to-left [U+202E]evil[U+202C] override and [U+2066]isolate[U+2069]" in generations


def test_report_command_rerenders_from_records(hostile_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (hostile_run / "report.html").read_text(encoding="utf-8")
    (hostile_run / "report.html").unlink()
    assert cli.main(["report", str(hostile_run)]) == 0
    assert (hostile_run / "report.html").read_text(encoding="utf-8") == before
    capsys.readouterr()


def test_clean_makes_controls_visible() -> None:
    assert clean("a\x00b\x1b[0m\x7f\u202eZ\nok\t") == "a\u2400b\u241b[0m\u2421[U+202E]Z\nok\t"


def test_forest_plots_the_improvement(hostile_run: Path) -> None:
    comparisons = load_run(hostile_run).results.comparisons
    plot = forest(comparisons)
    assert plot is not None and len(plot.rows) == len(comparisons)
    for row in plot.rows:
        assert plot.lo <= row.low <= row.difference <= row.high <= plot.hi
        assert plot.label_width <= plot.x(row.low) <= plot.x(row.high) <= plot.width


def test_forest_labels_wrap_whole_and_the_label_column_fits_them(tmp_path: Path) -> None:
    from tests.report.forest_run import write_forest_run

    comparisons = load_run(write_forest_run(tmp_path)).results.comparisons
    plot = forest([c for c in comparisons if c.metric == "exact_match"])
    assert plot is not None
    for row, c in zip(plot.rows, [c for c in comparisons if c.metric == "exact_match"], strict=True):
        label = clean(f"{c.variant} vs {c.baseline} · {c.task}")
        assert "".join(row.lines).replace(" ", "") == label.replace(" ", "")  # wrapped, nothing dropped
        assert all(text_width(line) <= min(LABEL_ROOM, plot.label_width) for line in row.lines)
        assert row.height >= 13 * len(row.lines)
    assert max(len(row.lines) for row in plot.rows) > 1
    page = (tmp_path / "forest" / "report.html").read_text(encoding="utf-8")
    assert "margin 0.1, from gate &#39;quantization is safe&#39;" in page


@pytest.mark.parametrize(
    "text", ["", "short", "x" * 300, "a-b-c-" * 60, "漢字" * 80, "word " * 100, "e\u0301" * 200]
)
def test_wrap_keeps_every_character_within_the_room(text: str) -> None:
    lines = wrap(text, 120)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert all(text_width(line) <= 120 for line in lines)
