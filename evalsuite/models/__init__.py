"""Model backends behind one interface (lm-eval's ``LM``), found by name in ``BACKENDS``."""

from evalsuite.models import hf, llamacpp, openai_api, replay, vllm
from evalsuite.models.base import BACKENDS, Backend, LoadContext, ModelInfo, RoutingStats, Telemetry

__all__ = [
    "BACKENDS",
    "Backend",
    "LoadContext",
    "ModelInfo",
    "RoutingStats",
    "Telemetry",
    "hf",
    "llamacpp",
    "openai_api",
    "replay",
    "vllm",
]
