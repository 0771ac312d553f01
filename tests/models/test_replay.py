"""The replay backend: recorded answers drive a whole run; gaps are per-sample errors; bad files exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from lm_eval.api.instance import Instance

from evalsuite import cli
from evalsuite.config import ModelConfig
from evalsuite.errors import BackendError, DataError
from evalsuite.models import BACKENDS, LoadContext
from evalsuite.records import read_samples
from evalsuite.tasks import TaskCatalog, build_task, task_dirs


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def load(path: Path, tmp_path: Path) -> Any:
    return BACKENDS.get("replay")(
        ModelConfig(name="r", backend="replay", path=str(path)), LoadContext(tmp_path, 0)
    )


def test_answers_each_request_type(tmp_path: Path) -> None:
    replay = write_jsonl(
        tmp_path / "answers.jsonl",
        [
            {
                "request_type": "loglikelihood",
                "context": "Q",
                "continuation": " A",
                "logprob": -0.5,
                "is_greedy": True,
            },
            {"request_type": "loglikelihood_rolling", "text": "doc", "logprob": -9.0},
            {"request_type": "generate_until", "context": "Q", "generation": " Paris"},
        ],
    )
    backend = load(replay, tmp_path)
    assert backend.loglikelihood([Instance("loglikelihood", {}, ("Q", " A"), 0)]) == [(-0.5, True)]
    assert backend.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("doc",), 0)]) == [-9.0]
    assert backend.generate_until([Instance("generate_until", {}, ("Q", {"until": ["\n"]}), 0)]) == [" Paris"]
    with pytest.raises(BackendError, match="no recorded loglikelihood answer"):
        backend.loglikelihood([Instance("loglikelihood", {}, ("Q", " B"), 0)])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "answers.jsonl:2: not valid JSON"),
        ('{"request_type": "loglikelihood", "context": "Q"}', "answers.jsonl:2: loglikelihood.continuation"),
        ('{"request_type": "teleport", "context": "Q"}', "answers.jsonl:2: "),
        ('{"request_type": "loglikelihood_rolling", "text": "x", "logprob": 3.0}', "less than or equal to 0"),
        ('{"request_type": "generate_until", "context": "Q", "generation": "x", "extra": 1}', "extra"),
        ('{"request_type": "generate_until", "context": "Q", "generation": "other"}', "different answer"),
    ],
)
def test_malformed_recordings_are_data_errors(line: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text(
        json.dumps({"request_type": "generate_until", "context": "Q", "generation": "x"}) + "\n" + line
    )
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        load(path, tmp_path)


def scripted_answers(data_dir: Path, wrong_doc: int, missing_doc: int) -> list[dict[str, Any]]:
    """Replay rows that make the model pick the right answer except on two documents."""
    spec = TaskCatalog(task_dirs(), data_dir).resolve("quickstart_mc")
    prepared = build_task(spec, limit=5, num_fewshot=None, seed=1)
    rows = []
    for instance in prepared.instances:
        if instance.doc_id == missing_doc:
            continue
        gold = prepared.task.doc_to_target(instance.doc)
        right = instance.idx == gold
        if instance.doc_id == wrong_doc:
            right = not right
        context, continuation = instance.args
        rows.append(
            {
                "request_type": "loglikelihood",
                "context": context,
                "continuation": continuation,
                "logprob": -1.0 if right else -5.0,
            }
        )
    return rows


def test_replay_run_scores_scripted_outputs_and_records_gaps(data_dir: Path, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "answers.jsonl", scripted_answers(data_dir, wrong_doc=1, missing_doc=3))
    config = {
        "run": {"name": "replayed", "output_dir": "out", "data_dir": str(data_dir)},
        "models": [{"name": "served", "backend": "replay", "path": "answers.jsonl"}],
        "tasks": [{"name": "quickstart_mc", "limit": 5}],
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert cli.main(["run", str(tmp_path / "run.yaml")]) == 0
    records = {r.doc_id: r for r in read_samples(tmp_path / "out" / "replayed" / "samples.jsonl")}
    assert [records[d].metrics.get("acc") for d in range(5)] == [1.0, 0.0, 1.0, None, 1.0]
    assert records[3].error is not None and "no recorded loglikelihood answer" in records[3].error
    results = json.loads((tmp_path / "out" / "replayed" / "results.json").read_text())
    acc = results["results"][0]["metrics"]["acc"]
    assert acc["value"] == pytest.approx(0.75) and acc["n"] == 4 and acc["n_errors"] == 1


def test_missing_replay_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = {
        "models": [{"name": "served", "backend": "replay", "path": "./nowhere.jsonl"}],
        "tasks": ["quickstart_mc"],
        "run": {"output_dir": "out"},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert cli.main(["run", str(tmp_path / "run.yaml")]) == 2
    assert "nowhere.jsonl does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
