"""The delivery core both clients share, without I/O.

The clients differ only in how they wait and send (a thread with ``httpx.Client``, or a task with
``httpx.AsyncClient``); the queue, the batches, what an answer means, the backoff and the
counters are here, once. Thread-safe: ``track`` may be called from any thread.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote

from ._errors import ClosedError
from ._types import (
    EVENT_KINDS,
    BatchRefused,
    DeliveryProblem,
    Dropped,
    Refusal,
    Rejected,
    Retrying,
    Stats,
    Undelivered,
)

#: The most events one ``POST /v1/events`` may carry (the server's limit).
MAX_BATCH_SIZE = 10_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def uuid7(at_ms: Optional[int] = None) -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits."""
    ms = now_ms() if at_ms is None else at_ms
    raw = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True)
class Settings:
    """The client's settings, checked once; an error names the setting at fault."""

    base_url: str
    api_key: Optional[str] = None
    #: Most events per request.
    batch_size: int = 500
    #: How long an event may wait for its batch to fill, in seconds.
    linger: float = 0.1
    #: Most events held in memory; past it the oldest is dropped.
    queue_capacity: int = 10_000
    #: Time limit of one request, in seconds.
    request_timeout: float = 10.0
    #: First retry delay, in seconds.
    backoff_initial: float = 0.2
    #: Longest retry delay, in seconds.
    backoff_max: float = 30.0
    #: How long the drain at interpreter exit may take, in seconds.
    exit_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not self.base_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError(f"base_url: {self.base_url!r} is not an http(s) URL")
        if "://" in self.base_url and not self.base_url.split("://", 1)[1].strip("/"):
            raise ValueError(f"base_url: {self.base_url!r} has no host")
        if not _whole(self.batch_size) or not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(
                f"batch_size: must be a whole number from 1 to {MAX_BATCH_SIZE}, "
                f"got {self.batch_size!r}"
            )
        if not _whole(self.queue_capacity) or self.queue_capacity < self.batch_size:
            raise ValueError(
                f"queue_capacity: must be a whole number at least batch_size "
                f"({self.batch_size}), got {self.queue_capacity!r}"
            )
        for name in ("linger", "exit_timeout"):
            if not _number(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name}: must be seconds, 0 or more, got {getattr(self, name)!r}")
        if not _number(self.request_timeout) or self.request_timeout <= 0:
            raise ValueError(
                f"request_timeout: must be seconds above 0, got {self.request_timeout!r}"
            )
        if not (
            _number(self.backoff_initial)
            and _number(self.backoff_max)
            and 0 < self.backoff_initial <= self.backoff_max
        ):
            raise ValueError(
                "backoff_initial: must be seconds above 0 and at most backoff_max, "
                f"got {self.backoff_initial!r} and {self.backoff_max!r}"
            )

    def url(self, *segments: str) -> str:
        path = "/".join(quote(segment, safe="") for segment in segments)
        return f"{self.base_url.rstrip('/')}/{path}"

    def headers(self, content_type: Optional[str] = None) -> Dict[str, str]:
        headers = {"accept": "application/json"}
        if content_type:
            headers["content-type"] = content_type
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def build_event(
    kind: str,
    user_id: str,
    item_id: Optional[str],
    value: Optional[float] = None,
    timestamp: Optional[int] = None,
    event_id: Optional[str] = None,
    context: Optional[Mapping[str, str]] = None,
    recommendation_id: Optional[str] = None,
    position: Optional[int] = None,
    positions: Optional[Sequence[int]] = None,
) -> Dict[str, Any]:
    """An event as the server takes it. What only the server can judge (value ranges, id
    lengths) it judges, and its refusal goes to ``on_error``; what is wrong in any case (an
    unknown kind, an id that is not a string) is refused here, naming the field. An
    ``impression`` names a list (``recommendation_id``, ``positions``) and no item."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"kind: must be one of {', '.join(EVENT_KINDS)}, got {kind!r}")
    ids: List[Tuple[str, Optional[str]]] = [("user_id", user_id)]
    if kind == "impression":
        if item_id is not None:
            raise ValueError("item_id: must be absent for an impression (it names a list)")
        ids.append(("recommendation_id", recommendation_id))
    else:
        ids.append(("item_id", item_id))
    for name, given in ids:
        if not isinstance(given, str) or not given:
            raise ValueError(f"{name}: must be a non-empty string, got {given!r}")
    event: Dict[str, Any] = {
        "event_id": event_id if event_id is not None else uuid7(),
        "user_id": user_id,
        "kind": kind,
        "timestamp": now_ms() if timestamp is None else int(timestamp),
    }
    if item_id is not None:
        event["item_id"] = item_id
    if value is not None:
        if not _number(value):
            raise ValueError(f"value: must be a number, got {value!r}")
        event["value"] = float(value)
    if context:
        event["context"] = {str(key): str(val) for key, val in context.items()}
    if recommendation_id is not None:
        event["recommendation_id"] = recommendation_id
    if position is not None:
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValueError(f"position: must be a whole number from 0, got {position!r}")
        event["position"] = position
    if positions is not None:
        shown = list(positions)
        if not shown or any(
            isinstance(at, bool) or not isinstance(at, int) or at < 0 for at in shown
        ):
            raise ValueError(f"positions: must be whole numbers from 0, got {shown!r}")
        event["positions"] = shown
    return event


def ndjson(events: List[Dict[str, Any]]) -> bytes:
    return "".join(json.dumps(event, separators=(",", ":")) + "\n" for event in events).encode()


# ---- what an answer to ``POST /v1/events`` means ----


@dataclass(frozen=True)
class Delivered:
    accepted: int
    rejected: List[Refusal]


@dataclass(frozen=True)
class AllRejected:
    rejected: List[Refusal]


@dataclass(frozen=True)
class Refused:
    status: int
    code: str
    message: str


@dataclass(frozen=True)
class Retry:
    cause: str
    retry_after: Optional[float] = None


Outcome = Union[Delivered, AllRejected, Refused, Retry]


def parse_error(text: str) -> Tuple[str, str]:
    """The server's error body ``{"error": {"code", "message"}}``, or the text itself."""
    try:
        body = json.loads(text)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return str(error.get("code", "unknown")), str(error.get("message", ""))
    except ValueError:
        pass
    return "unknown", text[:500]


