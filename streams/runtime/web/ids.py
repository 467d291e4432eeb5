"""Ids in the worker's HTTP paths: what the schemas accept, and the 400 for the rest."""

from __future__ import annotations

import re
from typing import Final

from faust.web import Response, View

from schemas import IDENTIFIER_CHARS, IDENTIFIER_CHARS_MAX

#: An id (account, trade) as the schemas accept it (schemas.models.IDENTIFIER_CHARS).
ID_RE: Final = re.compile(rf"^[{IDENTIFIER_CHARS}]{{1,{IDENTIFIER_CHARS_MAX}}}$")


def bad_id(web: View, what: str, value: str) -> Response | None:
    """A 400 naming the rule if ``value`` is not an id; None if it is."""
    if ID_RE.fullmatch(value) is not None:
        return None
    return web.json(
        {"error": f"not {what}: 1-{IDENTIFIER_CHARS_MAX} characters, "
         "no whitespace or control characters"},
        status=400,
    )  # fmt: skip
