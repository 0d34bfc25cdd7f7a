"""Shared base of every config section (strict: unknown keys are errors; frozen once validated)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class _Section(BaseModel):
    """Base of every config section."""

    # coerce_numbers_to_str: `tracking.run_name=2024` on the command line is a name, not a type error.
    # frozen: a validated config is read-only; a changed one is a copy (`model_copy(update=...)`), so a
    # value checked at load time cannot be changed behind the validators' back.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_section_means_defaults(cls, data: Any) -> Any:
        """A YAML section whose keys are all commented out parses as null; treat it as 'all defaults'."""
        return {} if data is None else data
