"""``evalsuite-hf``: evalsuite's ``hf`` backend and engine as a model of lm-eval's own command line.

lm-eval users keep their tool (``lm_eval run --model evalsuite-hf --model_args pretrained=PATH ...``) and
get what ``evalsuite run`` does for every request: identical requests answered once, shared contexts and
prefixes computed once (``models/prefix.py``), continuous batching for generation (``models/batching.py``),
and the persistent answer cache (``store.py``), keyed by the model's identity, so a rerun answers from the
cache without loading the model and a killed run resumes where it stopped.

The class is registered with lm-eval's ``register_model`` and declared in evalsuite's ``pyproject.toml``
under the ``lm_eval.models`` entry-point group, which lm-eval releases with plugin discovery read.
lm-eval 0.4.13 reads no entry points, so ``python -m evalsuite.lm_eval_cli`` runs its unchanged CLI after
registering them (``evalsuite/lm_eval_cli.py``).

lm-eval's settings map onto a ``ModelConfig`` for backend ``hf``; lm-eval's request contract (one answer
per request, in request order; a request listed ``repeats`` times gets its ``repeats`` draws) is kept
here, the engine answers each distinct request once.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import torch
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from pydantic import ValidationError
from tqdm import tqdm  # type: ignore[import-untyped]  # lm-eval's progress bars; no stubs installed

from evalsuite.cli import ENV_CACHE_DIR, default_cache
from evalsuite.config import ModelConfig, format_validation_error
from evalsuite.engine.scheduler import AnswerCache, Engine, Outcome
from evalsuite.errors import BackendError, ConfigError, did_you_mean
from evalsuite.models.base import PREFLIGHT, Backend, LoadContext
from evalsuite.models.lazy import LazyBackend, open_backend
from evalsuite.store import Store

NAME = "evalsuite-hf"
DEFAULT_SEED = 1234  # evalsuite's run.seed and lm-eval's default torch seed
# model_args that go to ModelConfig under the same name (lm-eval's hf model takes most of them too)
SETTINGS = (
    "revision",
    "dtype",
    "device",
    "quantization",
    "batch_size",
    "share_prefix",
    "max_length",
    "add_bos_token",
    "trust_remote_code",
    "gguf_file",
)
OWN = ("pretrained", "cache_dir", "answer_cache", "seed")  # what this adapter takes itself
# A child of lm-eval's logger: its notes reach lm-eval's handler and follow its --verbosity.
log = logging.getLogger("lm_eval.evalsuite")
T = TypeVar("T")


@register_model(NAME)
class EvalsuiteHF(LM):  # type: ignore[misc]  # lm-eval's LM is untyped
    """lm-eval's ``LM`` over evalsuite's ``hf`` backend behind an evalsuite ``Engine``.

    ``model_args``: ``pretrained`` (a folder or hub id, required); ``dtype``, ``device``,
    ``batch_size``, ``max_length``, ``revision``, ``add_bos_token``, ``trust_remote_code``,
    ``gguf_file``, ``quantization`` and ``share_prefix`` as in ``model.yaml``; ``cache_dir`` (the answer
    cache's folder: default ``$EVALSUITE_CACHE_DIR``, else ``~/.cache/evalsuite``, as for
    ``evalsuite run``), ``answer_cache`` (false: neither read nor write it) and ``seed`` (what sampled
    generations are drawn with; default 1234).
    """

    def __init__(self, **model_args: Any) -> None:
        super().__init__()
        given = {key: value for key, value in model_args.items() if value is not None}
        unknown = sorted(set(given) - set(SETTINGS) - set(OWN) - {"max_batch_size"})
        if unknown:
            raise ConfigError(
                f"{NAME}: unknown model_args {', '.join(unknown)}"
                f"{did_you_mean(unknown[0], (*OWN, *SETTINGS))}; it takes {', '.join((*OWN, *SETTINGS))}"
            )
        if "max_batch_size" in given:  # lm-eval passes it only when --max_batch_size is given
            raise ConfigError(
                f"{NAME}: max_batch_size is not supported: batch_size=auto starts at 64 rows on CUDA (8 on "
                "CPU) and halves on out-of-memory; give an integer batch_size to cap it"
            )
        if "pretrained" not in given:
            raise ConfigError(f"{NAME}: model_args needs pretrained=<folder or hub id>")
        self.config = model_config(given)
        PREFLIGHT.get("hf")(self.config)
        self.seed = typed(given, "seed", int, DEFAULT_SEED)
        folder = Path(str(given["cache_dir"])) if "cache_dir" in given else cache_folder(os.environ)
        self.cache_dir = folder.expanduser().resolve()
        self.store = Store(self.cache_dir) if typed(given, "answer_cache", bool, True) else None
        context = LoadContext(self.cache_dir, self.seed, log.info, self.store)
        self.backend: Backend
        self.backend, self.identity = open_backend(self.config, context)
        cache = AnswerCache(self.store, self.identity) if self.store and self.identity else None
        # The engine's 128-request chunks, as `evalsuite run` uses for local backends; evalsuite.runner is
        # not imported: it brings evalsuite.tasks, which would swap lm-eval's template function in this
        # process (same text, but lm-eval's process should run lm-eval's own task code).
        self.engine = Engine(self.backend, cache=cache, seed=self.seed)

    # -- lm-eval's three request types --------------------------------------------------------
    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return self._answer("loglikelihood", requests, disable_tqdm)

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        return self._answer("loglikelihood_rolling", requests, disable_tqdm)

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        return self._answer("generate_until", requests, disable_tqdm)

    def _answer(self, request_type: str, requests: Sequence[Instance], disable_tqdm: bool) -> list[Any]:
        """One answer per request, in request order. lm-eval lists a request with ``repeats`` > 1 that
        many times (the same object): its k-th listing gets the engine's k-th draw. A request the backend
        fails on stops the call, as lm-eval's own models do; what was answered is in the answer cache."""
        wrong = [r.request_type for r in requests if r.request_type != request_type]
        if wrong:
            raise BackendError(f"{NAME}.{request_type} was given {wrong[0]!r} requests")
        distinct = list({id(r): r for r in requests}.values())
        before = (self.engine.counts.computed, self.engine.counts.cached)
        with tqdm(
            total=self.engine.count(distinct), desc=f"{NAME} {request_type}", disable=disable_tqdm
        ) as bar:
            outcomes = dict(zip(map(id, distinct), self.engine.run(distinct, bar.update), strict=True))
        failed = [o.error for draws in outcomes.values() for o in draws if o.error is not None]
        if failed:
            raise BackendError(
                f"{NAME}: {len(failed)} {request_type} request(s) failed, the first with {failed[0]}; the "
                f"answers computed before are in {self._cache_note()}, rerun to resume"
            )
        computed = self.engine.counts.computed - before[0]
        cached = self.engine.counts.cached - before[1]
        log.info("%s %s: %d answers computed, %d from the answer cache", NAME, request_type, computed, cached)
        listed: Counter[int] = Counter()
        answers = []
        for request in requests:
            draws: list[Outcome] = outcomes[id(request)]
            answers.append(draws[listed[id(request)] % len(draws)].value)
            listed[id(request)] += 1
        return answers

    # -- chat templates: not applied -----------------------------------------------------------
    def chat_template(self, chat_template: bool | str = False) -> str:
        """lm-eval asks for the template only under ``--apply_chat_template``, which evalsuite's
        ``hf`` backend does not support (its prompts are the task's text, as ``evalsuite run`` sends them);
        lm-eval's own refusal would ask to implement ``tokenizer_name``."""
        if chat_template:
            raise ConfigError(f"{NAME} does not apply chat templates: leave out --apply_chat_template")
        return ""

    @property
    def tokenizer_name(self) -> str:
        raise ConfigError(f"{NAME} does not apply chat templates: leave out --apply_chat_template")

    # -- what lm-eval writes into its results' "config" -------------------------------------
    def get_model_info(self) -> dict[str, Any]:
        """Merged by lm-eval into its results JSON (``config``): where the answers came from, and the
        model's description, taken from the answer cache when the model was never loaded."""
        loaded = not isinstance(self.backend, LazyBackend) or self.backend.loaded
        stored = self.store.model_info(self.identity) if self.store and self.identity else None
        if loaded:
            info: dict[str, Any] | None = asdict(self.backend.describe())
        else:
            info = json.loads(stored) if stored is not None else None
        counts = self.engine.counts
        return {
            "evalsuite": {
                "identity": self.identity,
                "answer_cache": str(self.store.path) if self.store else None,
                "computed": counts.computed,
                "cached": counts.cached,
                "failed": counts.failed,
                "model_loaded": loaded,
                "model": info,
            }
        }

    def _cache_note(self) -> str:
        if self.store is None or self.identity is None:
            return "no answer cache (answer_cache=false)"
        return f"the answer cache {self.store.path}"


