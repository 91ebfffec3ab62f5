"""What the server answers, as typed values, and what delivery reports.

Each answer type reads the server's JSON with ``from_json``, keeping the fields this version
knows: a newer server's extra fields are ignored, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

EVENT_KINDS = (
    "view",
    "click",
    "watch",
    "rating",
    "like",
    "dislike",
    "add_to_watchlist",
    "skip",
    "impression",
)


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    score: float
    title: Optional[str] = None
    genres: List[str] = field(default_factory=list)
    year: Optional[int] = None
    #: Where it came from: ``index``, ``pairs``, ``content``, ``trending``, and ``boost`` or
    #: ``pin`` when a campaign moved it (one or more).
    sources: List[str] = field(default_factory=list)
    #: The campaign that boosted or pinned it.
    campaign: Optional[str] = None

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> Recommendation:
        return cls(
            item_id=data["item_id"],
            score=float(data.get("score", 0.0)),
            title=data.get("title"),
            genres=list(data.get("genres") or []),
            year=data.get("year"),
            sources=list(data.get("sources") or []),
            campaign=data.get("campaign"),
        )


@dataclass(frozen=True)
class Recommendations:
    user_id: str
    #: ``personalised``, ``cold_start`` or ``popular``.
    strategy: str
    items: List[Recommendation]
    #: Names the list: pass it to ``impression`` when it is shown, and as
    #: ``recommendation_id=`` (with ``position=``) to the events that follow.
    recommendation_id: str = ""
    #: Running experiment → the group the list was made for.
    experiments: Dict[str, str] = field(default_factory=dict)
    #: The feature flags on for the user.
    flags: List[str] = field(default_factory=list)
    #: Pass it as ``page_token=`` for the next page of the same ranking; ``None`` once spent.
    next_page_token: Optional[str] = None

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> Recommendations:
        return cls(
            user_id=data["user_id"],
            strategy=data.get("strategy", ""),
            items=[Recommendation.from_json(item) for item in data.get("items", [])],
            recommendation_id=data.get("recommendation_id", ""),
            experiments=dict(data.get("experiments", {})),
            flags=list(data.get("flags", [])),
            next_page_token=data.get("next_page_token"),
        )


@dataclass(frozen=True)
class Item:
    """A catalogue item, as ``upsert_items`` takes it."""

    item_id: str
    title: Optional[str] = None
    genres: List[str] = field(default_factory=list)
    year: Optional[int] = None
    tags: List[str] = field(default_factory=list)

    def to_json(self) -> Dict[str, Any]:
        body: Dict[str, Any] = {"item_id": self.item_id}
        if self.title is not None:
            body["title"] = self.title
        if self.genres:
            body["genres"] = list(self.genres)
        if self.year is not None:
            body["year"] = self.year
        if self.tags:
            body["tags"] = list(self.tags)
        return body


@dataclass(frozen=True)
class ItemDetails:
    """A catalogue item as ``item()`` returns it, with what the server knows of it."""

    item_id: str
    title: Optional[str]
    genres: List[str]
    year: Optional[int]
    tags: List[str]
    #: Events applied for it.
    event_count: int
    #: Whether it was upserted (an item seen only in events is not).
    in_catalogue: bool

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> ItemDetails:
        return cls(
            item_id=data["item_id"],
            title=data.get("title"),
            genres=list(data.get("genres") or []),
            year=data.get("year"),
            tags=list(data.get("tags") or []),
            event_count=int(data.get("event_count", 0)),
            in_catalogue=bool(data.get("in_catalogue", False)),
        )


@dataclass(frozen=True)
class Refusal:
    """One refused element of a batch: its position, the field at fault, the server's message."""

    index: int
    field: str
    message: str

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> Refusal:
        return cls(
            index=int(data.get("index", 0)),
            field=data.get("field", ""),
            message=data.get("error", data.get("message", "")),
        )


@dataclass(frozen=True)
class Upserted:
    upserted: int
    rejected: List[Refusal]

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> Upserted:
        return cls(
            upserted=int(data.get("upserted", 0)),
            rejected=[Refusal.from_json(r) for r in data.get("rejected", [])],
        )


@dataclass(frozen=True)
class Sent:
    """The answer to a batch sent with ``send_events``: appended events and each refusal."""

    accepted: int
    rejected: List[Refusal]


