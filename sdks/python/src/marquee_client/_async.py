"""The asyncio client: a task delivers the queue; queries are coroutines."""

from __future__ import annotations

import asyncio
import atexit
import json
import time
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, TypeVar, Union

import httpx

from . import _queries as queries
from ._core import (
    SEND_ATTEMPTS,
    Core,
    Queued,
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
from ._sync import _sent, drain
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


def _drain_at_exit(reference: weakref.ref[AsyncClient]) -> None:
    client = reference()
    if client is not None and not client._closed:
        drain(client._core, client.settings, client.settings.exit_timeout)


class AsyncClient(EventHelpers):
    """The same client for asyncio: ``track`` (and ``view``, ``rate``, …) queue at once and a
    task of the running loop delivers; ``await flush()``, ``await aclose()`` or ``async with``.

    Call ``track`` from the loop's thread (it starts the sender task on the running loop);
    from another thread it still queues, and the task, once started, delivers. A client used
    under a second loop (another ``asyncio.run``) moves to it, with a new connection pool.
    At interpreter exit, events an unclosed client still holds are sent from the exiting
    thread, within ``exit_timeout`` seconds (the batch in flight again too: the server
    applies it once).
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
        max_connections: int = 100,
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
        self._core = Core(self.settings, on_error, self._wake)
        self._max_connections = max_connections
        self._http = self._new_http()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._signal: Optional[asyncio.Event] = None
        self._progress: Optional[asyncio.Condition] = None
        self._task: Optional[asyncio.Task[None]] = None
        self._closed = False
        reference = weakref.ref(self)
        self._exit_hook = lambda: _drain_at_exit(reference)
        atexit.register(self._exit_hook)

    async def __aenter__(self) -> AsyncClient:
        self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- delivery ----

    def _queue(self, event: Dict[str, Any]) -> Dict[str, Any]:
        queued = self._core.track(event)
        self._start()
        return queued

    def _start(self) -> None:
        """Starts the sender task on the running loop (no-op outside one, or when it runs
        there already). A client used again under a new loop (a second ``asyncio.run``) gets a
        new task there; what the old loop's task held is still queued."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        if self._loop is not None and self._loop is not loop:
            # The pool's connections belong to the old loop: a new pool for this one.
            self._http = self._new_http()
        self._loop = loop
        self._signal = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task = loop.create_task(self._run())

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self.settings.request_timeout,
            limits=httpx.Limits(max_connections=self._max_connections),
        )

    def _wake(self) -> None:
        loop, signal = self._loop, self._signal
        if loop is None or signal is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            signal.set()
        else:
            try:
                loop.call_soon_threadsafe(signal.set)
            except RuntimeError:
                pass  # the loop is closed: the drain at exit sends what is held

    def stats(self) -> Stats:
        return self._core.stats()

    async def flush(self, timeout: float = 10.0) -> None:
        """Sends what is queued now; returns once every event tracked before the call is
        acknowledged or refused. Raises ``UndeliveredError`` at the deadline."""
        self._start()
        target = self._core.flush_target()
        await self._wait(lambda: self._core.settled_below(target), timeout)
        if not self._core.settled_below(target):
            raise UndeliveredError(self._core.pending_below(target))

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stops taking events and delivers the queue within ``timeout`` seconds; what is left
        then is dropped, counted, reported, and ``UndeliveredError`` says how much."""
        if self._closed:
            return
        self._start()
        before = self._core.stats().dropped
        self._core.start_close(timeout)
        await self._wait(self._core.is_idle, timeout)
        self._core.abandon(len(self._core.take_queued()))
        self._closed = True
        self._wake()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, self.settings.request_timeout + 1.0)
            except asyncio.TimeoutError:
                pass
        await self._http.aclose()
        atexit.unregister(self._exit_hook)
        lost = self._core.stats().dropped - before
        if lost > 0:
            raise UndeliveredError(lost)

    async def _wait(self, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self._progress is not None
        async with self._progress:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                try:
                    await asyncio.wait_for(self._progress.wait(), left)
                except asyncio.TimeoutError:
                    return

    async def _notify_progress(self) -> None:
        assert self._progress is not None
        async with self._progress:
            self._progress.notify_all()

    async def _run(self) -> None:
        assert self._signal is not None
        while True:
            self._signal.clear()
            batch, wait = self._core.next_batch()
            if batch is None:
                if self._closed:
                    return
                try:
                    await asyncio.wait_for(self._signal.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                await self._deliver(batch)
            finally:
                self._core.batch_done()
                await self._notify_progress()

    async def _deliver(self, batch: List[Queued]) -> None:
        body = ndjson([queued.event for queued in batch])
        attempt = 1
        while True:
            if self._core.past_close_deadline():
                self._core.abandon(len(batch))
                return
            outcome = await self._post(body)
            delay = self._core.settle(batch, outcome, attempt)
            if delay is None:
                return
            await self._pause(delay)
            attempt += 1

    async def _pause(self, delay: float) -> None:
        assert self._signal is not None
        end = time.monotonic() + delay
        while True:
            left = end - time.monotonic()
            close_deadline = self._core.close_deadline
            if close_deadline is not None:
                left = min(left, close_deadline - time.monotonic())
            if left <= 0:
                return
            self._signal.clear()
            try:
                await asyncio.wait_for(self._signal.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def _post(self, body: bytes) -> Any:
        try:
            response = await self._http.post(
                self.settings.url("v1", "events"),
                content=body,
                headers=self.settings.headers("application/x-ndjson"),
            )
        except httpx.HTTPError as error:
            return Retry(f"network: {type(error).__name__}: {error}")
        return classify(response.status_code, response.text, response.headers)

    # ---- bulk ----

    async def send_events(self, events: Sequence[Dict[str, Any]]) -> Sent:
        """``POST /v1/events`` now, waiting for the answer (see ``Client.send_events``)."""
        self._start()
        body = ndjson(list(events))
        for attempt in range(1, SEND_ATTEMPTS + 1):
            outcome = await self._post(body)
            if not isinstance(outcome, Retry):
                return _sent(outcome)
            if attempt == SEND_ATTEMPTS:
                raise MarqueeError(
                    0, "unavailable", f"gave up after {attempt} attempts: {outcome.cause}"
                )
            await asyncio.sleep(bulk_delay(outcome, attempt))
        raise AssertionError("unreachable")

    # ---- queries ----

    async def _call(self, call: queries.Call[T]) -> T:
        self._start()
        response = await self._http.request(
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
                await asyncio.sleep(delay)
                job = await self._call(queries.job(job["url"]))
        return call.parse(response.text)

    async def recommendations(
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
        return await self._call(
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

    async def similar(self, item_id: str, *, count: Optional[int] = None) -> List[Recommendation]:
        return await self._call(queries.similar(item_id, count))

    async def trending(
        self, *, count: Optional[int] = None, genre: Optional[str] = None
    ) -> List[Recommendation]:
        return await self._call(queries.trending(count, genre))

    async def search(
        self,
        text: str,
        *,
        count: Optional[int] = None,
        genre: Optional[str] = None,
        year_from: Optional[int] = None,
        year_to: Optional[int] = None,
        user_id: Optional[str] = None,
    ) -> SearchResults:
        return await self._call(queries.search(text, count, genre, year_from, year_to, user_id))

    async def suggest(self, text: str, *, count: Optional[int] = None) -> List[Suggestion]:
        return await self._call(queries.suggest(text, count))

    async def item(self, item_id: str) -> ItemDetails:
        return await self._call(queries.item(item_id))

    async def upsert_items(self, items: Sequence[Union[Item, Dict[str, Any]]]) -> Upserted:
        return await self._call(queries.upsert_items(items))

    async def user(self, user_id: str) -> UserSummary:
        return await self._call(queries.user(user_id))

    async def export_user(self, user_id: str, *, respond_async: bool = False) -> Dict[str, Any]:
        return await self._call(queries.export_user(user_id, respond_async))

    async def delete_item(self, item_id: str) -> None:
        await self._call(queries.delete_item(item_id))

    async def erase_user(self, user_id: str, *, respond_async: bool = False) -> Dict[str, Any]:
        return await self._call(queries.erase_user(user_id, respond_async))

    async def processor(self) -> ProcessorStatus:
        return await self._call(queries.processor())

    async def set_processor_paused(self, paused: bool) -> ProcessorStatus:
        return await self._call(queries.set_processor_paused(paused))

    async def metrics(self) -> str:
        return await self._call(queries.metrics())
