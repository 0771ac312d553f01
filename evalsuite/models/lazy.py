"""Load a model only when a request needs it.

With a persistent cache, a rerun may find every answer already stored; loading a model's weights for
nothing would then be most of its cost (minutes for a large model). ``open_backend`` returns a
:class:`LazyBackend` that names the model by its identity (``IDENTITIES``), serves its description from
the cache, and loads the real backend on the first request the engine sends it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from lm_eval.api.instance import Instance

from evalsuite.config import ModelConfig
from evalsuite.errors import BackendError, ConfigError
from evalsuite.models.base import BACKENDS, IDENTITIES, Backend, LoadContext, ModelInfo, Telemetry

IDLE = Telemetry(
    peak_memory_bytes=0,
    memory_kind="none",
    scored_tokens=0,
    scoring_seconds=0.0,
    generated_tokens=0,
    generation_seconds=0.0,
)


class LazyBackend(Backend):
    """Stands in for a backend until the first request; then delegates everything to it."""

    def __init__(
        self, load: Callable[[], Backend], on_load: Callable[[Backend], None], info: ModelInfo | None
    ) -> None:
        super().__init__()
        self._load = load
        self._on_load = on_load
        self._info = info
        self._backend: Backend | None = None

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def backend(self) -> Backend:
        """The real backend, loaded now if it was not yet."""
        if self._backend is None:
            try:
                self._backend = self._load()
            except BackendError as error:  # a model that cannot load fails the run, not each sample
                raise ConfigError(str(error)) from error
            self._on_load(self._backend)
        return self._backend

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[Any]:
        return self.backend().loglikelihood(requests, disable_tqdm=disable_tqdm)  # type: ignore[no-any-return]

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        return self.backend().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)  # type: ignore[no-any-return]

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        return self.backend().generate_until(requests, disable_tqdm=disable_tqdm)  # type: ignore[no-any-return]

    def describe(self) -> ModelInfo:
        if self._backend is None and self._info is not None:
            return self._info
        return self.backend().describe()

    def telemetry(self) -> Telemetry:
        return IDLE if self._backend is None else self._backend.telemetry()

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()


def open_backend(config: ModelConfig, context: LoadContext) -> tuple[Backend, str | None]:
    """The model's backend and its identity. Without a store, or for a backend that cannot name its
    model before loading it, the backend is loaded now and the identity is None (nothing is cached)."""
    load = BACKENDS.get(config.backend)
    store = context.store
    if store is None or config.backend not in IDENTITIES:
        return load(config, context), None
    identity = IDENTITIES.get(config.backend)(config, context)
    stored = store.model_info(identity)

    def remember(backend: Backend) -> None:
        store.put_model_info(identity, json.dumps(asdict(backend.describe())))

    info = ModelInfo(**json.loads(stored)) if stored is not None else None
    return LazyBackend(lambda: load(config, context), remember, info), identity
