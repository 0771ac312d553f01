"""evalsuite: evaluate language-model variants on benchmarks and probes, with honest statistics and gates."""

from evalsuite.config import ModelConfig, RunConfig, TaskConfig, load_config, parse_config
from evalsuite.errors import BackendError, ConfigError, DataError, EvalsuiteError

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "ConfigError",
    "DataError",
    "EvalsuiteError",
    "ModelConfig",
    "RunConfig",
    "TaskConfig",
    "__version__",
    "load_config",
    "parse_config",
]
