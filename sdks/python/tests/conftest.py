"""Helpers of the Python SDK's tests: a real `marquee serve` child process on a free loopback
port, started by each test that needs one (never a mock)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[3]
#: How long a test waits for something that should take well under a second.
DEADLINE = 60.0

T = TypeVar("T")


def marquee_bin() -> str:
    """`MARQUEE_BIN`, else the debug build of the repository."""
    if os.environ.get("MARQUEE_BIN"):
        return os.environ["MARQUEE_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR")
    base = (REPO / target) if target else REPO / "target"
    return str(base / "debug" / "marquee")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def create_key(data_dir: str, scope: str, rate: Optional[int] = None) -> str:
    args = [marquee_bin(), "keys", "create", "--scope", scope, "--data-dir", data_dir]
    if rate is not None:
        args += ["--rate", str(rate)]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def write_config(data_dir: str, text: str) -> str:
    path = Path(data_dir) / "marquee.toml"
    path.write_text(text)
    return str(path)


class Server:
    """A `marquee serve` child process."""

    def __init__(
        self, data_dir: str, port: Optional[int] = None, extra: Optional[List[str]] = None
    ):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra = extra or []
        self.url = f"http://127.0.0.1:{self.port}"
        # Auth off unless `extra` turns it on (a flag wins over its variable).
        env = dict(os.environ, MARQUEE_LOG="warn", MARQUEE_AUTH="off")
        self.process = subprocess.Popen(
            [
                marquee_bin(),
                "serve",
                "--data-dir",
                data_dir,
                "--listen",
                f"127.0.0.1:{self.port}",
                *self.extra,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )

    def ready(self) -> Server:
        started = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError("marquee serve exited during start-up")
            if time.monotonic() - started > DEADLINE:
                raise RuntimeError("marquee serve not ready in time")
            time.sleep(0.025)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def data_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="marquee-py-sdk-") as path:
        yield path


@pytest.fixture
def server(data_dir: str) -> Iterator[Server]:
    running = Server(data_dir).ready()
    try:
        yield running
    finally:
        running.stop()


def eventually(what: str, check: Callable[[], T]) -> T:
    """Polls `check` until it returns something truthy, or fails at the deadline."""
    started = time.monotonic()
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() - started > DEADLINE:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def get_json(url: str, key: Optional[str] = None) -> Any:
    request = urllib.request.Request(url, headers={"authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def caught_up(url: str, admin_key: Optional[str] = None) -> None:
    """Waits until the processor has applied everything appended so far."""
    eventually(
        "the processor to catch up",
        lambda: get_json(f"{url}/v1/admin/processor", admin_key)["lag_events"] == 0,
    )


def applied(url: str, user: str, admin_key: Optional[str] = None) -> Tuple[Set[str], int]:
    """The ids of the events applied for `user`, and its event count, from the export."""
    quoted = urllib.request.quote(user, safe="")
    exported: Dict[str, Any] = get_json(f"{url}/v1/users/{quoted}/export", admin_key)
    ids = {event["event_id"] for event in exported.get("applied_events", [])}
    return ids, int((exported.get("state") or {}).get("event_count", 0))


def metric(url: str, series: str) -> float:
    """One sample of the server's metrics, e.g. `name{label="x"}`; 0 when absent."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line[len(series) + 1 :])
    return 0.0


def event_requests(url: str) -> float:
    return metric(
        url, 'marquee_http_request_duration_seconds_count{route="/v1/events",status="2xx"}'
    )
