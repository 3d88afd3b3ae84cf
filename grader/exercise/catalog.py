"""An exercise's catalog of known mistakes (``mistakes.toml``): how the grader recognises each mistake
(variants of the reference, the exercise's analysis, patterns in exceptions) and what it tells the learner."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SpecModel(BaseModel):
    """Every part of an exercise's spec: unknown fields are errors, and a loaded spec never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Mistake(SpecModel):
    """A known mistake: how the grader recognises it, and what it tells the learner."""

    code: Annotated[str, Field(pattern=r"^[a-z][a-z-]*$")]
    title: str
    explanation: str = Field(description="The diagnosis message; {placeholders} come from the evidence.")
    hint: str
    points_at: list[Annotated[str, Field(pattern=r"^(call|keyword|def):[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list, description="Constructs to show from the submission: call:NAME, keyword:NAME, def:NAME."
    )
    variants: list[str] = Field(
        default_factory=list, description="Functions in the variants file that make this mistake."
    )


class ExceptionHint(SpecModel):
    """A known cause of an exception: when its pattern matches, the diagnosis says the fix."""

    match: str = Field(description="A regular expression searched in 'Type: message'.")
    hint: str
    points_at: list[Annotated[str, Field(pattern=r"^(call|keyword|def):[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _compiles(self) -> ExceptionHint:
        try:
            re.compile(self.match)
        except re.error as exc:
            raise ValueError(f"match {self.match!r} is not a regular expression: {exc}") from None
        return self


class Catalog(SpecModel):
    """An exercise's catalog of known mistakes (``mistakes.toml``)."""

    analysis: str | None = Field(default=None, description="Python file with analyze(), relative to the catalog.")
    variants: str | None = Field(default=None, description="Python file with the variant functions.")
    mistake: list[Mistake] = Field(default_factory=list)
    exception: list[ExceptionHint] = Field(default_factory=list)

    @model_validator(mode="after")
    def _codes_unique(self) -> Catalog:
        codes = [m.code for m in self.mistake]
        if len(codes) != len(set(codes)):
            raise ValueError(f"mistake codes are used twice: {sorted({c for c in codes if codes.count(c) > 1})}")
        if any(m.variants for m in self.mistake) and not self.variants:
            raise ValueError("mistakes name variants but no variants file is given")
        return self

    def by_code(self) -> dict[str, Mistake]:
        return {m.code: m for m in self.mistake}
