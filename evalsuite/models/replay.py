"""Backend ``replay``: answers recorded elsewhere, so a model served by another system can be gated,
and so tests can script exact model outputs.

The file named by ``path`` is JSON Lines, one recorded answer per line::

    {"request_type": "loglikelihood", "context": "Q: 2+2?\\nA:", "continuation": " 4",
     "logprob": -0.12, "is_greedy": true}
    {"request_type": "loglikelihood_rolling", "text": "A whole document.", "logprob": -42.0}
    {"request_type": "generate_until", "context": "Q: Capital of France?\\nA:", "generation": " Paris"}

``is_greedy`` defaults to false. A request with no recorded answer becomes a per-sample error in the
run (not a crash); a malformed file is a data error before anything runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from lm_eval.api.instance import Instance
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from evalsuite.config import ModelConfig, format_validation_error
from evalsuite.errors import BackendError, ConfigError, DataError
from evalsuite.models.base import BACKENDS, PREFLIGHT, Backend, LoadContext, ModelInfo, Telemetry
from evalsuite.models.sources import sha256_file


class _Recorded(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordedLoglikelihood(_Recorded):
    request_type: Literal["loglikelihood"]
    context: str
    continuation: str
    logprob: float = Field(allow_inf_nan=False, le=0.0)
    is_greedy: bool = False


class RecordedRolling(_Recorded):
    request_type: Literal["loglikelihood_rolling"]
    text: str
    logprob: float = Field(allow_inf_nan=False, le=0.0)


class RecordedGeneration(_Recorded):
    request_type: Literal["generate_until"]
    context: str
    generation: str


Recorded = Annotated[
    RecordedLoglikelihood | RecordedRolling | RecordedGeneration, Field(discriminator="request_type")
]
_RECORDED: TypeAdapter[RecordedLoglikelihood | RecordedRolling | RecordedGeneration] = TypeAdapter(Recorded)


class ReplayBackend(Backend):
    def __init__(
        self,
        path: Path,
        answers: dict[tuple[str, ...], RecordedLoglikelihood | RecordedRolling | RecordedGeneration],
    ) -> None:
        super().__init__()
        self.path = path
        self.answers = answers
        self.fingerprint = sha256_file(path)[:32]

    def _lookup(self, key: tuple[str, ...]) -> RecordedLoglikelihood | RecordedRolling | RecordedGeneration:
        try:
            return self.answers[key]
        except KeyError:
            preview = " | ".join(part[-60:] for part in key[1:])
            raise BackendError(f"{self.path.name} has no recorded {key[0]} answer for: {preview!r}") from None

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = []
        for r in requests:
            answer = self._lookup(("loglikelihood", *r.args))
            assert isinstance(answer, RecordedLoglikelihood)
            out.append((answer.logprob, answer.is_greedy))
        return out

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        out = []
        for r in requests:
            answer = self._lookup(("loglikelihood_rolling", r.args[0]))
            assert isinstance(answer, RecordedRolling)
            out.append(answer.logprob)
        return out

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        out = []
        for r in requests:
            answer = self._lookup(("generate_until", r.args[0]))
            assert isinstance(answer, RecordedGeneration)
            out.append(answer.generation)
        return out

    def describe(self) -> ModelInfo:
        return ModelInfo(
            architecture="unknown",
            model_type="replay",
            parameters=0,
            active_parameters=0,
            dtype="n/a",
            quantization="none",
            weight_memory_bytes=0,
            fingerprint=self.fingerprint,
            device="none",
        )

    def telemetry(self) -> Telemetry:
        return Telemetry(0, "none", 0, 0.0, 0, 0.0)


def _key(answer: RecordedLoglikelihood | RecordedRolling | RecordedGeneration) -> tuple[str, ...]:
    if isinstance(answer, RecordedLoglikelihood):
        return (answer.request_type, answer.context, answer.continuation)
    if isinstance(answer, RecordedRolling):
        return (answer.request_type, answer.text)
    return (answer.request_type, answer.context)


def read_recordings(
    path: Path,
) -> dict[tuple[str, ...], RecordedLoglikelihood | RecordedRolling | RecordedGeneration]:
    """Parse and validate a replay file; the first bad line is a DataError naming it."""
    answers: dict[tuple[str, ...], RecordedLoglikelihood | RecordedRolling | RecordedGeneration] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                answer = _RECORDED.validate_python(json.loads(line))
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: not valid JSON: {error.msg}") from None
            except ValidationError as error:
                raise DataError(format_validation_error(error, f"{path}:{number}")) from None
            key = _key(answer)
            if key in answers and answers[key] != answer:
                raise DataError(f"{path}:{number}: a different answer for this request was recorded earlier")
            answers[key] = answer
    return answers


@PREFLIGHT.register("replay")
def preflight(config: ModelConfig) -> None:
    path = Path(config.path or "")
    if path.is_dir():
        raise ConfigError(f"model {config.name!r}: replay path {path} is a folder; name the JSONL file in it")
    if not path.is_file():
        raise ConfigError(f"model {config.name!r}: replay file {path} does not exist")


@BACKENDS.register("replay")
def load(config: ModelConfig, context: LoadContext) -> ReplayBackend:
    preflight(config)
    path = Path(config.path or "")
    return ReplayBackend(path, read_recordings(path))
