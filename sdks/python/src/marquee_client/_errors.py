"""The errors the client raises."""

from __future__ import annotations

from typing import Optional


class MarqueeError(Exception):
    """A query or catalogue call the server refused: its HTTP status, error code and message.

    The message names the field or parameter at fault (``count: must be 1 to 100``).
    """

    def __init__(
        self, status: int, code: str, message: str, retry_after: Optional[float] = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        #: Seconds the server asked to wait (429 and 503), when it said.
        self.retry_after = retry_after


class UndeliveredError(Exception):
    """``flush`` or ``close`` reached its deadline with events undelivered."""

    def __init__(self, pending: int) -> None:
        super().__init__(f"{pending} events were still undelivered at the deadline")
        self.pending = pending


class ClosedError(Exception):
    """An event tracked after ``close``: it was not queued."""

    def __init__(self) -> None:
        super().__init__("the client is closed; the event was not queued")
