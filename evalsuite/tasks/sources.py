"""Where static tasks come from: the project's task files (lm-eval YAML) and lm-eval's own registry.

Task files live in task folders (the repository's ``tasks/`` plus any in ``run.task_dirs``). They are
lm-eval task YAML, with two placeholders allowed in ``dataset_kwargs`` strings:

* ``${data_dir}`` — the user's data folder (``run.data_dir``, ``--data-dir`` or ``EVALSUITE_DATA_DIR``),
* ``${task_dir}`` — the folder of the YAML file itself (for data shipped next to the task).

A task name not found in any task folder is looked up in lm-eval's registry (data from the hub).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from evalsuite.errors import ConfigError, DataError, did_you_mean

BUILTIN_TASK_DIR = Path(__file__).resolve().parents[2] / "tasks"
_TASK_LINE = re.compile(r"^task:\s*['\"]?([\w.\-]+)", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


@dataclass(frozen=True)
class TaskSpec:
    """A resolved task: its name, where it is defined, and the lm-eval config or name to build it from."""

    name: str
    source: str  # a YAML path, or "lm-eval"
    config: Mapping[str, Any] | None  # None for lm-eval registry tasks
    task_file: Path | None = None  # a registry task's own YAML file, where a quick scan found it


def task_dirs(extra: tuple[Path, ...] = ()) -> tuple[Path, ...]:
    """Task folders in lookup order: the user's first, then the repository's own."""
    builtin = (BUILTIN_TASK_DIR,) if BUILTIN_TASK_DIR.is_dir() else ()
    return (*extra, *builtin)


def local_task_files(dirs: tuple[Path, ...]) -> dict[str, Path]:
    """Task name -> YAML file, first folder wins. Reads only each file's ``task:`` line."""
    found: dict[str, Path] = {}
    for folder in dirs:
        for path in sorted(folder.glob("*.yaml")):
            match = _TASK_LINE.search(path.read_text(encoding="utf-8"))
            if match and match.group(1) not in found:
                found[match.group(1)] = path
    return found


@cache
def task_manager() -> Any:
    """lm-eval's registry of about 15k tasks; indexing it reads every task file (6 s on an idle machine,
    much more on a busy one), so a process does it once, and only for a name no task folder has."""
    from lm_eval.tasks import TaskManager

    return TaskManager()


@cache
def lm_eval_task_files() -> dict[str, Path]:
    """lm-eval's task files by the name on their ``task:`` line: found in a second, without the registry.
    Tasks defined otherwise (groups, tags, generated subtasks) are not here; the registry finds them."""
    import lm_eval.tasks

    found: dict[str, Path] = {}
    for path in sorted(Path(lm_eval.tasks.__file__).parent.rglob("*.yaml")):
        match = _TASK_LINE.search(path.read_text(encoding="utf-8", errors="replace"))
        if match:
            found.setdefault(match.group(1), path)
    return found


class TaskCatalog:
    """Resolves task names. lm-eval's registry (about 15k tasks) is indexed only when first needed."""

    def __init__(self, dirs: tuple[Path, ...], data_dir: Path | None) -> None:
        self.local = local_task_files(dirs)
        self.data_dir = data_dir

    @cached_property
    def lm_eval_names(self) -> frozenset[str]:
        return frozenset(task_manager().all_tasks)

    def resolve(self, name: str) -> TaskSpec:
        if name in self.local:
            path = self.local[name]
            return TaskSpec(name, str(path), self._local_config(path))
        task_file = lm_eval_task_files().get(name)
        if task_file is not None or name in self.lm_eval_names:
            return TaskSpec(name, "lm-eval", None, task_file)
        hint = did_you_mean(name, [*self.local, *self.lm_eval_names])
        raise ConfigError(f"unknown task {name!r}{hint}; `evalsuite tasks` lists the local ones")

    def _local_config(self, path: Path) -> dict[str, Any]:
        from lm_eval.tasks._yaml_loader import load_yaml  # lm-eval's loader: `include:` and `!function`

        try:
            config = dict(load_yaml(path))
        except Exception as error:  # lm-eval raises bare exceptions for bad YAML or !function targets
            raise DataError(f"{path}: cannot read task file: {error}") from None
        values = {"task_dir": str(path.parent), "data_dir": str(self.data_dir) if self.data_dir else None}
        if "dataset_kwargs" in config:
            config["dataset_kwargs"] = _substitute(config["dataset_kwargs"], values, path)
            for data_file in _data_files(config["dataset_kwargs"]):
                if not Path(data_file).exists():
                    raise DataError(f"{path}: data file {data_file} does not exist")
        return config


def check_offline_data(name: str, task_file: Path) -> None:
    """With the hub offline, an lm-eval task whose dataset is not in the local cache cannot run: say so
    now, in a second, rather than after indexing lm-eval's registry and before any model loads."""
    from datasets import config as datasets_config

    if not datasets_config.HF_DATASETS_OFFLINE:
        return  # online, the dataset is fetched when the task is built
    from lm_eval.tasks._yaml_loader import load_yaml

    try:
        task = dict(load_yaml(task_file))
    except Exception:  # lm-eval raises bare exceptions; building the task reports them
        return
    path, subset = task.get("dataset_path"), task.get("dataset_name")
    if not isinstance(path, str) or Path(path).exists() or "/" not in path:
        return  # a local folder or one of datasets' builders (json, csv, ...): nothing to fetch
    import datasets

    try:
        datasets.load_dataset_builder(path, subset if isinstance(subset, str) else None)
    except (ConnectionError, FileNotFoundError, ValueError) as error:
        which = f"{path} ({subset})" if isinstance(subset, str) else path
        raise DataError(
            f"task {name!r} (lm-eval) needs the dataset {which}, which is not in the local datasets cache, "
            f"and the hub is offline (HF_DATASETS_OFFLINE=1): download it once online, or use a task file "
            f"on local data (`evalsuite tasks` lists them) [{type(error).__name__}]"
        ) from None


def _substitute(value: Any, values: Mapping[str, str | None], path: Path) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in values:
                raise DataError(f"{path}: unknown placeholder ${{{key}}}; use ${{data_dir}} or ${{task_dir}}")
            found = values[key]
            if found is None:
                raise ConfigError(
                    f"task file {path.name} reads from the data folder: set run.data_dir in the config, "
                    "pass --data-dir, or set EVALSUITE_DATA_DIR"
                )
            return found

        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: _substitute(v, values, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values, path) for v in value]
    return value


def _data_files(dataset_kwargs: Mapping[str, Any]) -> Iterator[str]:
    """Every local path named in ``data_files`` or ``data_dir`` (globs are left to ``datasets``)."""
    files = dataset_kwargs.get("data_files")
    stack: list[Any] = [files, dataset_kwargs.get("data_dir")]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and not any(ch in item for ch in "*?["):
            yield item
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
