"""The shared bases: request bodies refuse unknown fields, answers carry the `ok` envelope.

A body means what its OpenAPI schema says: a length limit holds for the text as sent
(before trimming), and a date or a moment is ISO text, never a number read as a timestamp.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, model_validator

_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


class Strict(BaseModel):
    """A request body: an unknown field is a 422 naming it, and surrounding spaces are dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _lengths_as_sent(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            value = data.get(field.alias or name)
            limits = [m.max_length for m in field.metadata if getattr(m, "max_length", None) is not None]
            if isinstance(value, str) and limits and len(value) > min(limits):
                raise ValueError(f"{field.alias or name} is longer than {min(limits)} characters")
        return data


class Ok(BaseModel):
    """An answer with nothing more to say than that it worked."""

    ok: bool = True


# A timestamp written the way `datetime.isoformat()` writes it (`+00:00`, not `Z`): the shape these
# answers had before they were typed, which clients and the self-test already read.
IsoDatetime = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")]


def _iso_text(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("write a date as YYYY-MM-DD and a time as ISO 8601, not a number")
    if isinstance(value, str) and _NUMBER.match(value):
        raise ValueError("write a date as YYYY-MM-DD and a time as ISO 8601, not a number")
    return value


# A calendar day or a moment in a request (the schema says an ISO string: a number is a 422).
Day = Annotated[date, BeforeValidator(_iso_text)]
Moment = Annotated[datetime, BeforeValidator(_iso_text)]
