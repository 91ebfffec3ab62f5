"""The synchronous client's delivery against a real `marquee serve`: batching by size and
linger, a server killed and restarted mid-stream (nothing lost, nothing applied twice), 429
back-off as `Retry-After` says, refusals reported and not retried, flush on close, the
drop-oldest queue bound, and the drain at interpreter exit."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import (
    Server,
    applied,
    caught_up,
    create_key,
    event_requests,
    eventually,
    free_port,
    metric,
    write_config,
)
from marquee_client import (
    BatchRefused,
    Client,
    ClosedError,
    Dropped,
    MarqueeError,
    Rejected,
    Retrying,
    Undelivered,
    UndeliveredError,
    uuid7,
)


def test_uuid7_ids_are_valid_distinct_and_ordered_by_time() -> None:
    first, second = uuid7(1_700_000_000_000), uuid7(1_700_000_000_001)
    pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
    assert re.match(pattern, first) and re.match(pattern, second)
    assert first < second
    assert first[:13] == "018bcfe5-6800"
    assert len({uuid7() for _ in range(1000)}) == 1000


def test_settings_and_events_are_checked_by_name() -> None:
    with pytest.raises(ValueError, match=r"^base_url:"):
        Client("not a url")
    with pytest.raises(ValueError, match=r"^base_url:"):
        Client("ftp://x")
    with pytest.raises(ValueError, match=r"^batch_size:"):
        Client("http://x", batch_size=0)
    with pytest.raises(ValueError, match=r"^queue_capacity:"):
        Client("http://x", batch_size=10, queue_capacity=5)
    with pytest.raises(ValueError, match=r"^backoff_initial:"):
        Client("http://x", backoff_initial=2, backoff_max=1)
    client = Client("http://127.0.0.1:9", linger=3600)
    with pytest.raises(ValueError, match=r"^kind: must be one of view, click"):
        client.track("purchase", "u1", "m1")
    with pytest.raises(ValueError, match=r"^user_id:"):
        client.view("", "m1")
    with pytest.raises(ValueError, match=r"^value:"):
        client.track("rating", "u1", "m1", "five")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^recommendation_id:"):
        client.impression("u1", "", [0])
    with pytest.raises(ValueError, match=r"^positions:"):
        client.impression("u1", "r1", [])
    with pytest.raises(ValueError, match=r"^position:"):
        client.click("u1", "m1", recommendation_id="r1", position=-1)
    assert client.stats().pending == 0
    client.close(0)


def test_events_go_in_full_batches_or_together_after_the_linger(server: Server) -> None:
    before = event_requests(server.url)
    with Client(server.url, batch_size=100, linger=3600) as client:
        for n in range(500):
            client.view(f"u{n % 7}", f"m{n}")
        eventually("five full batches", lambda: client.stats().delivered == 500)
        assert event_requests(server.url) - before == 5

        with Client(server.url, batch_size=100, linger=0.3) as lingering:
            for item in ("a", "b", "c"):
                lingering.click("linger-user", item)
            eventually("the lingering batch", lambda: lingering.stats().delivered == 3)
            assert event_requests(server.url) - before == 6
    caught_up(server.url)
    ids, count = applied(server.url, "linger-user")
    assert (len(ids), count) == (3, 3)


def test_a_server_restart_mid_stream_loses_nothing_and_applies_nothing_twice(data_dir: str) -> None:
    port = free_port()
    server = Server(data_dir, port).ready()
    problems = []
    client = Client(
        server.url,
        batch_size=50,
        linger=0.02,
        backoff_initial=0.05,
        backoff_max=0.5,
        on_error=problems.append,
    )
    try:
        users = [f"viewer-{n}" for n in range(20)]
        tracked = []
        # 3,000 events at about 3,000/s; SIGKILL a third of the way in, a restart a second later.
        for n in range(3000):
            tracked.append(client.rate(users[n % len(users)], f"m{n % 211}", 1 + (n % 9) / 2))
            if n % 30 == 29:
                time.sleep(0.01)
            if n == 1000:
                server.kill()
                time.sleep(1.0)
                server = Server(data_dir, port)
        server.ready()
        client.flush(60)
        stats = client.stats()
        assert stats.delivered == 3000, stats
        assert (stats.rejected, stats.dropped) == (0, 0)
        assert stats.retries >= 1, f"the restart was not felt: {stats}"
        assert all(isinstance(problem, Retrying) for problem in problems), problems

        caught_up(server.url)
        for user in users:
            expected = {event["event_id"] for event in tracked if event["user_id"] == user}
            ids, count = applied(server.url, user)
            assert ids == expected, f"{user}: applied ids differ from the tracked ones"
            assert count == len(expected), f"{user}: an event counted twice"
        client.close(5)
    finally:
        server.stop()


def test_a_rate_limited_client_waits_as_retry_after_says(data_dir: str) -> None:
    admin = create_key(data_dir, "admin")
    ingest = create_key(data_dir, "ingest", rate=2)
    config = write_config(data_dir, "[limits]\nrate_burst_seconds = 1\n")
    server = Server(data_dir, extra=["--auth", "on", "--config", config]).ready()
    try:
        problems = []
        # One event per request, for a key allowed 2 requests/s: 429s are certain.
        with Client(
            server.url,
            api_key=ingest,
            batch_size=1,
            linger=0,
            backoff_initial=0.01,
            backoff_max=0.02,
            on_error=problems.append,
        ) as client:
            for n in range(10):
                client.like("limited", f"m{n}")
            client.flush(60)
            assert client.stats().delivered == 10
            waits = [problem for problem in problems if isinstance(problem, Retrying)]
            assert waits, "no 429 was met"
            for wait in waits:
                assert wait.cause.startswith("429 rate_limited"), wait.cause
                # The server says `Retry-After: 1`; the backoff alone would wait ≤ 20 ms.
                assert wait.delay >= 1.0, wait
            limited = metric(
                server.url, 'marquee_http_requests_rejected_total{reason="rate_limit"}'
            )
            assert limited == len(waits)
            assert client.stats().retries == len(waits)
        caught_up(server.url, admin)
        ids, count = applied(server.url, "limited", admin)
        assert (len(ids), count) == (10, 10)
    finally:
        server.stop()


def test_refused_events_reach_on_error_with_the_servers_message_and_are_not_retried(
    data_dir: str,
) -> None:
    admin = create_key(data_dir, "admin")
    ingest = create_key(data_dir, "ingest")
    server = Server(data_dir, extra=["--auth", "on"]).ready()
    try:
        problems = []
        with Client(server.url, api_key=ingest, on_error=problems.append) as client:
            client.rate("careful", "m1", 7)  # stars out of range
            client.view("careful", "m2")
            client.flush(10)
            stats = client.stats()
            assert (stats.delivered, stats.rejected, stats.retries) == (1, 1, 0)
            assert len(problems) == 1
            problem = problems[0]
            assert isinstance(problem, Rejected)
            assert problem.event["item_id"] == "m1"
            assert problem.field == "value"
            assert problem.message.startswith("value:")

            # A query with a key that may not read: the server's 403 as a typed error.
            with pytest.raises(MarqueeError) as refused:
                client.recommendations("careful")
            assert refused.value.status == 403
            assert "needs read" in refused.value.message

        # An unknown key: the batch is refused once, with the reason.
        reports = []
        with Client(server.url, api_key="mq_00000000_0000", on_error=reports.append) as unknown:
            unknown.view("careful", "m3")
            unknown.flush(10)
            assert unknown.stats().retries == 0
        assert len(reports) == 1 and isinstance(reports[0], BatchRefused)
        assert reports[0].status == 401
        assert reports[0].message.startswith("authorization:")
        caught_up(server.url, admin)
        assert len(applied(server.url, "careful", admin)[0]) == 1
    finally:
        server.stop()


def test_close_delivers_the_queue_and_then_refuses_events(server: Server) -> None:
    client = Client(server.url, linger=3600)
    for n in range(50):
        client.watch("closing", f"m{n}", 0.5)
    assert client.stats().delivered == 0
    client.close(10)
    assert client.stats().delivered == 50
    with pytest.raises(ClosedError):
        client.view("closing", "late")
    caught_up(server.url)
    ids, count = applied(server.url, "closing")
    assert (len(ids), count) == (50, 50)


def test_with_no_server_the_queue_stays_bounded_by_dropping_the_oldest() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    problems = []
    client = Client(
        url,
        batch_size=5,
        queue_capacity=10,
        backoff_initial=0.02,
        backoff_max=0.05,
        on_error=problems.append,
    )
    for n in range(25):
        client.view("offline", f"m{n}")
    stats = client.stats()
    assert stats.pending <= 15, stats
    assert stats.dropped + stats.pending == 25
    reported = sum(problem.count for problem in problems if isinstance(problem, Dropped))
    assert reported == stats.dropped
    eventually("a retry against the absent server", lambda: client.stats().retries > 0)
    with pytest.raises(UndeliveredError) as undelivered:
        client.close(0.2)
    assert undelivered.value.pending == stats.pending
    assert client.stats().pending == 0
    assert sum(p.count for p in problems if isinstance(p, Undelivered)) == stats.pending


def test_events_still_queued_at_interpreter_exit_are_delivered(server: Server) -> None:
    script = textwrap.dedent(
        f"""
        from marquee_client import Client
        client = Client({server.url!r}, linger=3600)
        for n in range(40):
            client.like("leaving", f"m{{n}}")
        print(client.stats().delivered)
        # No flush, no close: the drain at exit delivers.
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0", "nothing was delivered before the exit"
    caught_up(server.url)
    ids, count = applied(server.url, "leaving")
    assert (len(ids), count) == (40, 40)
