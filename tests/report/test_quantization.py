"""The quantization panel and the models table's storage columns, from a hand-built run directory.

One baseline (``base``, float32), a noise floor (``base-batch64``: the same weights under another batch
size), two quantized variants (``q4``, ``q8``) and two tasks: ``arc`` scored by accuracy and ``wiki`` by
word perplexity. Every expected value below is written out by hand from the numbers put in the run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from lxml import html

from evalsuite.manifest import ModelInfoEntry
from evalsuite.records import (
    Discordant,
    MetricResult,
    Results,
    SampleRecord,
    ShiftResult,
    TaskResult,
    write_json,
    write_samples,
)
from evalsuite.report import render_report
from evalsuite.report.quantization import NOISE_FLOOR_LABEL, human_bytes, quantization_panel, storage
from evalsuite.rundir import load_run
from tests.report.forest_run import comparison
from tests.test_manifest import INFO as FULL_INFO
from tests.test_manifest import a_manifest, manifest_json

BASE, NOISE, Q4, Q8 = "base", "base-batch64", "q4", "q8"
ORDER_IN_RUN = (Q4, NOISE, Q8)  # as the config lists them: the panel reorders
ACC, PPL = ("arc", "acc"), ("wiki", "word_perplexity")

INFO: dict[str, dict[str, Any]] = {
    BASE: {  # a run written before weight_format & co. existed: the format falls back to the dtype
        "dtype": "float32",
        "quantization": "none",
        "weight_memory_bytes": 540_000_000,
    },
    NOISE: {
        "dtype": "float32",
        "quantization": "none",
        "weight_memory_bytes": 540_000_000,
        "weight_format": "GGUF F32",
        "bits_per_weight": 32.0,
        "kernel": "llama.cpp (llama-cpp-python 0.3.36)",
    },
    Q4: {  # no weight_format: the quantization's name; no kernel
        "dtype": "float32",
        "quantization": "gguf-q4_k_m",
        "weight_memory_bytes": 84_500_000,
        "bits_per_weight": 4.5,
        "group_size": 32,
    },
    Q8: {
        "dtype": "float32",
        "quantization": "gguf-q8_0",
        "weight_memory_bytes": 143_500_000,
        "weight_format": "GGUF Q8_0",
        "bits_per_weight": 8.5,
        "group_size": 32,
        "kernel": "llama.cpp (llama-cpp-python 0.3.36)",
    },
}
TELEMETRY: dict[str, dict[str, Any]] = {
    BASE: {
        "peak_memory_bytes": 1_200_000_000,
        "memory_kind": "process_rss_peak",
        "scored_tokens": 40_000,
        "scoring_seconds": 20.0,
    },
    NOISE: {
        "peak_memory_bytes": 1_100_000_000,
        "memory_kind": "process_rss_peak",
        "scored_tokens": 40_000,
        "scoring_seconds": 16.0,
    },
    Q4: {"peak_memory_bytes": 0, "memory_kind": "none", "scored_tokens": 40_000, "scoring_seconds": 0.0},
    Q8: {
        "peak_memory_bytes": 400_000_000,
        "memory_kind": "process_rss_peak",
        "scored_tokens": 30_000,
        "scoring_seconds": 8.0,
    },
}
VALUES = {  # (arc acc, wiki word perplexity)
    BASE: (0.60, 20.0),
    NOISE: (0.605, 20.002),
    Q4: (0.55, 23.0),
    Q8: (0.60, 20.1),
}
FLIPS = {NOISE: (1, 2), Q4: (6, 2), Q8: (1, 1)}  # arc: (b, c)
KL = {NOISE: (0.001, 0.01), Q4: (0.05, 0.6), Q8: (0.0008, 0.009)}  # token KL (mean, p99)


def metric(value: float, higher_is_better: bool) -> MetricResult:
    return MetricResult(
        value=value,
        stderr=0.01,
        ci_low=value - 0.02,
        ci_high=value + 0.02,
        ci_method="bootstrap",
        n=100,
        n_errors=0,
        higher_is_better=higher_is_better,
        aggregation="mean",
    )


def write_quant_run(folder: Path, info: dict[str, dict[str, Any]] | None = None, noise: bool = True) -> Path:
    """The run directory with report.html rendered from it; ``info`` replaces models' manifest info,
    ``noise=False`` leaves ``noise_floor`` out of the config (a run without a noise floor)."""
    run = folder / "quant"
    infos = {**INFO, **(info or {})}
    results = [
        TaskResult(
            model=m,
            task=task,
            output_type=kind,
            num_fewshot=0,
            primary_metric=name,
            metrics={name: metric(VALUES[m][i], name == "acc")},
        )
        for m in (BASE, *ORDER_IN_RUN)
        for i, ((task, name), kind) in enumerate(((ACC, "multiple_choice"), (PPL, "loglikelihood_rolling")))
    ]
    comparisons = []
    for variant in ORDER_IN_RUN:
        b, c = FLIPS[variant]
        kl, p99 = KL[variant]
        shift = ShiftResult(token_kl=kl, token_kl_p99=p99, tokens=5000)
        arc = comparison("arc", "acc", BASE, variant, VALUES[variant][0] - VALUES[BASE][0], "stats.margin")
        wiki = comparison("wiki", "word_perplexity", BASE, variant, VALUES[variant][1] - 20.0, "stats.margin")
        comparisons += [
            arc.model_copy(
                update={
                    "discordant": Discordant(both=50, baseline_only=b, variant_only=c, neither=40),
                    "shift": shift,
                }
            ),
            wiki.model_copy(update={"higher_is_better": False, "shift": shift}),
        ]
    config_models = [{"name": BASE, "backend": "llamacpp", "quantization": "none"}] + [
        {"name": m, "backend": "llamacpp", "baseline": BASE, "quantization": infos[m]["quantization"]}
        | ({"noise_floor": True} if m == NOISE and noise else {})
        for m in ORDER_IN_RUN
    ]
    manifest = manifest_json(
        run.name,
        config={"models": config_models},
        models={
            m: {
                "backend": "llamacpp",
                "baseline": None if m == BASE else BASE,
                "info": infos[m],
                "telemetry": TELEMETRY[m],
            }
            for m in (BASE, *ORDER_IN_RUN)
        },
        tasks={},
    )
    write_json(run / "manifest.json", manifest)
    document = Results(run=run.name, results=results, comparisons=comparisons)
    write_json(run / "results.json", document.model_dump(mode="json", by_alias=True))
    write_samples(run / "samples.jsonl", [SampleRecord(model=BASE, task="arc", doc_id=0, prompt="p")])
    (run / "report.html").write_text(render_report(load_run(run)), encoding="utf-8")
    return run


@pytest.fixture
def quant_run(tmp_path: Path) -> Path:
    return write_quant_run(tmp_path)


def table(run: Path) -> Any:
    panel = quantization_panel(load_run(run))
    assert panel is not None and len(panel.tables) == 1
    return panel.tables[0]


def test_rows_baseline_then_noise_floor_then_variants_by_bits(quant_run: Path) -> None:
    t = table(quant_run)
    assert t.baseline == BASE
    assert [(r.model, r.role) for r in t.rows] == [
        (BASE, "baseline"),
        (NOISE, "noise_floor"),
        (Q8, "variant"),  # 8.5 bits per weight
        (Q4, "variant"),  # 4.5
    ]
    assert [(c.task, c.metric, c.perplexity) for c in t.columns] == [
        ("arc", "acc", False),
        ("wiki", "word_perplexity", True),
    ]


def test_unknown_bits_per_weight_go_last(tmp_path: Path) -> None:
    unknown = {key: value for key, value in INFO[Q8].items() if key != "bits_per_weight"}
    t = table(write_quant_run(tmp_path, info={Q8: unknown}))
    assert [r.model for r in t.rows] == [BASE, NOISE, Q4, Q8]


def test_storage_memory_and_speed_per_row(quant_run: Path) -> None:
    rows = {r.model: r for r in table(quant_run).rows}
    assert rows[BASE].storage.format == "float32"  # no weight_format, no quantization: the dtype
    assert rows[Q4].storage.format == "gguf-q4_k_m"  # no weight_format: the quantization's name
    assert rows[Q8].storage.format == "GGUF Q8_0"
    assert (rows[Q8].storage.bits_per_weight, rows[Q8].storage.group_size) == (8.5, 32)
    assert rows[Q4].storage.kernel is None and rows[BASE].storage.bits_per_weight is None
    assert rows[Q8].weight_memory_bytes == 143_500_000
    assert rows[Q8].peak_memory_bytes == 400_000_000
    assert rows[Q4].peak_memory_bytes is None  # memory_kind "none": not measured
    assert rows[Q8].tokens_per_second == pytest.approx(3750.0)  # 30,000 tokens / 8 s
    assert rows[Q4].tokens_per_second is None  # no scoring time
    assert rows[BASE].tokens_per_second == pytest.approx(2000.0)


def test_differences_flips_kl_and_perplexity_ratio(quant_run: Path) -> None:
    rows = {r.model: r for r in table(quant_run).rows}
    arc, wiki = rows[Q4].cells
    assert arc is not None and wiki is not None
    assert arc.difference == pytest.approx(-0.05)
    assert (arc.ci_low, arc.ci_high) == pytest.approx((-0.13, 0.01))  # forest_run: -0.08 / +0.06
    assert (arc.baseline_only, arc.variant_only, arc.flips) == (6, 2, 8)
    assert arc.ratio is None  # accuracy: no ratio
    assert wiki.ratio == pytest.approx(1.15)  # 23.0 / 20.0
    assert wiki.flips is None  # a perplexity has no flips
    q8_wiki = rows[Q8].cells[1]
    assert q8_wiki is not None and q8_wiki.ratio == pytest.approx(1.005)  # 20.1 / 20.0
    noise_wiki = rows[NOISE].cells[1]
    assert noise_wiki is not None and noise_wiki.ratio == pytest.approx(1.0001)  # 20.002 / 20.0
    assert (rows[Q4].token_kl, rows[Q4].token_kl_p99) == (0.05, 0.6)
    assert rows[BASE].cells == (None, None) and rows[BASE].values == (0.60, 20.0)


def test_within_noise_marks(quant_run: Path) -> None:
    t = table(quant_run)
    assert t.noise is not None and t.noise.models == (NOISE,)
    assert (t.noise.flips, t.noise.token_kl, t.noise.token_kl_p99) == ((3, None), 0.001, 0.01)
    rows = {r.model: r for r in t.rows}
    assert rows[Q8].within_noise is True  # 2 flips <= 3, KL 0.0008 <= 0.001, p99 0.009 <= 0.01
    assert rows[Q4].within_noise is False  # 8 flips, KL 0.05, p99 0.6
    assert rows[Q8].judged_on == ("flips on arc", "token KL mean", "token KL p99")
    assert rows[BASE].within_noise is None and rows[NOISE].within_noise is None
    assert t.hint == ""


def test_no_noise_floor_says_how_to_add_one(tmp_path: Path) -> None:
    run = write_quant_run(tmp_path, noise=False)
    t = table(run)
    assert t.noise is None and all(r.within_noise is None for r in t.rows)
    assert "noise_floor: true" in t.hint and "variant_of: base" in t.hint and "batch_tokens" in t.hint
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "No noise floor for base" in page and NOISE_FLOOR_LABEL not in page


def test_no_panel_without_comparisons(tmp_path: Path) -> None:
    from evalsuite.rundir import RunDir

    assert (
        quantization_panel(RunDir(tmp_path, a_manifest("plain"), Results(run="plain", results=[]), ()))
        is None
    )


def test_storage_falls_back_and_human_bytes() -> None:
    old = storage(ModelInfoEntry(**{**FULL_INFO, "dtype": "bfloat16"}))  # a run before the fields
    assert (old.format, old.bits_per_weight, old.group_size, old.kernel) == ("bfloat16", None, None, None)
    assert storage(None, "bnb-nf4").format == "bnb-nf4"  # a model the manifest has no entry for
    assert storage(None, "none").format is None
    nan = ModelInfoEntry(**{**FULL_INFO, "bits_per_weight": float("nan"), "group_size": 0})
    assert (nan.bits_per_weight is not None, storage(nan).bits_per_weight) == (True, None)
    assert human_bytes(540_000_000) == "540.0 MB"
    assert human_bytes(1_200_000_000) == "1.2 GB"
    assert human_bytes(999) == "999 B"
    assert human_bytes(None) == "—" and human_bytes(0) == "—"


def cells(row: Any) -> list[str]:
    return [" ".join(td.text_content().split()) for td in row.findall("td")]


def test_panel_html(quant_run: Path) -> None:
    page = (quant_run / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"\bnan\b", page, re.IGNORECASE)
    tree = html.fromstring(page)
    panel = tree.get_element_by_id("quantization")
    assert [a.get("href") for a in tree.findall(".//nav/a")].index("#quantization") == 2  # after results
    rows = panel.xpath(".//table[@class='quant-table']//tr[contains(@class, 'quant-row')]")
    assert [r.get("class").split()[1] for r in rows] == ["baseline", "noise-floor", "variant", "variant"]
    base, noise, q8, q4 = (cells(r) for r in rows)
    # model, format, bits, group, weights, peak, tokens/s, KL mean, KL p99,
    # arc: Δ, flips; wiki: Δ, flips, ratio
    assert base == [
        "base (baseline)",
        "float32",
        "—",
        "—",
        "540.0 MB",
        "1.2 GB",
        "2000.0",
        "—",
        "—",
        "0.6000",
        "—",
        "20.0000",
        "—",
        "—",
    ]
    assert noise[0] == f"{NOISE_FLOOR_LABEL} {NOISE}"
    assert noise[1:4] == ["GGUF F32", "32.00", "—"] and noise[10] == "1/2" and noise[13] == "1.0001"
    assert q8 == [
        "q8 within noise",
        "GGUF Q8_0",
        "8.50",
        "32",
        "143.5 MB",
        "400.0 MB",
        "3750.0",
        "0.0008",
        "0.009",
        "+0.0000 [-0.0800, +0.0600]",
        "1/1",
        "+0.1000 [+0.0200, +0.1600]",
        "—",
        "1.0050",
    ]
    assert q4[0] == "q4 beyond noise" and q4[1:7] == ["gguf-q4_k_m", "4.50", "32", "84.5 MB", "—", "—"]
    assert q4[7:] == [
        "0.05",
        "0.6",
        "-0.0500 [-0.1300, +0.0100]",
        "6/2",
        "+3.0000 [+2.9200, +3.0600]",
        "—",
        "1.1500",
    ]
    band = " ".join(panel.xpath(".//p[contains(@class, 'quant-band')]")[0].text_content().split())
    assert "(base-batch64): flips (b + c) up to 3 on arc; token KL up to 0.001 (mean), 0.01 (p99)." in band


def test_models_table_names_format_bits_group_and_kernel(quant_run: Path) -> None:
    tree = html.fromstring((quant_run / "report.html").read_text(encoding="utf-8"))
    table_ = tree.get_element_by_id("models-table")
    head = [" ".join(th.text_content().split()) for th in table_.findall("tr")[0].findall("th")]
    at = {name: head.index(name) for name in ("format", "bits/weight", "group size", "kernel")}
    shown = {}
    for row in table_.findall("tr")[1:]:
        values = cells(row)
        shown[values[0]] = tuple(values[i] for i in at.values())
    assert shown == {
        BASE: ("float32", "—", "—", "—"),
        Q4: ("gguf-q4_k_m", "4.50", "32", "—"),
        NOISE: ("GGUF F32", "32.00", "—", "llama.cpp (llama-cpp-python 0.3.36)"),
        Q8: ("GGUF Q8_0", "8.50", "32", "llama.cpp (llama-cpp-python 0.3.36)"),
    }


def test_hostile_model_strings_are_escaped(tmp_path: Path) -> None:
    hostile = {**INFO[Q8], "weight_format": "<script>window.__pwned = 9</script>", "kernel": "\u202eevil\x1b"}
    run = write_quant_run(tmp_path, info={Q8: hostile})
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "<script>window.__pwned" not in page and "&lt;script&gt;window.__pwned = 9" in page
    assert "\u202e" not in page and "\x1b" not in page and "[U+202E]evil\u241b" in page


@pytest.mark.browser
def test_panel_in_a_real_browser(browser: Any, quant_run: Path) -> None:
    from tests.report.pages import assert_inert, errors, open_section, screenshot

    report = quant_run / "report.html"
    log = open_section(browser, report, "quantization", "Quantization")
    table_ = browser.find_element("id", "quant-0")
    assert table_.is_displayed() and table_.size["width"] > 600
    rows = table_.find_elements("css selector", "tr.quant-row")
    assert [r.find_element("css selector", "td").text.split("\n")[-1].split(" ")[0] for r in rows] == [
        BASE,
        NOISE,
        Q8,
        Q4,
    ]
    band = table_.find_element("css selector", "tr.noise-floor td")
    plain = table_.find_element("css selector", "tr.variant td")
    shade = band.value_of_css_property("background-color")
    assert shade != plain.value_of_css_property("background-color")  # the noise floor is a shaded band
    assert NOISE_FLOOR_LABEL in band.text
    mark = table_.find_element("css selector", "tr.variant .within-noise")
    assert mark.is_displayed() and mark.text == "within noise" and mark.size["width"] > 0
    assert len(table_.find_elements("css selector", ".within-noise")) == 1
    assert assert_inert(browser, report, 2, "#quantization *") <= {
        "DIV",
        "H2",
        "H3",
        "P",
        "TABLE",
        "TBODY",
        "TR",
        "TH",
        "TD",
        "SPAN",
        "BR",
    }
    assert errors(log + browser.get_log("browser")) == []
    screenshot(browser, "quantization", "quantization-panel.png")


def test_moe_routing_agreement_gets_a_column_only_where_measured(tmp_path: Path) -> None:
    plain = (write_quant_run(tmp_path / "plain") / "report.html").read_text(encoding="utf-8")
    assert "routing agreement" not in plain  # no MoE pair: no column
    run = write_quant_run(tmp_path / "moe")
    document = json.loads((run / "results.json").read_text(encoding="utf-8"))
    for c in document["comparisons"]:
        if c["variant"] == "q4":
            c["shift"].update(routing_agreement=0.875, routing_agreement_flipped=0.5, routing_items=16)
    write_json(run / "results.json", document)
    (run / "report.html").write_text(render_report(load_run(run)), encoding="utf-8")
    rows = {row.model: row for row in table(run).rows}
    assert (rows["q4"].routing_agreement, rows["q4"].routing_agreement_flipped) == (0.875, 0.5)
    assert rows["q8"].routing_agreement is None
    tree = html.fromstring((run / "report.html").read_text(encoding="utf-8"))
    cells_ = [" ".join(td.text_content().split()) for td in tree.find_class("q-routing")]
    assert cells_ == ["—", "—", "—", "0.875 (0.500)"]  # baseline, noise floor, q8, q4 (by bits)
