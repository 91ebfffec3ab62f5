"""`marquee_client.pandas.send_dataframe`: a DataFrame of history through backfill rules."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import Server, applied, caught_up
from marquee_client import Client
from marquee_client.pandas import backfill_id, send_dataframe


def test_a_dataframe_of_history_is_applied_once_with_its_own_times(server: Server) -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["hist-1", "hist-1", "hist-2", "hist-2", "hist-2"],
            "item_id": ["m1", "m2", "m1", "m3", "m4"],
            "kind": ["rating", "watch", "like", "rating", "view"],
            "value": [4.5, 0.8, None, 3.0, None],
            "timestamp": pd.to_datetime(
                [
                    "2019-03-01 10:00:00",
                    "2019-03-01 10:05:00",
                    "2019-03-02 08:00:00",
                    "2019-03-02 08:01:00",
                    "2019-03-02 08:02:00",
                ]
            ),
        }
    )
    with Client(server.url) as client:
        first = send_dataframe(client, frame, batch_size=2)
        assert (first.sent, first.accepted, first.refused) == (5, 5, [])
        # Again, as after an interruption: the rows' ids are the same, nothing counts twice.
        again = send_dataframe(client, frame)
        assert again.refused == []
        caught_up(server.url)
        exported = client.export_user("hist-1")
        # The log keeps both sendings; the state applied each row once (below).
        stamps = sorted({entry["event"]["timestamp"] for entry in exported["events"]})
        assert stamps == [1551434400000, 1551434700000], "the rows keep their own times"
    for user, rows in (("hist-1", 2), ("hist-2", 3)):
        ids, count = applied(server.url, user)
        assert (len(ids), count) == (rows, rows), user
        assert all(event_id.startswith("bf-") and len(event_id) == 35 for event_id in ids)


def test_bad_rows_are_named_and_the_others_go_through(server: Server) -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["ok", "ok", "ok", None],
            "item_id": ["m1", "m2", "m3", "m4"],
            "kind": ["rating", "teleport", "rating", "like"],
            "value": [9.0, None, 4.0, None],
            "timestamp": [1_600_000_000_000, 1_600_000_000_001, None, 1_600_000_000_003],
        },
        index=["a", "b", "c", "d"],
    )
    with Client(server.url) as client:
        result = send_dataframe(client, frame)
    by_row = {refusal.row: refusal for refusal in result.refused}
    assert set(by_row) == {"a", "b", "c", "d"}
    assert by_row["a"].field == "value" and by_row["a"].message.startswith("value:")
    assert by_row["b"].field == "kind"
    assert by_row["c"].field == "timestamp"
    assert by_row["d"].field == "user_id"
    assert result.accepted == 0


def test_a_frame_without_a_required_column_is_refused_by_name(server: Server) -> None:
    with Client(server.url) as client:
        with pytest.raises(ValueError, match=r"^timestamp: the DataFrame has no such column"):
            send_dataframe(
                client, pd.DataFrame({"user_id": ["u"], "item_id": ["m"], "kind": ["like"]})
            )


def test_backfill_ids_follow_the_row_not_its_order() -> None:
    event = {"user_id": "u", "item_id": "m", "kind": "like", "timestamp": 1}
    assert backfill_id(event) == backfill_id(dict(reversed(list(event.items()))))
    assert backfill_id(event) != backfill_id({**event, "timestamp": 2})
