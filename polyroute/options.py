"""One way to validate the options of an extension (a signal, a plugin, a plan).

Each extension class declares ``Options``, a pydantic model of its config keys
(unknown keys are refused); :func:`validate_options` checks a config block
against it and turns pydantic's errors into one message naming each field:
``signals.guard.threshold: Input should be less than or equal to 1 (got 3)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from polyroute.errors import ConfigError


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


OptionsT = TypeVar("OptionsT", bound=BaseModel)


def validate_options(model: type[OptionsT], options: Mapping[str, Any], where: str) -> OptionsT:
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        raise ConfigError(options_message(exc, where)) from None


def options_message(exc: ValidationError, where: str) -> str:
    """A pydantic error as ``where.field: what was wrong (got VALUE)``, one per field."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        at = f"{where}.{loc}" if loc else where
        shown = "" if err["type"] == "missing" else f" (got {err.get('input')!r:.80})"
        parts.append(f"{at}: {err['msg']}{shown}")
    return "; ".join(parts)


__all__ = ["Options", "options_message", "validate_options"]
