"""The asyncio client against a real node: 100 concurrent tasks tracking and querying through
one client, a restart mid-stream, close, and the drain at interpreter exit."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from conftest import Server, applied, caught_up, free_port
from marquee_client import AsyncClient, ClosedError, Item, Retrying


def test_one_client_serves_100_concurrent_tasks(server: Server) -> None:
    async def scenario() -> dict:
        tracked: dict = {}
        async with AsyncClient(server.url, batch_size=200, linger=0.01) as client:
            await client.upsert_items([Item(f"a{n}", title=f"Async film {n}") for n in range(30)])

            async def viewer(n: int) -> int:
                user = f"task-{n}"
                ids = tracked.setdefault(user, set())
                for step in range(20):
                    ids.add(
                        client.rate(user, f"a{(n + step) % 30}", 0.5 + (step % 10) / 2)["event_id"]
                    )
                    if step % 5 == 4:
                        await asyncio.sleep(0)
                answer = await client.recommendations(user, count=5)
                assert answer.user_id == user
                return len(await client.trending(count=3))

            trending = await asyncio.gather(*(viewer(n) for n in range(100)))
            assert all(count <= 3 for count in trending)
            await client.flush(30)
            stats = client.stats()
            assert (stats.delivered, stats.rejected, stats.dropped) == (2000, 0, 0), stats
        with pytest.raises(ClosedError):
            client.view("task-0", "a1")
        return tracked

    tracked = asyncio.run(scenario())
    caught_up(server.url)
    for user, ids in tracked.items():
        got, count = applied(server.url, user)
        assert got == ids, user
        assert count == 20, user


def test_a_restart_mid_stream_loses_nothing_and_applies_nothing_twice(data_dir: str) -> None:
    port = free_port()
    server = Server(data_dir, port).ready()

    async def scenario(server: Server) -> tuple:
        problems: list = []
        tracked: list = []
        client = AsyncClient(
            server.url,
            batch_size=25,
            linger=0.01,
            backoff_initial=0.05,
            backoff_max=0.5,
            on_error=problems.append,
        )
        for n in range(1200):
            tracked.append(client.like(f"async-{n % 10}", f"m{n}"))
            if n % 20 == 19:
                await asyncio.sleep(0.01)
            if n == 400:
                server.kill()
                await asyncio.sleep(1.0)
                server = Server(data_dir, port)
        await asyncio.to_thread(server.ready)
        await client.flush(60)
        stats = client.stats()
        await client.aclose(5)
        return server, tracked, stats, problems

    try:
        server, tracked, stats, problems = asyncio.run(scenario(server))
        assert stats.delivered == 1200, stats
        assert stats.retries >= 1, f"the restart was not felt: {stats}"
        assert all(isinstance(problem, Retrying) for problem in problems), problems
        caught_up(server.url)
        for n in range(10):
            user = f"async-{n}"
            expected = {event["event_id"] for event in tracked if event["user_id"] == user}
            ids, count = applied(server.url, user)
            assert ids == expected and count == len(expected), user
    finally:
        server.stop()


def test_events_an_unclosed_async_client_holds_at_exit_are_delivered(server: Server) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio
        from marquee_client import AsyncClient
        client = AsyncClient({server.url!r}, linger=3600)
        async def main():
            for n in range(30):
                client.like("async-leaving", f"m{{n}}")
            print(client.stats().delivered)
        asyncio.run(main())
        # The loop is gone; the drain at exit sends what the client holds.
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
    caught_up(server.url)
    ids, count = applied(server.url, "async-leaving")
    assert (len(ids), count) == (30, 30)


def test_one_client_under_two_event_loops_delivers_from_both(server: Server) -> None:
    client = AsyncClient(server.url, linger=3600)

    async def first() -> None:
        client.like("two-loops", "m1")
        await client.flush(10)

    async def second() -> None:
        client.like("two-loops", "m2")
        await client.aclose(10)

    asyncio.run(first())
    asyncio.run(second())
    assert client.stats().delivered == 2
    caught_up(server.url)
    ids, count = applied(server.url, "two-loops")
    assert (len(ids), count) == (2, 2)