@dataclass(frozen=True)
class SearchItem:
    item_id: str
    title: Optional[str]
    genres: List[str]
    year: Optional[int]
    #: The text relevance.
    relevance: float

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> SearchItem:
        return cls(
            item_id=data["item_id"],
            title=data.get("title"),
            genres=list(data.get("genres") or []),
            year=data.get("year"),
            relevance=float(data.get("relevance", 0.0)),
        )


@dataclass(frozen=True)
class FacetCount:
    value: Union[str, int]
    count: int


@dataclass(frozen=True)
class SearchResults:
    query: str
    #: Best first.
    items: List[SearchItem]
    #: How many items matched in all.
    total: int
    #: False when no item matched every word, and these match some.
    all_words: bool
    #: Whether equally relevant items were ordered by the viewer's taste.
    personalised: bool
    #: Matches per genre, most first.
    genres: List[FacetCount]
    #: Matches per decade (its first year), oldest first.
    decades: List[FacetCount]

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> SearchResults:
        facets = data.get("facets") or {}
        return cls(
            query=data.get("query", ""),
            items=[SearchItem.from_json(item) for item in data.get("items", [])],
            total=int(data.get("total", 0)),
            all_words=bool(data.get("all_words", True)),
            personalised=bool(data.get("personalised", False)),
            genres=[FacetCount(f["value"], int(f["count"])) for f in facets.get("genres", [])],
            decades=[FacetCount(f["value"], int(f["count"])) for f in facets.get("decades", [])],
        )


@dataclass(frozen=True)
class Suggestion:
    item_id: str
    title: Optional[str] = None
    year: Optional[int] = None

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> Suggestion:
        return cls(item_id=data["item_id"], title=data.get("title"), year=data.get("year"))


@dataclass(frozen=True)
class HistoryEntry:
    item_id: str
    weight: float
    timestamp: int


@dataclass(frozen=True)
class UserSummary:
    """What the model knows of a user."""

    user_id: str
    #: Events applied (each ``event_id`` once).
    event_count: int
    last_timestamp: int
    #: Every item the user interacted with, sorted.
    seen_items: List[str]
    #: The model's history window, newest first.
    recent: List[HistoryEntry]

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> UserSummary:
        return cls(
            user_id=data["user_id"],
            event_count=int(data.get("event_count", 0)),
            last_timestamp=int(data.get("last_timestamp", 0)),
            seen_items=list(data.get("seen_items") or []),
            recent=[
                HistoryEntry(e["item_id"], float(e.get("weight", 0.0)), int(e.get("timestamp", 0)))
                for e in data.get("recent", [])
            ],
        )


@dataclass(frozen=True)
class ProcessorStatus:
    #: Paused by an operator: ingest goes on, the lag grows.
    paused: bool
    #: The last batch failed (the processor retries).
    failing: bool
    #: Events appended and not yet applied, all partitions.
    lag_events: int
    log_end_offsets: List[int]
    committed_offsets: List[int]

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> ProcessorStatus:
        return cls(
            paused=bool(data.get("paused", False)),
            failing=bool(data.get("failing", False)),
            lag_events=int(data.get("lag_events", 0)),
            log_end_offsets=list(data.get("log_end_offsets") or []),
            committed_offsets=list(data.get("committed_offsets") or []),
        )


@dataclass(frozen=True)
class Stats:
    """What happened to tracked events so far."""

    #: Waiting in the queue or being sent.
    pending: int
    #: Acknowledged by the server.
    delivered: int
    #: Refused by the server; reported, not retried.
    rejected: int
    #: Dropped because the queue was full, or undelivered when ``close`` gave up.
    dropped: int
    #: Requests sent again after a transient failure.
    retries: int


# ---- delivery problems, given to ``on_error`` ----


@dataclass(frozen=True)
class Rejected:
    """The server refused one event (its field and message); it is not sent again."""

    event: Dict[str, Any]
    field: str
    message: str


@dataclass(frozen=True)
class BatchRefused:
    """The server refused a whole batch (401, 403, 400, 413, 415); it is not sent again."""

    status: int
    code: str
    message: str
    events: int


@dataclass(frozen=True)
class Retrying:
    """A batch will be sent again after ``delay`` seconds."""

    attempt: int
    delay: float
    cause: str


@dataclass(frozen=True)
class Dropped:
    """The queue was full: its oldest ``count`` events were dropped."""

    count: int


@dataclass(frozen=True)
class Undelivered:
    """``close`` reached its deadline: ``count`` events were dropped undelivered."""

    count: int


DeliveryProblem = Union[Rejected, BatchRefused, Retrying, Dropped, Undelivered]
