"""The synchronous client: a sender thread delivers the queue; queries block the caller."""

from __future__ import annotations

import atexit
import json
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, TypeVar, Union

import httpx

from . import _queries as queries
from ._core import (
    SEND_ATTEMPTS,
    Core,
    Queued,
    Refused,
    Retry,
    Settings,
    bulk_delay,
    classify,
    ndjson,
    parse_error,
    retry_after,
)
from ._errors import MarqueeError, UndeliveredError
from ._events import EventHelpers
from ._types import (
    DeliveryProblem,
    Item,
    ItemDetails,
    ProcessorStatus,
    Recommendation,
    Recommendations,
    SearchResults,
    Sent,
    Stats,
    Suggestion,
    Upserted,
    UserSummary,
)

T = TypeVar("T")


def post_events(http: httpx.Client, settings: Settings, body: bytes) -> Any:
    """``POST /v1/events`` and what its answer means."""
    try:
        response = http.post(
            settings.url("v1", "events"),
            content=body,
            headers=settings.headers("application/x-ndjson"),
        )
    except httpx.HTTPError as error:
        return Retry(f"network: {type(error).__name__}: {error}")
    return classify(response.status_code, response.text, response.headers)


def drain(core: Core, settings: Settings, timeout: float) -> None:
    """Sends everything the core holds from the calling thread, within ``timeout``; what is
    left then is dropped and reported. The drain at interpreter exit of the asyncio client,
    whose loop is gone by then."""
    deadline = time.monotonic() + timeout
    held = core.take_all()
    with httpx.Client(timeout=settings.request_timeout) as http:
        while held:
            batch, held = held[: settings.batch_size], held[settings.batch_size :]
            body = ndjson([queued.event for queued in batch])
            attempt = 1
            while True:
                if time.monotonic() >= deadline:
                    core.abandon(len(batch) + len(held))
                    return
                delay = core.settle(batch, post_events(http, settings, body), attempt)
                if delay is None:
                    break
                time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
                attempt += 1


def _drain_at_exit(reference: weakref.ref[Client]) -> None:
    client = reference()
    if client is not None:
        try:
            client.close(client.settings.exit_timeout)
        except UndeliveredError:
            pass  # counted and reported to on_error


