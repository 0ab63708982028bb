"""The one text check every request passes before routing: no NUL, valid UTF-8, no lone surrogates.

PostgreSQL refuses NUL in text and cannot encode a lone surrogate; SQLite stores both
and hands them back to every reader. So the edge refuses such text wherever a request
carries it (query, JSON body, form fields, multipart field names and file names) with
one 422, before any handler or query runs. Path parameters are UUIDs or tokens that are
hashed before any look-up, so a bad one stays the route's own 404.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

Problem = dict[str, str]
NUL_MESSAGE = "must not contain NUL characters"
BAD_TEXT_MESSAGE = "is not valid UTF-8 text"


def text_problem(value: str) -> str | None:
    """Why a string may not reach the database, or None when it may."""
    if "\x00" in value:
        return NUL_MESSAGE
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return BAD_TEXT_MESSAGE
    return None


def _decoded(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _problem(field: str, where: str, message: str) -> Problem:
    return {"field": field, "in": where, "message": message}


def check_pairs(raw: bytes, where: str) -> list[Problem]:
    """Problems in an `a=1&b=2` string: a query string or a URL-encoded form body."""
    problems: list[Problem] = []
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1"):
        name = _decoded(key.encode("latin-1"))
        text = _decoded(value.encode("latin-1"))
        field = name if name is not None and text_problem(name) is None else "(name)"
        if name is None or text is None:
            problems.append(_problem(field, where, BAD_TEXT_MESSAGE))
            continue
        message = text_problem(name) or text_problem(text)
        if message:
            problems.append(_problem(field, where, message))
    return problems


def check_json(body: bytes) -> list[Problem]:
    """Problems in a JSON body; a body that is not JSON is left to the route to refuse."""
    try:
        data = json.loads(body)
    except ValueError:
        return []
    problems: list[Problem] = []
    _walk(data, "", problems)
    return problems


def _walk(value: Any, where: str, problems: list[Problem]) -> None:
    if isinstance(value, str):
        message = text_problem(value)
        if message:
            problems.append(_problem(where or "body", "body", message))
    elif isinstance(value, dict):
        for key, item in value.items():
            message = text_problem(key)
            if message:
                problems.append(_problem(f"{where}.(key)" if where else "(key)", "body", message))
                continue
            _walk(item, f"{where}.{key}" if where else key, problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{where}.{index}" if where else str(index), problems)


def check_form_items(items: list[tuple[str, Any]]) -> list[Problem]:
    """Problems in parsed multipart fields: names, text values and file names."""
    problems: list[Problem] = []
    for name, value in items:
        filename = getattr(value, "filename", None)
        text = value if isinstance(value, str) else filename
        message = text_problem(name) or (text_problem(text) if isinstance(text, str) else None)
        if message:
            problems.append(_problem(name if text_problem(name) is None else "(name)", "body", message))
    return problems


def summary(problems: list[Problem]) -> str:
    """One line naming the refused fields."""
    names = ", ".join(dict.fromkeys(p["field"] for p in problems))
    return f"invalid text in {names}: {problems[0]['message']}"
