"""The event helpers both clients have: each builds an event and queues it, returning at once."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from ._core import Core, build_event


class EventHelpers:
    _core: Core

    def track(
        self,
        kind: str,
        user_id: str,
        item_id: str,
        value: Optional[float] = None,
        *,
        timestamp: Optional[int] = None,
        event_id: Optional[str] = None,
        context: Optional[Mapping[str, str]] = None,
        recommendation_id: Optional[str] = None,
        position: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Queues an event and returns it (with its ``event_id`` and ``timestamp``) at once.

        ``timestamp`` is milliseconds since the Unix epoch (now by default); ``event_id`` a
        UUIDv7 unless given. Raises ``ValueError`` naming the field for an unknown ``kind`` or
        an empty id, and ``ClosedError`` after ``close``; the server's own checks (value ranges)
        are reported to ``on_error``. ``recommendation_id`` and ``position`` name the list
        (a ``Recommendations.recommendation_id``) and the item's place in it (from 0), so the
        outcome counts for the list's experiment groups.
        """
        event = build_event(
            kind,
            user_id,
            item_id,
            value,
            timestamp,
            event_id,
            context,
            recommendation_id=recommendation_id,
            position=position,
        )
        return self._queue(event)

    def impression(
        self,
        user_id: str,
        recommendation_id: str,
        positions: Sequence[int],
        *,
        timestamp: Optional[int] = None,
        event_id: Optional[str] = None,
    ) -> Dict[str, Any]:
        """The list ``recommendation_id`` was shown, its items at ``positions`` (from 0) on
        screen. Send one when a list appears."""
        event = build_event(
            "impression",
            user_id,
            None,
            timestamp=timestamp,
            event_id=event_id,
            recommendation_id=recommendation_id,
            positions=positions,
        )
        return self._queue(event)

    def _queue(self, event: Dict[str, Any]) -> Dict[str, Any]:
        return self._core.track(event)

    def view(self, user_id: str, item_id: str, **extra: Any) -> Dict[str, Any]:
        return self.track("view", user_id, item_id, **extra)

    def click(self, user_id: str, item_id: str, **extra: Any) -> Dict[str, Any]:
        return self.track("click", user_id, item_id, **extra)

    def watch(self, user_id: str, item_id: str, fraction: float, **extra: Any) -> Dict[str, Any]:
        """A watch of ``fraction`` (0 to 1) of the item."""
        return self.track("watch", user_id, item_id, fraction, **extra)

    def rate(self, user_id: str, item_id: str, stars: float, **extra: Any) -> Dict[str, Any]:
        """A rating of ``stars``, 0.5 to 5 in half steps."""
        return self.track("rating", user_id, item_id, stars, **extra)

    def like(self, user_id: str, item_id: str, **extra: Any) -> Dict[str, Any]:
        return self.track("like", user_id, item_id, **extra)

    def dislike(self, user_id: str, item_id: str, **extra: Any) -> Dict[str, Any]:
        return self.track("dislike", user_id, item_id, **extra)

    def add_to_watchlist(self, user_id: str, item_id: str, **extra: Any) -> Dict[str, Any]:
        return self.track("add_to_watchlist", user_id, item_id, **extra)

    def skip(self, user_id: str, item_id: str, **extra: Any) -> Dict[str, Any]:
        return self.track("skip", user_id, item_id, **extra)
