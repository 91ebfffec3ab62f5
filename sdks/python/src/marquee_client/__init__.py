"""The Python client of Marquee, the real-time movie recommendation engine.

``Client`` (threads, scripts) and ``AsyncClient`` (asyncio) send events without blocking and
without losing them to a network blip, and answer queries; both follow the delivery rules of
every Marquee SDK (docs/SDKS.md): a bounded queue that drops its oldest event when full, NDJSON
batches by size and linger, UUIDv7 event ids, retries with exponential backoff and jitter,
``Retry-After`` honoured on 429 and 503, refusals to ``on_error`` and never retried,
``flush(timeout)`` and ``close(timeout)``, and a drain at interpreter exit.
``marquee_client.pandas`` sends a DataFrame of historical events.
"""

from ._async import AsyncClient
from ._core import uuid7
from ._errors import ClosedError, MarqueeError, UndeliveredError
from ._sync import Client
from ._types import (
    EVENT_KINDS,
    BatchRefused,
    DeliveryProblem,
    Dropped,
    FacetCount,
    HistoryEntry,
    Item,
    ItemDetails,
    ProcessorStatus,
    Recommendation,
    Recommendations,
    Refusal,
    Rejected,
    Retrying,
    SearchItem,
    SearchResults,
    Sent,
    Stats,
    Suggestion,
    Undelivered,
    Upserted,
    UserSummary,
)

__all__ = [
    "EVENT_KINDS",
    "AsyncClient",
    "BatchRefused",
    "Client",
    "ClosedError",
    "DeliveryProblem",
    "Dropped",
    "FacetCount",
    "HistoryEntry",
    "Item",
    "ItemDetails",
    "MarqueeError",
    "ProcessorStatus",
    "Recommendation",
    "Recommendations",
    "Refusal",
    "Rejected",
    "Retrying",
    "SearchItem",
    "SearchResults",
    "Sent",
    "Stats",
    "Suggestion",
    "Undelivered",
    "UndeliveredError",
    "Upserted",
    "UserSummary",
    "uuid7",
]
