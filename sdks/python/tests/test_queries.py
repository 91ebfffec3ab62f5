"""Typed queries, catalogue upserts, search, user export and erasure against a real node."""

from __future__ import annotations

import httpx
import pytest

from conftest import Server, caught_up, eventually
from marquee_client import Client, FacetCount, Item, MarqueeError


def test_typed_queries_and_catalogue_upserts(server: Server) -> None:
    with Client(server.url, linger=0.005) as client:
        items = [
            Item(
                f"f{n}", title=f"Film f{n}", genres=["Drama" if n % 2 == 0 else "Comedy"], year=1999
            )
            for n in range(12)
        ]
        upserted = client.upsert_items(items)
        assert (upserted.upserted, upserted.rejected) == (12, [])
        details = client.item("f3")
        assert (details.item_id, details.title, details.genres, details.year) == (
            "f3",
            "Film f3",
            ["Comedy"],
            1999,
        )
        assert details.in_catalogue

        for viewer in range(6):
            for item in items:
                client.rate(f"fan-{viewer}", item.item_id, 4)
        newcomer = "new viewer/ü"
        client.rate(newcomer, "f0", 5)
        client.flush(10)
        caught_up(server.url)

        experiment = {"name": "e1", "status": "running", "variants": [{"name": "a", "share": 1}]}
        created = httpx.post(f"{server.url}/v1/admin/experiments", json=experiment)
        assert created.status_code == 201, created.text
        picks = eventually(
            "recommendations for the newcomer",
            lambda: (answer := client.recommendations(newcomer, count=5)).items and answer,
        )
        assert picks.user_id == newcomer
        assert 0 < len(picks.items) <= 5
        assert all(pick.item_id != "f0" for pick in picks.items), "seen items are left out"
        assert picks.experiments == {"e1": "a"}

        # The list shown, then a click on its second item: both name the list.
        client.impression(newcomer, picks.recommendation_id, range(len(picks.items)))
        client.click(
            newcomer, picks.items[1].item_id, recommendation_id=picks.recommendation_id, position=1
        )
        client.flush(10)
        caught_up(server.url)
        results = httpx.get(f"{server.url}/v1/admin/experiments/e1/results").json()
        group = results["groups"][0]
        assert (group["impressions"], group["clicked"], group["click_positions"][1]) == (1, 1, 1)

        comedies = client.recommendations(newcomer, genre="comedy", exclude=["f1", "f3"])
        assert comedies.items
        for pick in comedies.items:
            assert pick.genres == ["Comedy"]
            assert pick.item_id not in ("f1", "f3")
        # A filter, then the next page of the same ranking with nothing shown again.
        dramas = 'genres HAS "Drama" AND NOT item_id IN ["f0"]'
        first = client.recommendations(newcomer, count=2, filter=dramas)
        assert len(first.items) == 2 and first.next_page_token
        second = client.recommendations(
            newcomer, count=2, filter=dramas, page_token=first.next_page_token
        )
        shown = {item.item_id for item in first.items}
        assert len(second.items) == 2
        for item in second.items:
            assert item.genres == ["Drama"] and item.item_id != "f0"
            assert item.item_id not in shown
        client.delete_item(second.items[0].item_id)
        after = client.trending(count=20)
        assert all(item.item_id != second.items[0].item_id for item in after)
        with pytest.raises(MarqueeError) as refused:
            client.delete_item("no-such-item")
        assert refused.value.status == 404
        similar = client.similar("f0", count=3)
        assert 0 < len(similar) <= 3 and all(item.item_id != "f0" for item in similar)
        trending = client.trending(count=4, genre="Drama")
        assert len(trending) == 4 and all(item.genres == ["Drama"] for item in trending)

        found = client.search("filmm f7", genre="comedy", year_from=1990)
        assert found.items[0].item_id == "f7"
        assert all(item.genres == ["Comedy"] for item in found.items)
        assert found.decades == [FacetCount(1990, found.total)]
        assert not found.personalised
        suggestions = client.suggest("film f1", count=3)
        assert len(suggestions) == 3
        assert all((s.title or "").startswith("Film f1") for s in suggestions)

        clicked = picks.items[1].item_id
        summary = client.user(newcomer)
        assert (summary.event_count, sorted(summary.seen_items)) == (2, sorted(["f0", clicked]))
        exported = [entry["event"] for entry in client.export_user(newcomer)["events"]]
        assert [event.get("item_id") for event in exported] == ["f0", None, clicked]
        assert exported[1]["recommendation_id"] == picks.recommendation_id
        assert (exported[2]["recommendation_id"], exported[2]["position"]) == (
            picks.recommendation_id,
            1,
        )
        status = client.processor()
        assert status.lag_events == 0 and not status.paused

        # As a job the client follows: the same export.
        via_job = client.export_user(newcomer, respond_async=True)
        assert via_job["user_id"] == newcomer
        assert [entry["event"] for entry in via_job["events"]] == exported

        erased = client.erase_user(newcomer, respond_async=True)
        assert erased["user_id"] == newcomer
        assert erased["erased"]["log_events"] == 3
        with pytest.raises(MarqueeError) as nothing:
            client.export_user(newcomer, respond_async=True)
        assert nothing.value.status == 404
        with pytest.raises(MarqueeError) as gone:
            client.user(newcomer)
        assert gone.value.status == 404
        assert "marquee_ingest_events_accepted_total" in client.metrics()


def test_refused_queries_raise_with_the_parameter_named(server: Server) -> None:
    with Client(server.url) as client:
        with pytest.raises(MarqueeError) as too_many:
            client.recommendations("anyone", count=1000)
        assert (too_many.value.status, too_many.value.code) == (400, "invalid_parameter")
        assert too_many.value.message.startswith("count:")
        with pytest.raises(MarqueeError) as blank:
            client.search(" ")
        assert (blank.value.status, blank.value.code) == (400, "invalid_parameter")
        assert blank.value.message.startswith("q:")
        refused = client.upsert_items([{"item_id": "bad", "year": "nineteen"}])
        assert refused.upserted == 0
        assert [(r.index, r.field) for r in refused.rejected] == [(0, "year")], refused
