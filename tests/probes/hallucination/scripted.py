"""A scripted model for the hallucination probes: it answers every prompt by a fixed behaviour, and where
the behaviour needs the right answer it looks the question up in the raw data files itself (the SQuAD 2.0,
HaluEval, TriviaQA and ARC copies in the data folder; the controls and facts shipped with evalsuite), so
the expected metrics follow from the data and the behaviour alone, never from the probes' own items.

Behaviours (the model's ``path`` is ``scripted/<behaviour>``):

    abstain   "I don't know." (to an unanswerable-probe prompt: "unanswerable")
    wrong     "It is Zorblax." to everything: never abstains, never right
    yes       "Yes" to everything
    maybe     "Maybe" to everything
    oracle    always right: a control's first alias, "I don't know." on fabricated entities, SQuAD's first
              answer or "unanswerable", the right Yes/No, the passage's answer, the TriviaQA answer
              (sampled answers identical to it), the gold ARC option with log-likelihood -0.001 (others -50)
    certain   the gold ARC option with log-likelihood exactly 0, a probability of 1 (others -50); else as
              ``wrong``
    memory    the remembered answer on faithfulness prompts, else as ``wrong``
    split     TriviaQA: right and every sample identical on even rows of the file; on odd rows wrong, and
              every sampled answer different

Every other behaviour gives each multiple-choice option the same log-likelihood (-1). A prompt the
behaviour cannot place raises, so it shows up as a per-sample error rather than as a silent wrong answer.
"""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval.api.instance import Instance

from evalsuite.config import ModelConfig
from evalsuite.models.base import BACKENDS, Backend, LoadContext, ModelInfo, Telemetry
from evalsuite.probes.hallucination.entities import TEMPLATES, controls
from evalsuite.probes.hallucination.passages import FACTS

BACKEND = "hallucination-scripted"
BEHAVIOURS = ("abstain", "wrong", "yes", "maybe", "oracle", "certain", "memory", "split")
GOLD_LOGLIKELIHOOD = {"oracle": -0.001, "certain": 0.0}  # the gold option's; the others get -50
IDK, ZORBLAX = "I don't know.", "It is Zorblax."

_FABRICATED = re.compile(r"say that you do not know\.\nQuestion: (?P<q>.*)\nAnswer:\Z", re.DOTALL)
_PASSAGE = re.compile(r"\n\nPassage: (?P<p>.*)\nQuestion: (?P<q>.*?)\nAnswer:\Z", re.DOTALL)
_HALUEVAL = re.compile(r"\n#Question#: (?P<q>.*?)\n#Answer#: (?P<a>.*)\n#Your Judgement#:\Z", re.DOTALL)
_TRIVIA = re.compile(r"\AQuestion: (?P<q>.*)\?\nAnswer:\Z", re.DOTALL)


@dataclass(frozen=True)
class Squad:
    context: str
    question: str
    answers: tuple[str, ...]  # in file order
    unanswerable: bool


class Data:
    """Right answers, read from the raw files."""

    def __init__(self, data_dir: Path) -> None:
        self.controls = {TEMPLATES[c.category][c.kind].format(name=c.entity): c.answers for c in controls()}
        self.squad = list(_squad(data_dir / "squad_v2" / "squad_v2_dev_from_explorer.json"))
        self.squad_by_key = {(s.context, s.question): s for s in self.squad}
        self.squad_by_question: dict[str, list[Squad]] = defaultdict(list)
        for item in self.squad:
            self.squad_by_question[item.question].append(item)
        halueval = data_dir / "halueval" / "decodingtrust_qa_sampled_data.json"
        self.halueval: dict[str, list[dict[str, str]]] = defaultdict(list)
        for row in _rows(halueval):
            self.halueval[row["question"]].append(row)
        trivia = data_dir / "triviaqa" / "triviaqa_sm_sub.jsonl"
        self.trivia: dict[str, tuple[int, str]] = {}
        for index, row in enumerate(_rows(trivia)):
            self.trivia.setdefault(row["context"], (index, row["answer"]))
        arc = data_dir / "arc" / "arc_challenge.jsonl"
        self.arc: dict[tuple[str, str], set[bool]] = defaultdict(set)
        for row in _rows(arc):
            for position, choice in enumerate(row["choices"]):
                self.arc[row["query"] + "\nAnswer:", " " + choice].add(position == row["gold"])

    def fabricated(self, question: str) -> str:
        """A control's first accepted alias; "I don't know." for a question about no control."""
        answers = self.controls.get(question)
        return f"It is {answers[0]}." if answers else IDK

    def unanswerable(self, context: str, question: str) -> str:
        item = self.squad_by_key[context, question]
        return "unanswerable" if item.unanswerable else item.answers[0]

    def halueval_verdict(self, question: str, shown: str) -> str:
        (row,) = self.halueval[question]
        if shown not in (row["right_answer"], row["hallucinated_answer"]):
            raise LookupError(f"HaluEval: {shown!r} is neither answer of {question!r}")
        return "Yes" if shown == row["hallucinated_answer"] else "No"

    def faithfulness(self, passage: str, question: str) -> tuple[str, str]:
        """(what the passage says, what memory says) for a template fact or an edited SQuAD passage."""
        for fact in FACTS:
            if fact.question == question:
                pattern = re.escape(fact.sentence).replace(re.escape("{value}"), "(.+)")
                found = re.fullmatch(pattern, passage)
                if found is None:
                    raise LookupError(f"not the fact's sentence: {passage!r}")
                return found.group(1), fact.true
        for item in self.squad_by_question.get(question, []):
            if item.unanswerable or not item.answers:
                continue
            answer = item.answers[0].strip()
            start = item.context.find(answer)
            before, after = item.context[:start], item.context[start + len(answer) :]
            fits = len(passage) > len(before) + len(after)
            if start >= 0 and fits and passage.startswith(before) and passage.endswith(after):
                return passage[len(before) : len(passage) - len(after)], answer
        raise LookupError(f"faithfulness: no source for {question!r}")

    def trivia_row(self, question: str) -> tuple[int, str]:
        return self.trivia[f"Question: {question}\nAnswer:"]

    def arc_gold(self, context: str, continuation: str) -> bool:
        (gold,) = self.arc[context, continuation]  # one verdict, or the lookup is ambiguous
        return gold


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    """JSON Lines; split on newlines only (TriviaQA's questions hold U+2028, which splitlines breaks at)."""
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            yield json.loads(line)


