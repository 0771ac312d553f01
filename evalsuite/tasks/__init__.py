"""Static task sources: the project's lm-eval-format task files and lm-eval's registry."""

from evalsuite.tasks import templates
from evalsuite.tasks.evaluate import PreparedTask, aggregate, build_task, score_task
from evalsuite.tasks.sources import TaskCatalog, TaskSpec, local_task_files, task_dirs

templates.install()

__all__ = [
    "PreparedTask",
    "TaskCatalog",
    "TaskSpec",
    "aggregate",
    "build_task",
    "local_task_files",
    "score_task",
    "task_dirs",
]