def retry_after(headers: Mapping[str, str]) -> Optional[float]:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def classify(status: int, text: str, headers: Mapping[str, str]) -> Outcome:
    """What an answer to a batch means: delivered, refused, or worth another attempt."""
    if status in (200, 202, 422):
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            rejected = [Refusal.from_json(r) for r in body.get("rejected", [])]
            if status == 422:
                return AllRejected(rejected)
            return Delivered(int(body.get("accepted", 0)), rejected)
        if status != 422:
            return Delivered(0, [])
    code, message = parse_error(text)
    if status in (408, 429) or status >= 500:
        return Retry(f"{status} {code}: {message}", retry_after(headers))
    return Refused(status, code, message)


# ---- the queue ----


@dataclass
class Queued:
    seq: int
    at: float
    event: Dict[str, Any]


class Core:
    """The queue, the batch in flight, the counters and the rules of delivery."""

    def __init__(
        self,
        settings: Settings,
        on_error: Optional[Callable[[DeliveryProblem], None]],
        wake: Callable[[], None],
    ) -> None:
        self.settings = settings
        self._on_error = on_error
        self._wake = wake
        self.lock = threading.Lock()
        self._queue: Deque[Queued] = deque()
        self.in_flight: Optional[List[Queued]] = None
        self._next_seq = 0
        self.flush_requested = False
        #: ``time.monotonic()`` at which ``close`` gives up; ``None`` until closed.
        self.close_deadline: Optional[float] = None
        self.delivered = 0
        self.rejected = 0
        self.dropped = 0
        self.retries = 0

    # -- the caller's side --

    def track(self, event: Dict[str, Any]) -> Dict[str, Any]:
        dropped = False
        with self.lock:
            if self.close_deadline is not None:
                raise ClosedError()
            if len(self._queue) >= self.settings.queue_capacity:
                self._queue.popleft()
                self.dropped += 1
                dropped = True
            self._queue.append(Queued(self._next_seq, time.monotonic(), event))
            self._next_seq += 1
        if dropped:
            self.report(Dropped(1))
        self._wake()
        return event

    def stats(self) -> Stats:
        with self.lock:
            pending = len(self._queue) + len(self.in_flight or [])
            return Stats(pending, self.delivered, self.rejected, self.dropped, self.retries)

    def flush_target(self) -> int:
        """The sequence number every event tracked so far is below; asks for a send now."""
        with self.lock:
            self.flush_requested = True
            target = self._next_seq
        self._wake()
        return target

    def settled_below(self, target: int) -> bool:
        """Whether every event numbered below ``target`` was acknowledged, refused or dropped."""
        with self.lock:
            if self.in_flight:
                lowest = self.in_flight[0].seq
            elif self._queue:
                lowest = self._queue[0].seq
            else:
                lowest = self._next_seq
            return lowest >= target

    def pending_below(self, target: int) -> int:
        with self.lock:
            held = list(self.in_flight or []) + list(self._queue)
            return sum(1 for queued in held if queued.seq < target)

    def start_close(self, timeout: float) -> None:
        with self.lock:
            deadline = time.monotonic() + timeout
            if self.close_deadline is None or deadline < self.close_deadline:
                self.close_deadline = deadline
            self.flush_requested = True
        self._wake()

    # -- the sender's side --

    def next_batch(self) -> Tuple[Optional[List[Queued]], Optional[float]]:
        """The batch to send now, or ``None`` and how long until one is due (``None``: idle)."""
        with self.lock:
            if not self._queue:
                return None, None
            due = self._queue[0].at + self.settings.linger
            now = time.monotonic()
            ready = (
                len(self._queue) >= self.settings.batch_size
                or self.flush_requested
                or self.close_deadline is not None
                or now >= due
            )
            if not ready:
                return None, due - now
            size = min(self.settings.batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(size)]
            if not self._queue:
                self.flush_requested = False
            self.in_flight = batch
            return batch, None

    def batch_done(self) -> None:
        with self.lock:
            self.in_flight = None

    def take_all(self) -> List[Queued]:
        """Everything held, the batch in flight first (the drain at exit resends it: same ids)."""
        with self.lock:
            held = list(self.in_flight or []) + list(self._queue)
            self._queue.clear()
            self.in_flight = None
            return held

    def take_queued(self) -> List[Queued]:
        """The queue, without the batch in flight (``close`` at its deadline drops it)."""
        with self.lock:
            held = list(self._queue)
            self._queue.clear()
            return held

    def is_idle(self) -> bool:
        with self.lock:
            return not self._queue and not self.in_flight

    def past_close_deadline(self) -> bool:
        return self.close_deadline is not None and time.monotonic() >= self.close_deadline

    def abandon(self, count: int) -> None:
        if count == 0:
            return
        with self.lock:
            self.dropped += count
        self.report(Undelivered(count))

    def settle(self, batch: List[Queued], outcome: Outcome, attempt: int) -> Optional[float]:
        """Counts and reports an answer; returns the delay before another attempt, or ``None``
        when the batch is settled."""
        if isinstance(outcome, Delivered):
            with self.lock:
                self.delivered += outcome.accepted
            self._refused(batch, outcome.rejected)
            return None
        if isinstance(outcome, AllRejected):
            self._refused(batch, outcome.rejected)
            return None
        if isinstance(outcome, Refused):
            with self.lock:
                self.rejected += len(batch)
            self.report(BatchRefused(outcome.status, outcome.code, outcome.message, len(batch)))
            return None
        if outcome.retry_after is not None:
            delay = outcome.retry_after + random.random() * outcome.retry_after * 0.1
        else:
            delay = self.backoff(attempt)
        with self.lock:
            self.retries += 1
        self.report(Retrying(attempt, delay, outcome.cause))
        return delay

    def backoff(self, attempt: int) -> float:
        """Half to all of ``initial × 2^(attempt-1)``, capped at the maximum."""
        full = min(
            self.settings.backoff_max,
            self.settings.backoff_initial * 2.0 ** min(attempt - 1, 20),
        )
        return full / 2 + random.random() * full / 2

    def _refused(self, batch: List[Queued], rejected: List[Refusal]) -> None:
        with self.lock:
            self.rejected += len(rejected)
        for refusal in rejected:
            if 0 <= refusal.index < len(batch):
                self.report(Rejected(batch[refusal.index].event, refusal.field, refusal.message))

    def report(self, problem: DeliveryProblem) -> None:
        if self._on_error is None:
            return
        try:
            self._on_error(problem)
        except Exception:
            pass


# ---- bulk sends (``send_events``): sent now, the answer returned ----

#: Attempts of one bulk batch before its last failure is raised.
SEND_ATTEMPTS = 8


def bulk_delay(outcome: Retry, attempt: int) -> float:
    """The wait before another attempt of a bulk batch: ``Retry-After`` (at most a minute), or
    100 ms doubling to 5 s."""
    if outcome.retry_after is not None:
        return min(outcome.retry_after, 60.0)
    return min(0.1 * 2.0 ** (attempt - 1), 5.0)
