"""Sends a pandas DataFrame of historical events to a running node, by the rules of
``marquee backfill`` (docs/OPERATIONS.md):

- Each row is an event: ``user_id``, ``item_id``, ``kind`` and ``timestamp`` are required
  columns; ``value``, ``event_id`` and ``context`` (a dict per row) are optional.
- ``timestamp`` is the moment it happened: milliseconds since the Unix epoch, or a pandas
  datetime column (naive values are taken as UTC). A row without one is refused: history
  sent without its time would all look like now.
- A row without an ``event_id`` gets ``bf-`` and 128 bits of the SHA-256 of its JSON, as
  ``marquee backfill`` gives a line without one: sending the frame twice, or again after an
  interruption, applies each row once.
- Rows go in batches of ``batch_size`` through ``Client.send_events`` (retried on network
  errors, 429 and 5xx); refused rows are returned with their index and the field at fault,
  and the others go through.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from ._core import MAX_BATCH_SIZE
from ._sync import Client
from ._types import EVENT_KINDS

if TYPE_CHECKING:  # pragma: no cover
    import pandas

REQUIRED = ("user_id", "item_id", "kind", "timestamp")


@dataclass(frozen=True)
class RowRefusal:
    """A row the client or the server refused: its index label, the field, the message."""

    row: Any
    field: str
    message: str


@dataclass
class BackfillResult:
    #: Rows sent to the server.
    sent: int = 0
    #: Rows the server appended (a row already applied before is appended and applied once).
    accepted: int = 0
    refused: List[RowRefusal] = field(default_factory=list)


def backfill_id(event: Dict[str, Any]) -> str:
    """``bf-`` and the first 128 bits of the SHA-256 of the event's JSON (sorted keys)."""
    line = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return "bf-" + hashlib.sha256(line.encode()).hexdigest()[:32]


def send_dataframe(
    client: Client, frame: pandas.DataFrame, *, batch_size: int = 5_000
) -> BackfillResult:
    """Sends every row of ``frame`` as a historical event; see the module docs."""
    import pandas as pd

    missing = [column for column in REQUIRED if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{missing[0]}: the DataFrame has no such column (it needs {', '.join(REQUIRED)})"
        )
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size: must be 1 to {MAX_BATCH_SIZE}, got {batch_size}")
    timestamps = frame["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(timestamps):
        if getattr(timestamps.dt, "tz", None) is None:
            timestamps = timestamps.dt.tz_localize("UTC")
        epoch = pd.Timestamp(0, tz="UTC")
        millis = (timestamps - epoch) // pd.Timedelta(milliseconds=1)
    else:
        millis = timestamps

    result = BackfillResult()
    batch: List[Dict[str, Any]] = []
    labels: List[Any] = []

    def send() -> None:
        if not batch:
            return
        answer = client.send_events(batch)
        result.sent += len(batch)
        result.accepted += answer.accepted
        for refusal in answer.rejected:
            result.refused.append(RowRefusal(labels[refusal.index], refusal.field, refusal.message))
        batch.clear()
        labels.clear()

    columns = list(frame.columns)
    for label, row, stamp in zip(frame.index, frame.itertuples(index=False, name=None), millis):
        values = dict(zip(columns, row))
        event, problem = _event(values, stamp)
        if problem is not None:
            result.refused.append(RowRefusal(label, problem[0], problem[1]))
            continue
        batch.append(event)
        labels.append(label)
        if len(batch) >= batch_size:
            send()
    send()
    return result


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(isinstance(value, float) and math.isnan(value)) or str(value) == "NaT"
    except TypeError:
        return False


def _event(values: Dict[str, Any], stamp: Any) -> tuple[Dict[str, Any], Optional[tuple[str, str]]]:
    for name in ("user_id", "item_id", "kind"):
        if _missing(values.get(name)):
            return {}, (name, f"{name}: is missing")
    if _missing(stamp):
        return {}, ("timestamp", "timestamp: is missing (history needs the moment it happened)")
    kind = str(values["kind"])
    if kind not in EVENT_KINDS:
        return {}, ("kind", f"kind: must be one of {', '.join(EVENT_KINDS)}, got {kind!r}")
    event: Dict[str, Any] = {
        "user_id": str(values["user_id"]),
        "item_id": str(values["item_id"]),
        "kind": kind,
        "timestamp": int(stamp),
    }
    if not _missing(values.get("value")):
        event["value"] = float(values["value"])
    context = values.get("context")
    if isinstance(context, dict) and context:
        event["context"] = {str(k): str(v) for k, v in context.items()}
    given_id = values.get("event_id")
    event["event_id"] = str(given_id) if not _missing(given_id) else backfill_id(event)
    return event, None