def _squad(path: Path) -> Iterator[Squad]:
    data = json.loads(path.read_text(encoding="utf-8"))
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = tuple(a["text"] if isinstance(a, dict) else a for a in qa.get("answers", []))
                yield Squad(
                    paragraph["context"], qa["question"], answers, bool(qa.get("is_impossible", False))
                )


@functools.cache
def data_for(data_dir: Path) -> Data:
    return Data(data_dir)


class ScriptedBackend(Backend):
    def __init__(self, behaviour: str, data: Data) -> None:
        super().__init__()
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}")
        self.behaviour = behaviour
        self.data = data
        self.draws: dict[str, int] = defaultdict(int)  # sampled answers given per prompt

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = []
        for request in requests:
            context, continuation = request.args
            if self.behaviour in GOLD_LOGLIKELIHOOD:
                gold = self.data.arc_gold(context, continuation)
                out.append((GOLD_LOGLIKELIHOOD[self.behaviour] if gold else -50.0, False))
            else:
                out.append((-1.0, False))
        return out

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        return [self.answer(str(r.args[0]), dict(r.args[1])) for r in requests]

    def answer(self, prompt: str, settings: dict[str, Any]) -> str:
        fixed = {"wrong": ZORBLAX, "certain": ZORBLAX, "yes": "Yes", "maybe": "Maybe"}
        if self.behaviour in fixed:
            return fixed[self.behaviour]
        if self.behaviour == "abstain":
            return "unanswerable" if 'reply "unanswerable"' in prompt else IDK
        if found := _FABRICATED.search(prompt):
            return self.data.fabricated(found["q"]) if self.behaviour == "oracle" else ZORBLAX
        if found := _HALUEVAL.search(prompt):
            return (
                self.data.halueval_verdict(found["q"], found["a"]) if self.behaviour == "oracle" else ZORBLAX
            )
        if (found := _PASSAGE.search(prompt)) and 'reply "unanswerable"' in prompt:
            return self.data.unanswerable(found["p"], found["q"]) if self.behaviour == "oracle" else ZORBLAX
        if found := _PASSAGE.search(prompt):
            passage, memory = self.data.faithfulness(found["p"], found["q"])
            return {"oracle": passage, "memory": memory}.get(self.behaviour, ZORBLAX)
        if found := _TRIVIA.search(prompt):
            return self.trivia(prompt, found["q"], bool(settings.get("do_sample")))
        raise LookupError(f"the scripted model cannot place this prompt: {prompt[-120:]!r}")

    def trivia(self, prompt: str, question: str, sampled: bool) -> str:
        index, answer = self.data.trivia_row(question)
        if self.behaviour == "oracle" or (self.behaviour == "split" and index % 2 == 0):
            return answer
        if self.behaviour == "split" and sampled:
            self.draws[prompt] += 1
            return f"guess number {self.draws[prompt]}"
        return ZORBLAX

    def describe(self) -> ModelInfo:
        return ModelInfo("unknown", "scripted", 0, 0, "n/a", "none", 0, "0" * 32, "none")

    def telemetry(self) -> Telemetry:
        return Telemetry(0, "none", 0, 0.0, 0, 0.0)


def register(data_dir: Path) -> None:
    """Register the backend (its behaviour from the model's path, ``scripted/<behaviour>``)."""

    def load(config: ModelConfig, context: LoadContext) -> ScriptedBackend:
        return ScriptedBackend(str(config.path).rsplit("/", 1)[-1], data_for(data_dir))

    BACKENDS.register(BACKEND)(load)


def unregister() -> None:
    BACKENDS._items.pop(BACKEND)  # the registry has no public way to forget a backend


def model(behaviour: str) -> dict[str, str]:
    """A model entry of a run config with this behaviour, named after it."""
    return {"name": behaviour, "backend": BACKEND, "path": f"scripted/{behaviour}"}
