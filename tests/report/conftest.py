"""Runs with hostile content, and a headless Chromium to open their reports in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalsuite import cli
from evalsuite.report import chromium
from evalsuite.tasks import TaskCatalog, build_task, task_dirs

HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 2">',
    '<a href="javascript:window.__pwned = 3">click me</a>',
    "</script><script>window.__pwned = 4</script>",
    "<svg onload=window.__pwned=5><text>x</text></svg>",
    "\x1b[31mred ANSI\x1b[0m and a NUL \x00 and a bell \x07",
    "right-to-left \u202eevil\u202c override and \u2066isolate\u2069",
    "{{ 7 * 7 }} {% raw %} ${7*7} `backtick` \\u003cscript\\u003e",
    "' onmouseover='window.__pwned = 6' data-x='",
]
BIG = "A" * 1_000_000  # a 1 MB string


def hostile_documents() -> list[dict[str, Any]]:
    docs = []
    for i, text in enumerate(HOSTILE):
        docs.append(
            {
                "question": f"Q{i}: {text}",
                "choices": [text, "plain", f"<b>{i}</b>", "javascript:alert(1)"],
                "answer": i % 4,
            }
        )
    docs.append({"question": "a very long question " + BIG, "choices": ["a", "b", "c", "d"], "answer": 0})
    return docs


TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: "${{task_dir}}/hostile.jsonl"
test_split: test
output_type: {output_type}
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
{extra}
metric_list:
  - metric: {metric}
    aggregation: mean
    higher_is_better: true
"""


def write_hostile_run(folder: Path, data_dir: Path) -> Path:
    tasks = folder / "tasks"
    tasks.mkdir()
    (tasks / "hostile.jsonl").write_text("".join(json.dumps(d) + "\n" for d in hostile_documents()), "utf-8")
    (tasks / "hostile_mc.yaml").write_text(
        TASK.format(
            name="hostile_mc",
            output_type="multiple_choice",
            metric="acc",
            extra='doc_to_choice: "{{choices}}"\ndoc_to_target: "{{answer}}"',
        ),
        "utf-8",
    )
    (tasks / "hostile_gen.yaml").write_text(
        TASK.format(
            name="hostile_gen",
            output_type="generate_until",
            metric="exact_match",
            extra='doc_to_target: "{{choices[0]}}"\ngeneration_kwargs:\n  until: ["\\n"]\n  max_gen_toks: 8',
        ),
        "utf-8",
    )
    catalog = TaskCatalog(task_dirs((tasks,)), data_dir)
    rows: dict[str, list[dict[str, Any]]] = {"base": [], "variant": []}
    for name in ("hostile_mc", "hostile_gen"):
        prepared = build_task(catalog.resolve(name), limit=None, num_fewshot=None, seed=1)
        for instance in prepared.instances:
            for model, shift in (("base", 0), ("variant", 1)):
                if instance.request_type == "loglikelihood":
                    context, continuation = instance.args
                    best = (instance.doc_id + shift) % 4 == instance.idx
                    rows[model].append(
                        {
                            "request_type": "loglikelihood",
                            "context": context,
                            "continuation": continuation,
                            "logprob": -1.0 if best else -4.0,
                        }
                    )
                else:
                    text = HOSTILE[(instance.doc_id + shift) % len(HOSTILE)] + (
                        "" if instance.doc_id else BIG
                    )
                    rows[model].append(
                        {"request_type": "generate_until", "context": instance.args[0], "generation": text}
                    )
    models = []
    for model, answers in rows.items():
        path = folder / f"{model}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in answers), "utf-8")
        models.append(
            {"name": model, "backend": "replay", "path": str(path)}
            | ({"baseline": "base"} if model == "variant" else {})
        )
    config = {
        "run": {
            "name": "hostile",
            "output_dir": str(folder / "out"),
            "data_dir": str(data_dir),
            "task_dirs": [str(tasks)],
        },
        "stats": {"resamples": 500, "interval_resamples": 500},
        "models": models,
        "tasks": ["hostile_mc", "hostile_gen"],
        "gates": {
            "rules": [
                {
                    "kind": "threshold",
                    "task": "hostile_mc",
                    "min": 0.01,
                    "name": "<script>window.__pwned = 7</script>",
                }
            ]
        },
    }
    (folder / "hostile.yaml").write_text(yaml.safe_dump(config), "utf-8")
    assert cli.main(["run", str(folder / "hostile.yaml")]) in (0, 1)
    return folder / "out" / "hostile"


@pytest.fixture(scope="session")
def hostile_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    return write_hostile_run(tmp_path_factory.mktemp("hostile"), data_dir)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium through selenium; the test is skipped where Chromium is not installed."""
    if not chromium.available():
        pytest.skip(
            "Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)"
        )
    driver = chromium.driver(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def probe_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hand-built run with probes of all four robustness families (tests/report/probe_run.py)."""
    from tests.report.probe_run import write_probe_run

    return write_probe_run(tmp_path_factory.mktemp("probes"))


@pytest.fixture(scope="session")
def hallucination_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hand-built run with every hallucination probe kind (tests/report/hallucination_run.py)."""
    from tests.report.hallucination_run import write_hallucination_run

    return write_hallucination_run(tmp_path_factory.mktemp("hallucination"))
