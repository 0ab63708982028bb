"""The one base for request bodies: unknown fields are refused, strings come trimmed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A request body: an unknown field is a 422 naming it, and surrounding spaces are dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
