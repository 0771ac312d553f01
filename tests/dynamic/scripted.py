"""A scripted model for the dynamic probes: it answers by a fixed behaviour, and shows token statistics
whose Min-K%++ score it decides, so the expected metrics follow from the behaviour and the data.

Behaviours (the model's ``path`` is ``scripted/<behaviour>``):

    reasoner    GSM-Symbolic: every problem right: an original's answer looked up in the raw GSM8K test
                file by its question, a fresh instance's read from the request's document (the answer
                key the template program computed; the programs are checked against GSM8K's answers in
                test_gsm_symbolic.py). DyVal: right by the independent reader of test_dyval.py.
                Min-K%++ score 0 on every text.
    memorizer   GSM-Symbolic: the originals right (from the raw file), every fresh instance wrong.
                DyVal: every item wrong. Min-K%++ score +1 on GSM8K's own questions, -1 on other texts.
    shallow     DyVal: right on items of at most SHALLOW graph nodes (the statements it counts in the
                prompt), wrong on larger ones. GSM-Symbolic: every problem wrong. Min-K%++ score 0.

A prompt the behaviour cannot place raises, so it shows up as a per-sample error.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from lm_eval.api.instance import Instance
from numpy.typing import NDArray

from evalsuite import cli
from evalsuite.config import ModelConfig
from evalsuite.models.base import BACKENDS, Backend, LoadContext, ModelInfo, Telemetry

BACKEND = "dynamic-scripted"
BEHAVIOURS = ("reasoner", "memorizer", "shallow")
# A wrong answer (no GSM-Symbolic or DyVal answer is this number) with hostile text the report must show
# as text: markup, a script, a bidi override.
WRONG = (
    'I am not sure <script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2"> '
    "right-to-left \u202eevil\u202c.\nAnswer: 987654321"
)
SHALLOW = 6  # graph nodes the shallow behaviour still gets right: level 1 (6 nodes), not 2 (10)

_GSM = re.compile(r"\nQuestion: (?P<q>.*)\nSolution:\Z", re.DOTALL)
_DYVAL = re.compile(r"\AProblem: (?P<q>.*)\n[^\n]*\nSolution:\Z", re.DOTALL)


@functools.cache
def gsm8k_answers(data_dir: Path) -> dict[str, str]:
    """GSM8K test question -> the number after its solution's "####"."""
    out = {}
    for line in (data_dir / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["question"]] = row["answer"].rsplit("####", 1)[1].strip().replace(",", "")
    return out


class ScriptedBackend(Backend):
    def __init__(self, behaviour: str, data_dir: Path) -> None:
        super().__init__()
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}")
        self.behaviour = behaviour
        self.originals = gsm8k_answers(data_dir)

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        raise NotImplementedError

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        return [self.answer(str(r.args[0]), r.doc) for r in requests]

    def answer(self, prompt: str, doc: dict[str, object]) -> str:
        if found := _GSM.search(prompt):
            question = found["q"]
            if self.behaviour == "shallow":
                return WRONG
            if question in self.originals:
                return f"Working it out step by step.\nAnswer: {self.originals[question]}"
            return f"Working it out.\nAnswer: {doc['answer']}" if self.behaviour == "reasoner" else WRONG
        if found := _DYVAL.search(prompt):
            from tests.dynamic.test_dyval import READERS

            question = found["q"]
            statements = question.count("\n")  # a line per graph node, then the question
            if self.behaviour == "reasoner" or (self.behaviour == "shallow" and statements <= SHALLOW):
                return f"Reasoning.\nAnswer: {READERS[str(doc['family'])](question).answer}"
            return WRONG
        raise LookupError(f"the scripted model cannot place this prompt: {prompt[-120:]!r}")

    def describe(self) -> ModelInfo:
        return ModelInfo("unknown", "scripted", 0, 0, "n/a", "none", 0, "0" * 32, "none")

    def telemetry(self) -> Telemetry:
        return Telemetry(0, "none", 0, 0.0, 0, 0.0)


class DistributionsBackend(ScriptedBackend):
    """The scripted model with the token statistics Min-K%++ reads (a model whose path ends in "+plain"
    is the scripted model without them, as a served model is)."""

    def score(self, text: str) -> float:
        if self.behaviour == "memorizer":
            return 1.0 if text in self.originals else -1.0
        return 0.0

    def token_statistics(self, texts: Sequence[str], max_tokens: int) -> list[NDArray[np.float64]]:
        """Every token of a text (a word here) the same standardised log-probability: the score."""
        out = []
        for text in texts:
            tokens = min(len(text.split()), max_tokens)
            mean, sd = -3.0, 2.0
            rows = np.tile([mean + self.score(text) * sd, mean, sd], (max(tokens - 1, 0), 1))
            out.append(rows.astype(np.float64))
        return out

    def vocabulary_id(self) -> str:
        return "scripted"

    def top_logprobs(
        self, texts: Sequence[str], max_tokens: int, k: int
    ) -> list[tuple[NDArray[np.int64], NDArray[np.float64]]]:
        raise NotImplementedError

    def logprobs_at(
        self, texts: Sequence[str], max_tokens: int, ids: Sequence[NDArray[np.int64]]
    ) -> list[NDArray[np.float64]]:
        raise NotImplementedError


def register(data_dir: Path) -> None:
    """Register the backend (its behaviour from the model's path, ``scripted/<behaviour>``)."""

    def load(config: ModelConfig, context: LoadContext) -> ScriptedBackend:
        behaviour, plain, _ = str(config.path).rsplit("/", 1)[-1].partition("+plain")
        return (ScriptedBackend if plain else DistributionsBackend)(behaviour, data_dir)

    BACKENDS.register(BACKEND)(load)


def unregister() -> None:
    BACKENDS._items.pop(BACKEND)  # the registry has no public way to forget a backend


def model(behaviour: str, baseline: str | None = None, *, plain: bool = False) -> dict[str, str]:
    """A model entry of a run config with this behaviour, named after it; ``plain``: without token
    statistics."""
    path = f"scripted/{behaviour}" + ("+plain" if plain else "")
    entry = {"name": behaviour, "backend": BACKEND, "path": path}
    return entry if baseline is None else {**entry, "baseline": baseline}


def write_config(folder: Path, name: str, body: dict[str, Any], data_dir: Path, seed: int = 3) -> Path:
    """A run config of ``body`` (models, probes, gates) writing to ``folder``/out, cheap resamples."""
    run = {"name": name, "output_dir": str(folder / "out"), "seed": seed, "data_dir": str(data_dir)}
    config = {"run": run, "stats": {"resamples": 200, "interval_resamples": 200}, **body}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_cli(folder: Path, config: Path) -> int:
    """``evalsuite run`` with the answer cache in ``folder``; its exit code."""
    return cli.main(["run", str(config), "--cache-dir", str(folder / "cache")])
