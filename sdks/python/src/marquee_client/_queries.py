"""Every query and catalogue call as a request and the parser of its answer, shared by both
clients (each sends the request its own way)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from ._errors import MarqueeError
from ._types import (
    Item,
    ItemDetails,
    ProcessorStatus,
    Recommendation,
    Recommendations,
    SearchResults,
    Suggestion,
    Upserted,
    UserSummary,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    segments: Tuple[str, ...]
    params: Dict[str, str]
    body: Optional[bytes]
    parse: Callable[[str], T]
    #: Error statuses whose body is still the answer (an upsert with every item refused: 422).
    answer_statuses: Tuple[int, ...] = ()
    #: For an operation the node may run as a job (an answer of 202): the answer a waiting
    #: request gets, from the finished job's result.
    job: Optional[Callable[[Any], T]] = None
    #: Headers beside the client's own.
    headers: Optional[Dict[str, str]] = None


def _json(text: str) -> Any:
    return json.loads(text)


def _params(**given: Any) -> Dict[str, str]:
    params = {}
    for name, value in given.items():
        if value is None:
            continue
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        else:
            params[name] = str(value)
    return params


def recommendations(
    user_id: str,
    count: Optional[int] = None,
    genre: Optional[str] = None,
    exclude: Optional[Iterable[str]] = None,
    exclude_seen: Optional[bool] = None,
    list_options: Optional[Dict[str, Any]] = None,
) -> Call[Recommendations]:
    """``list_options``: ``filter``, ``region``, ``device``, ``maturity``, ``page_token``,
    ``max_per_genre`` (docs/RULES.md)."""
    excluded = ",".join(exclude) if exclude else None
    return Call(
        "GET",
        ("v1", "users", user_id, "recommendations"),
        _params(
            count=count,
            genre=genre,
            exclude=excluded,
            exclude_seen=exclude_seen,
            **(list_options or {}),
        ),
        None,
        lambda text: Recommendations.from_json(_json(text)),
    )


def _items(text: str) -> List[Recommendation]:
    items: List[Dict[str, Any]] = _json(text).get("items", [])
    return [Recommendation.from_json(item) for item in items]


def similar(item_id: str, count: Optional[int] = None) -> Call[List[Recommendation]]:
    return Call("GET", ("v1", "items", item_id, "similar"), _params(count=count), None, _items)


def trending(
    count: Optional[int] = None, genre: Optional[str] = None
) -> Call[List[Recommendation]]:
    return Call("GET", ("v1", "trending"), _params(count=count, genre=genre), None, _items)


def search(
    text: str,
    count: Optional[int] = None,
    genre: Optional[str] = None,
    year_from: Optional[int] = None,
    year_to: Optional[int] = None,
    user_id: Optional[str] = None,
) -> Call[SearchResults]:
    params = _params(
        q=text, count=count, genre=genre, year_from=year_from, year_to=year_to, user_id=user_id
    )
    return Call(
        "GET", ("v1", "search"), params, None, lambda body: SearchResults.from_json(_json(body))
    )


def suggest(text: str, count: Optional[int] = None) -> Call[List[Suggestion]]:
    return Call(
        "GET",
        ("v1", "search", "suggest"),
        _params(q=text, count=count),
        None,
        lambda body: [Suggestion.from_json(s) for s in _json(body).get("suggestions", [])],
    )


def item(item_id: str) -> Call[ItemDetails]:
    return Call(
        "GET", ("v1", "items", item_id), {}, None, lambda t: ItemDetails.from_json(_json(t))
    )


def upsert_items(items: Sequence[Union[Item, Dict[str, Any]]]) -> Call[Upserted]:
    bodies = [entry.to_json() if isinstance(entry, Item) else dict(entry) for entry in items]
    return Call(
        "POST",
        ("v1", "items"),
        {},
        json.dumps(bodies).encode(),
        lambda t: Upserted.from_json(_json(t)),
        (422,),
    )


def user(user_id: str) -> Call[UserSummary]:
    return Call(
        "GET", ("v1", "users", user_id), {}, None, lambda t: UserSummary.from_json(_json(t))
    )


def _object(text: str) -> Dict[str, Any]:
    body: Dict[str, Any] = _json(text)
    return body


def _job_headers(respond_async: bool) -> Optional[Dict[str, str]]:
    return {"prefer": "respond-async"} if respond_async else None


def export_user(user_id: str, respond_async: bool = False) -> Call[Dict[str, Any]]:
    return Call(
        "GET",
        ("v1", "users", user_id, "export"),
        {},
        None,
        _object,
        job=lambda result: {**result, "user_id": user_id},
        headers=_job_headers(respond_async),
    )


def delete_item(item_id: str) -> Call[None]:
    return Call("DELETE", ("v1", "items", item_id), {}, None, lambda _text: None)


def erase_user(user_id: str, respond_async: bool = False) -> Call[Dict[str, Any]]:
    return Call(
        "DELETE",
        ("v1", "users", user_id),
        {},
        None,
        _object,
        job=lambda result: {"user_id": user_id, "erased": result},
        headers=_job_headers(respond_async),
    )


def job(url: str) -> Call[Dict[str, Any]]:
    """``GET`` of a job's ``url`` (``/v1/exports/{id}``, ``/v1/erasures/{id}``, …)."""
    return Call("GET", tuple(part for part in url.split("/") if part), {}, None, _object)


def job_delays() -> Iterable[float]:
    """Seconds between two polls of a job: 0.2, doubling to 2."""
    delay = 0.2
    while True:
        yield delay
        delay = min(delay * 2, 2.0)


def job_answer(call: Call[T], job: Dict[str, Any]) -> Optional[T]:
    """The answer of ``call`` once its job ``job`` ended (``None`` while it runs); its error,
    raised as a waiting request's would be, when it failed."""
    if job.get("status") == "running":
        return None
    if job.get("status") == "failed":
        error = job.get("error") or {}
        raise MarqueeError(
            int(error.get("status", 500)),
            str(error.get("code", "internal")),
            str(error.get("message", "the job failed")),
        )
    assert call.job is not None
    return call.job(job.get("result"))


def processor() -> Call[ProcessorStatus]:
    return Call(
        "GET", ("v1", "admin", "processor"), {}, None, lambda t: ProcessorStatus.from_json(_json(t))
    )


def set_processor_paused(paused: bool) -> Call[ProcessorStatus]:
    return Call(
        "POST",
        ("v1", "admin", "processor"),
        {},
        json.dumps({"paused": paused}).encode(),
        lambda t: ProcessorStatus.from_json(_json(t)),
    )


def _text(text: str) -> str:
    return text


def metrics() -> Call[str]:
    return Call("GET", ("metrics",), {}, None, _text)