def model_config(model_args: Mapping[str, Any]) -> ModelConfig:
    """lm-eval's model_args as an ``hf`` ModelConfig. lm-eval's default device, ``cuda:0``, becomes the
    CPU where torch sees no CUDA device, as lm-eval's own ``hf`` model does; lm-eval's ``auto:N`` batch
    sizes (N re-tunings) become evalsuite's ``auto`` (halve on out-of-memory)."""
    pretrained = str(model_args["pretrained"])
    fields: dict[str, Any] = {key: model_args[key] for key in SETTINGS if key in model_args}
    device = str(fields.get("device", "auto"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        log.info("%s: torch sees no CUDA device for device %r: running on the CPU", NAME, device)
        device = "cpu"
    fields["device"] = device
    batch = fields.get("batch_size")
    if isinstance(batch, str) and batch.startswith("auto"):
        fields["batch_size"] = "auto"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", pretrained).strip("._-") or "model"  # what messages call it
    try:
        return ModelConfig(name=name, backend="hf", path=pretrained, **fields)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, f"{NAME} model_args")) from None


def cache_folder(environ: Mapping[str, str]) -> Path:
    """Where ``evalsuite run`` keeps its answers when no config or flag names a folder."""
    value = environ.get(ENV_CACHE_DIR)
    return Path(value).expanduser() if value else default_cache()


def typed(model_args: Mapping[str, Any], key: str, kind: type[T], default: T) -> T:
    """``model_args[key]`` (lm-eval has already turned ``true``, ``false`` and digits into bool and int),
    or ``default``; anything else is a ConfigError naming the key."""
    value = model_args.get(key, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{NAME}: model_args {key} should be {kind.__name__} (got {value!r})")
    return value
