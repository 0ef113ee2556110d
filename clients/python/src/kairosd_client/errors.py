"""The one exception the client raises for anything the daemon refused.

kairosd answers a client's mistake with a 4xx and ``{"errors": [...]}`` listing every
problem it found (KairosDB's shape), so the exception keeps that list whole: a caller
can show all of it, or match on one entry, without parsing the message.
"""

from __future__ import annotations

from typing import Any, List, Optional


class KairosdError(Exception):
    """A request kairosd refused or could not answer.

    ``status`` is the HTTP status (``None`` when no answer came back, e.g. the
    connection was refused, or when the client itself found the problem, such as a
    table that already exists). ``errors`` is the server's error list as it sent it:
    strings for most endpoints, objects (``line``, ``column``, ``kind``, ``message``)
    for the rows an import refused. ``body`` is the whole decoded answer, if any, so
    an import's counts stay available when it fails.
    """

    def __init__(
        self,
        message: str,
        status: Optional[int] = None,
        errors: Optional[List[Any]] = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors: List[Any] = list(errors) if errors is not None else [message]
        self.body = body

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return "HTTP %d: %s" % (self.status, self.message)
