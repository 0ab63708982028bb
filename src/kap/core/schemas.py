"""The shared bases: request bodies refuse unknown fields, answers carry the `ok` envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer


class Strict(BaseModel):
    """A request body: an unknown field is a 422 naming it, and surrounding spaces are dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Ok(BaseModel):
    """An answer with nothing more to say than that it worked."""

    ok: bool = True


# A timestamp written the way `datetime.isoformat()` writes it (`+00:00`, not `Z`): the shape these
# answers had before they were typed, which clients and the self-test already read.
IsoDatetime = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")]
