"""The base of every config model: strict pydantic models whose errors name the key and suggest a fix.

It lives apart from :mod:`evalsuite.config` so that modules declaring their own config (each probe kind
in :mod:`evalsuite.probes.kinds`) can build on it while ``config`` collects them.
"""

from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from evalsuite.errors import did_you_mean

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class StrictModel(BaseModel):
    """Frozen, and unknown keys are an error with a "did you mean" hint.

    Numbers are finite, a boolean is no number (YAML reads ``yes``, ``no``, ``on`` and ``off`` as
    booleans, which pydantic would take as 1 and 0), and no text holds a NUL byte (no path can, and
    nothing else needs one)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        return StrictModel.reject_unknown_keys(cls, data)

    @staticmethod
    def reject_unknown_keys(cls: type[BaseModel], data: Any) -> Any:
        """A key the model does not have is an error, with a "did you mean" and a word on YAML booleans."""
        if isinstance(data, dict):
            known = set(cls.model_fields)
            for key in data:
                if key not in known and isinstance(key, bool):
                    quote = "YAML reads a bare on, off, yes or no as a boolean: quote the key"
                    raise ValueError(f"unknown key {key!r} ({quote})")
                if key not in known:
                    raise ValueError(f"unknown key {key!r}{did_you_mean(str(key), known)}")
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _plain_values(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None:
            return value
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool):
            kinds = kinds_of(annotation)
            if bool not in kinds and (int in kinds or float in kinds):
                number = "a number" if float in kinds else "an integer"
                raise ValueError(f"should be {number}, not a boolean (got {value!r})")
        texts = [kind for kind in kinds_of(annotation, items=True) if kind in (str, Path)]
        if texts and _holds_nul(value):  # the operating system takes none (Python would raise deep inside)
            what = "a path" if Path in texts else "text"
            raise ValueError(f"{what} cannot hold a NUL byte (got {value!r})")
        return value


def kinds_of(annotation: Any, items: bool = False) -> list[Any]:
    """The plain types an annotation admits, through unions and Annotated (and with ``items``, the
    types of a tuple's items). A list: an Annotated type with a dict in its metadata is unhashable."""
    if get_origin(annotation) is Annotated:
        return kinds_of(get_args(annotation)[0], items)
    if get_origin(annotation) in (Union, UnionType) or (items and get_origin(annotation) is tuple):
        return [kind for arg in get_args(annotation) if arg is not ... for kind in kinds_of(arg, items)]
    return [annotation]


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\0" in value
    return isinstance(value, list | tuple) and any(_holds_nul(item) for item in value)
