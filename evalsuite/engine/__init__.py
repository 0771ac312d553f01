"""Request scheduling shared by every task and probe."""

from evalsuite.engine.scheduler import Engine, Outcome

__all__ = ["Engine", "Outcome"]