class Client(EventHelpers):
    """Sends events in the background and answers queries, for threads and scripts.

    ``track`` (and ``view``, ``rate``, …) never blocks: the event is queued and a sender thread
    delivers it in batches, with retries. ``flush`` waits for delivery; ``close`` (or leaving
    a ``with`` block) delivers what is left and stops; at interpreter exit, an open client is
    closed within ``exit_timeout`` seconds. Queries raise ``MarqueeError`` for a refusal and
    ``httpx.HTTPError`` for a network failure.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: Optional[str] = None,
        batch_size: int = 500,
        linger: float = 0.1,
        queue_capacity: int = 10_000,
        request_timeout: float = 10.0,
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
        exit_timeout: float = 5.0,
        on_error: Optional[Callable[[DeliveryProblem], None]] = None,
    ) -> None:
        self.settings = Settings(
            base_url,
            api_key,
            batch_size,
            linger,
            queue_capacity,
            request_timeout,
            backoff_initial,
            backoff_max,
            exit_timeout,
        )
        self._cond = threading.Condition()
        self._signals = 0
        self._stopping = False
        self._core = Core(self.settings, on_error, self._wake)
        self._http = httpx.Client(timeout=request_timeout)
        self._sender_http = httpx.Client(timeout=request_timeout)
        self._thread = threading.Thread(target=self._run, name="marquee-client", daemon=True)
        self._thread.start()
        reference = weakref.ref(self)
        self._exit_hook = lambda: _drain_at_exit(reference)
        atexit.register(self._exit_hook)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- delivery ----

    def stats(self) -> Stats:
        return self._core.stats()

    def flush(self, timeout: float = 10.0) -> None:
        """Sends what is queued now; returns once every event tracked before the call is
        acknowledged or refused. Raises ``UndeliveredError`` at the deadline."""
        target = self._core.flush_target()
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._core.settled_below(target):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UndeliveredError(self._core.pending_below(target))
                self._cond.wait(left)

    def close(self, timeout: float = 10.0) -> None:
        """Stops taking events and delivers the queue within ``timeout`` seconds; what is left
        then is dropped, counted, reported, and ``UndeliveredError`` says how much."""
        if self._stopping:
            return
        before = self._core.stats().dropped
        self._core.start_close(timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._core.is_idle() and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
        self._core.abandon(len(self._core.take_queued()))
        with self._cond:
            self._stopping = True
            self._signals += 1
            self._cond.notify_all()
        # A request in flight at the deadline ends within its own time limit.
        self._thread.join(self.settings.request_timeout + 1.0)
        self._http.close()
        self._sender_http.close()
        atexit.unregister(self._exit_hook)
        lost = self._core.stats().dropped - before
        if lost > 0:
            raise UndeliveredError(lost)

    def _wake(self) -> None:
        with self._cond:
            self._signals += 1
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                seen = self._signals
            batch, wait = self._core.next_batch()
            if batch is None:
                with self._cond:
                    if self._stopping:
                        return
                    if self._signals == seen:
                        self._cond.wait(wait)
                continue
            self._deliver(batch)
            self._core.batch_done()
            self._wake()

    def _deliver(self, batch: List[Queued]) -> None:
        body = ndjson([queued.event for queued in batch])
        attempt = 1
        while True:
            if self._core.past_close_deadline():
                self._core.abandon(len(batch))
                return
            outcome = post_events(self._sender_http, self.settings, body)
            delay = self._core.settle(batch, outcome, attempt)
            if delay is None:
                return
            self._pause(delay)
            attempt += 1

    def _pause(self, delay: float) -> None:
        """Waits ``delay`` seconds, or until the close deadline if that comes first."""
        end = time.monotonic() + delay
        while True:
            left = end - time.monotonic()
            close_deadline = self._core.close_deadline
            if close_deadline is not None:
                left = min(left, close_deadline - time.monotonic())
            if left <= 0:
                return
            with self._cond:
                self._cond.wait(left)

    # ---- bulk ----

    def send_events(self, events: Sequence[Dict[str, Any]]) -> Sent:
        """``POST /v1/events`` now, waiting for the answer: for loaders and backfills.

        Unlike ``track``, the answer (refusals included) is returned. Network errors, 408, 429
        and 5xx are retried up to 8 attempts (``Retry-After`` honoured): events with ids are
        applied once however often they are sent. Any other refusal raises ``MarqueeError``.
        """
        body = ndjson(list(events))
        for attempt in range(1, SEND_ATTEMPTS + 1):
            outcome = post_events(self._http, self.settings, body)
            if not isinstance(outcome, Retry):
                return _sent(outcome)
            if attempt == SEND_ATTEMPTS:
                raise MarqueeError(
                    0, "unavailable", f"gave up after {attempt} attempts: {outcome.cause}"
                )
            time.sleep(bulk_delay(outcome, attempt))
        raise AssertionError("unreachable")

    # ---- queries ----

    def _call(self, call: queries.Call[T]) -> T:
        response = self._http.request(
            call.method,
            self.settings.url(*call.segments),
            params=call.params,
            content=call.body,
            headers={
                **self.settings.headers("application/json" if call.body else None),
                **(call.headers or {}),
            },
        )
        if response.status_code >= 400 and response.status_code not in call.answer_statuses:
            code, message = parse_error(response.text)
            raise MarqueeError(response.status_code, code, message, retry_after(response.headers))
        if response.status_code == 202 and call.job is not None:
            # The node runs the operation as a job: followed to its end.
            job = json.loads(response.text)
            for delay in queries.job_delays():
                answer = queries.job_answer(call, job)
                if answer is not None:
                    return answer
                time.sleep(delay)
                job = self._call(queries.job(job["url"]))
        return call.parse(response.text)

    def recommendations(
        self,
        user_id: str,
        *,
        count: Optional[int] = None,
        genre: Optional[str] = None,
        exclude: Optional[Iterable[str]] = None,
        exclude_seen: Optional[bool] = None,
        filter: Optional[str] = None,
        region: Optional[str] = None,
        device: Optional[str] = None,
        maturity: Optional[str] = None,
        page_token: Optional[str] = None,
        max_per_genre: Optional[int] = None,
    ) -> Recommendations:
        """``GET /v1/users/{user_id}/recommendations``: what this user should watch next."""
        return self._call(
            queries.recommendations(
                user_id,
                count,
                genre,
                exclude,
                exclude_seen,
                {
                    "filter": filter,
                    "region": region,
                    "device": device,
                    "maturity": maturity,
                    "page_token": page_token,
                    "max_per_genre": max_per_genre,
                },
            )
        )

    def similar(self, item_id: str, *, count: Optional[int] = None) -> List[Recommendation]:
        """``GET /v1/items/{item_id}/similar``: items most like this one."""
        return self._call(queries.similar(item_id, count))

    def trending(
        self, *, count: Optional[int] = None, genre: Optional[str] = None
    ) -> List[Recommendation]:
        """``GET /v1/trending``: the most popular items now."""
        return self._call(queries.trending(count, genre))

    def search(
        self,
        text: str,
        *,
        count: Optional[int] = None,
        genre: Optional[str] = None,
        year_from: Optional[int] = None,
        year_to: Optional[int] = None,
        user_id: Optional[str] = None,
    ) -> SearchResults:
        """``GET /v1/search``: catalogue items matching ``text`` (typos forgiven, the last word
        as a prefix), with counts per genre and decade."""
        return self._call(queries.search(text, count, genre, year_from, year_to, user_id))

    def suggest(self, text: str, *, count: Optional[int] = None) -> List[Suggestion]:
        """``GET /v1/search/suggest``: titles for a query being typed."""
        return self._call(queries.suggest(text, count))

    def item(self, item_id: str) -> ItemDetails:
        """``GET /v1/items/{item_id}``."""
        return self._call(queries.item(item_id))

    def upsert_items(self, items: Sequence[Union[Item, Dict[str, Any]]]) -> Upserted:
        """``POST /v1/items``: creates or replaces catalogue items (an ``admin`` key)."""
        return self._call(queries.upsert_items(items))

    def user(self, user_id: str) -> UserSummary:
        """``GET /v1/users/{user_id}``: what the model knows of the user."""
        return self._call(queries.user(user_id))

    def export_user(self, user_id: str, *, respond_async: bool = False) -> Dict[str, Any]:
        """``GET /v1/users/{user_id}/export``: everything stored about the user (``users``).

        The node runs an export as a job: when it answers 202 (asked to with ``respond_async``,
        or the export outlasted most of its request timeout), the client polls the job to its
        end and returns the export all the same."""
        return self._call(queries.export_user(user_id, respond_async))

    def delete_item(self, item_id: str) -> None:
        """``DELETE /v1/items/{item_id}``: the item leaves every list and search (``admin``);
        its events stay, and an upsert brings it back."""
        self._call(queries.delete_item(item_id))

    def erase_user(self, user_id: str, *, respond_async: bool = False) -> Dict[str, Any]:
        """``DELETE /v1/users/{user_id}``: erases the user, once durable (``users``); a job like
        :meth:`export_user`'s, followed to its end."""
        return self._call(queries.erase_user(user_id, respond_async))

    def processor(self) -> ProcessorStatus:
        """``GET /v1/admin/processor``: paused, failing, lag and offsets (``admin``)."""
        return self._call(queries.processor())

    def set_processor_paused(self, paused: bool) -> ProcessorStatus:
        """``POST /v1/admin/processor``: pauses or resumes the processor (``admin``)."""
        return self._call(queries.set_processor_paused(paused))

    def metrics(self) -> str:
        """``GET /metrics``: every metric, in Prometheus' text format."""
        return self._call(queries.metrics())


def _sent(outcome: Any) -> Sent:
    if isinstance(outcome, Refused):
        raise MarqueeError(outcome.status, outcome.code, outcome.message)
    accepted = getattr(outcome, "accepted", 0)
    return Sent(accepted, list(outcome.rejected))
