"""A 200,000-record run through the replay backend: report size and first render in headless Chromium.

    python benchmarks/report_scale.py --data-dir ../shared/data [--models 25] [--workdir /tmp/scale]

25 scripted models x (TriviaQA 3,000 + LAMBADA 5,153 samples) = 203,825 sample records. Targets
(issue 4): report.html under 20 MB, first screen rendered in under 3 s. Needs Debian's chromium and
chromium-driver for the render timing; without them only the size is measured.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from evalsuite import cli
from evalsuite.report import chromium
from evalsuite.tasks import TaskCatalog, build_task, task_dirs

TASKS = ("triviaqa_local", "lambada_local")


def answers(data_dir: Path, models: int, seed: int) -> list[list[dict[str, Any]]]:
    """Per model, replay rows: right on a model-specific share of questions, varied log-likelihoods."""
    rng = np.random.default_rng(seed)
    catalog = TaskCatalog(task_dirs(), data_dir)
    per_model: list[list[dict[str, Any]]] = [[] for _ in range(models)]
    seen: set[str] = set()
    for name in TASKS:
        prepared = build_task(catalog.resolve(name), limit=None, num_fewshot=None, seed=seed)
        for instance in prepared.instances:
            key = json.dumps([instance.request_type, instance.args[0], instance.args[1]], default=str)
            if key in seen:  # a request asked twice (LAMBADA repeats a few) is recorded once
                continue
            seen.add(key)
            target = prepared.task.doc_to_target(instance.doc)
            for m in range(models):
                right = rng.random() < 0.5 + 0.01 * m
                if instance.request_type == "generate_until":
                    aliases = target if isinstance(target, list) else [target]
                    text = str(aliases[0]) if right else "I do not know"
                    per_model[m].append(
                        {
                            "request_type": "generate_until",
                            "context": instance.args[0],
                            "generation": " " + text,
                        }
                    )
                else:
                    context, continuation = instance.args
                    per_model[m].append(
                        {
                            "request_type": "loglikelihood",
                            "context": context,
                            "continuation": continuation,
                            "logprob": float(-rng.gamma(2.0, 2.0)),
                            "is_greedy": bool(right),
                        }
                    )
    return per_model


def first_render_seconds(report: Path) -> dict[str, float | None] | None:
    if not chromium.available():
        return None
    driver = chromium.driver(Path(tempfile.mkdtemp()))
    try:
        start = time.perf_counter()
        driver.get(report.resolve().as_uri())  # returns once the page has loaded
        loaded = time.perf_counter() - start
        paint = driver.execute_script(
            "const p = performance.getEntriesByName('first-contentful-paint')[0];"
            "return p ? p.startTime : null"
        )
        nav = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return [n.domContentLoadedEventEnd, n.loadEventEnd]"
        )
        driver.find_element("css selector", "#sample-browser > summary").click()
        start = time.perf_counter()
        while "shown" not in driver.find_element("id", "f-count").text:
            time.sleep(0.05)
        browse = time.perf_counter() - start
        return {
            "first_contentful_paint_s": None if paint is None else paint / 1000,
            "dom_content_loaded_s": nav[0] / 1000,
            "load_event_s": nav[1] / 1000,
            "get_returned_s": loaded,
            "open_sample_browser_s": browse,
        }
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--models", type=int, default=25)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="evalsuite-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    models = []
    for m, rows in enumerate(answers(args.data_dir, args.models, seed=0)):
        path = work / f"model{m}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        models.append(
            {"name": f"model{m}", "backend": "replay", "path": str(path)}
            | ({"baseline": "model0"} if m else {})
        )
    prepared = time.perf_counter() - start
    config = {
        "run": {"name": "scale", "output_dir": str(work / "out"), "data_dir": str(args.data_dir)},
        "stats": {"resamples": 2000, "kl_samples": 0},
        "models": models,
        "tasks": list(TASKS),
    }
    (work / "scale.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    start = time.perf_counter()
    code = cli.main(["run", str(work / "scale.yaml")])
    run_seconds = time.perf_counter() - start
    run_dir = work / "out" / "scale"
    records = sum(1 for _ in (run_dir / "samples.jsonl").open(encoding="utf-8"))
    size = (run_dir / "report.html").stat().st_size
    timing = first_render_seconds(run_dir / "report.html")
    print(
        json.dumps(
            {
                "exit_code": code,
                "records": records,
                "replay_files_s": round(prepared, 1),
                "run_s": round(run_seconds, 1),
                "report_mb": round(size / 1e6, 2),
                "samples_jsonl_mb": round((run_dir / "samples.jsonl").stat().st_size / 1e6, 1),
                "chromium": timing,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
