"""Demo traffic for the To-Do app: a realistic, repeatable mix of JSON API requests.

`TrafficGenerator` behaves like a handful of people using the app: it lists tasks,
adds them (with descriptions people write), reads, renames, completes, reopens and
deletes them, and makes the mistakes people make: unknown task ids (404) and empty
or too-long descriptions (400). It only ever changes tasks it created itself.

The first requests visit every kind once (`TOUR`), so even a short run shows them
all in a viewer; after that the mix is random with `ACTION_WEIGHTS`, repeatable
with a seed. Each request is its own trace, rooted in a span ``traffic <action>``
(e.g. ``traffic add``) linked to the span of the command that started the run.

Usage::

    generator = TrafficGenerator(http, tracer, seed=7)
    report = generator.run(rate=5, duration=60)
    print(report.summary("http://localhost:5000"))
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Tracer

from todo.client.api import (
    API_TASKS,
    ATTR_EXECUTABLE,
    SERVICE_NAME,
    ClientError,
    as_task,
    send,
)

logger = logging.getLogger(__name__)

#: Default and highest rate (requests per second). The generator is one sequential
#: client meant to make the viewers interesting, not a load tester (use ``make
#: bench`` or wrk for that): 100/s already fills a local viewer with 360,000 traces
#: an hour.
DEFAULT_RATE = 5.0
MAX_RATE = 100.0
#: Default and longest run (seconds). A day covers a demo left running overnight;
#: anything longer is a forgotten process.
DEFAULT_DURATION_S = 60.0
MAX_DURATION_S = 24 * 3600.0
#: After the app has answered once, the generator rides out restarts and outages
#: this long (seconds) before it gives up: long enough for an app restart or a
#: couple of timed-out requests, short enough that a stopped app soon stops it.
GIVE_UP_AFTER_S = 30.0
#: The generator keeps at most this many of its own tasks: at the limit it deletes
#: rather than adds, so a long run does not grow the database and every list
#: response without bound.
MAX_OWNED_TASKS = 40
#: Ids for deliberate 404s: within the 32-bit id range (so the database is asked and
#: answers "not found"), and far above any id a demo database reaches.
UNKNOWN_ID_MIN = 1_000_000_000
UNKNOWN_ID_MAX = 1_999_999_999
#: The app's longest description (``todo.models.MAX_DESCRIPTION_LENGTH``, the API
#: contract), restated so the client does not import the database layer; the
#: generator sends one character more to get a 400. A test keeps the two equal.
MAX_DESCRIPTION_LENGTH = 256
#: Span attribute naming what a traffic request does (``add``, ``missing``, ...).
ATTR_TRAFFIC_ACTION = "todo_client.traffic.action"

#: Things people write on a to-do list, for realistic descriptions.
CHORES = (
    "Buy milk",
    "Call the plumber",
    "Water the plants",
    "Pay the electricity bill",
    "Book dentist appointment",
    "Renew passport",
    "Take out the recycling",
    "Reply to Sam's email",
    "Pick up dry cleaning",
    "Walk the dog",
    "Fix the squeaky door",
    "Order printer ink",
    "Plan the weekend trip",
    "Return library books",
    "Schedule car service",
    "Write the quarterly report",
    "Review pull request",
    "Buy a birthday present for Alex",
    "Clean the fridge",
    "Back up the laptop",
)
#: Deliberately invalid descriptions (empty, blank, one character too long): each gets a 400.
INVALID_DESCRIPTIONS = ("", "   ", "x" * (MAX_DESCRIPTION_LENGTH + 1))

#: Relative weights of the random mix (after the first tour of every action):
#: mostly reading and adding, some completing and deleting, and a few mistakes.
ACTION_WEIGHTS: dict[str, int] = {
    "list": 30,
    "add": 20,
    "get": 10,
    "complete": 12,
    "reopen": 3,
    "rename": 3,
    "delete": 10,
    "missing": 6,
    "invalid": 6,
}
#: The first requests of every run, in order: each kind of request once, so the
#: viewer shows all of them after a few seconds whatever the seed.
TOUR = ("add", "list", "complete", "missing", "invalid", "get", "delete")


@dataclass
class TrafficReport:
    """Counts of what ``traffic`` sent, by HTTP status (or transport failure)."""

    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    seed: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False

    @property
    def total(self) -> int:
        """All requests sent, answered or not."""
        return sum(self.statuses.values()) + sum(self.failures.values())

    def summary(self, url: str) -> str:
        """Render the table printed at the end of a run."""
        head = f"Sent {self.total} requests to {url} in {self.elapsed_s:.1f} s (seed {self.seed})"
        if self.interrupted:
            head += ", interrupted"
        rows = [(str(status), n) for status, n in sorted(self.statuses.items())]
        rows += [(f"failed: {reason}", n) for reason, n in sorted(self.failures.items())]
        rows.append(("total", self.total))
        width = max(len("status"), *(len(label) for label, _ in rows))
        lines = [head, f"{'status':>{width}}  requests"]
        lines += [f"{label:>{width}}  {n:>8}" for label, n in rows]
        return "\n".join(lines)


class TrafficGenerator:
    """Send a realistic mix of JSON API requests, each in its own trace.

    Each request runs inside a root span ``traffic <action>`` (e.g. ``traffic add``)
    so every request is one short trace, as it would be from many real users; the
    span links to the span of the ``traffic`` command that sent it.
    """

    def __init__(self, http: httpx.Client, tracer: Tracer, *, seed: int) -> None:
        self.http = http
        self.tracer = tracer
        # Not for security: a seeded, repeatable mix of demo requests.
        self.rng = random.Random(seed)  # noqa: S311
        self.report = TrafficReport(seed=seed)
        #: The ids of the tasks this generator created and has not deleted.
        self.open_ids: list[int] = []
        self.done_ids: list[int] = []
        self._last_answer: float | None = None
        # Each action sends exactly one request.
        self._actions: dict[str, Callable[[], None]] = {
            "list": self._list,
            "add": self._add,
            "get": self._get,
            "complete": lambda: self._set_done(self.open_ids, self.done_ids, done=True),
            "reopen": lambda: self._set_done(self.done_ids, self.open_ids, done=False),
            "rename": self._rename,
            "delete": self._delete,
            "missing": self._missing,
            "invalid": self._invalid,
        }

    def run(self, *, rate: float, duration: float) -> TrafficReport:
        """Send about ``rate`` requests per second for ``duration`` seconds.

        Raises:
            ClientError: The app could not be reached at the start, or stopped
                answering for `GIVE_UP_AFTER_S`.
            KeyboardInterrupt: Ctrl+C; `report` holds what was sent so far.
        """
        interval = 1.0 / rate
        command = trace.get_current_span().get_span_context()
        links = [trace.Link(command)] if command.is_valid else None
        start = time.monotonic()
        deadline = start + duration
        due = start
        step = 0
        try:
            while (now := time.monotonic()) < deadline:
                if now < due:
                    time.sleep(min(due, deadline) - now)
                    continue
                action = self._feasible(TOUR[step] if step < len(TOUR) else self._pick())
                step += 1
                with self.tracer.start_as_current_span(
                    f"traffic {action}",
                    context=Context(),  # a new trace per request, linked to the command
                    attributes={ATTR_EXECUTABLE: SERVICE_NAME, ATTR_TRAFFIC_ACTION: action},
                    links=links,
                ):
                    self._actions[action]()
                # A fixed schedule keeps the rate; after a stall, start afresh
                # rather than catching up with a burst.
                due = max(due + interval, time.monotonic() - interval)
        finally:
            self.report.elapsed_s = time.monotonic() - start
        return self.report

    def _pick(self) -> str:
        weights = dict(ACTION_WEIGHTS)
        if len(self.open_ids) + len(self.done_ids) >= MAX_OWNED_TASKS:
            weights["add"] = 0
            weights["delete"] *= 3
        names = list(weights)
        return self.rng.choices(names, weights=[weights[n] for n in names])[0]

    def _feasible(self, action: str) -> str:
        """Return ``action``, or what to do instead when there is no task for it."""
        owned = self.open_ids or self.done_ids
        if action in ("get", "rename", "delete") and not owned:
            return "add"
        if (action == "complete" and not self.open_ids) or (
            action == "reopen" and not self.done_ids
        ):
            return "list"
        return action

    def _request(
        self, method: str, task_id: int | None = None, *, json: Any = None
    ) -> httpx.Response | None:
        """Send one request and count its status; ``None`` if it got no answer."""
        path = API_TASKS if task_id is None else f"{API_TASKS}/{task_id}"
        try:
            response = send(self.http, method, path, json=json)
        except ClientError as exc:
            if self._last_answer is None:
                raise  # never reached: the URL is wrong or the app is not running
            if time.monotonic() - self._last_answer > GIVE_UP_AFTER_S:
                raise ClientError(
                    f"{exc.message} (no answer for {GIVE_UP_AFTER_S:g} s)",
                    exit_code=exc.exit_code,
                    error_type=exc.error_type,
                ) from exc
            self.report.failures["timeout" if "Timeout" in exc.error_type else "no answer"] += 1
            logger.debug("no answer: %s", exc.message)
            return None
        self._last_answer = time.monotonic()
        self.report.statuses[response.status_code] += 1
        if response.status_code == httpx.codes.NOT_FOUND and task_id is not None:
            # Someone else (a person in the browser) deleted one of ours: forget it.
            self._forget(task_id)
        return response

    def _forget(self, task_id: int) -> None:
        for ids in (self.open_ids, self.done_ids):
            if task_id in ids:
                ids.remove(task_id)

    def _list(self) -> None:
        self._request("GET")

    def _add(self) -> None:
        description = self.rng.choice(CHORES)
        response = self._request("POST", json={"description": description})
        if response is not None and response.status_code == httpx.codes.CREATED:
            with contextlib.suppress(ValueError, ClientError):
                self.open_ids.append(as_task(response.json(), response)["id"])

    def _get(self) -> None:
        task_id = self.rng.choice(self.open_ids + self.done_ids)
        self._request("GET", task_id)

    def _set_done(self, source: list[int], target: list[int], *, done: bool) -> None:
        task_id = self.rng.choice(source)
        response = self._request("PATCH", task_id, json={"done": done})
        if response is not None and response.status_code == httpx.codes.OK:
            source.remove(task_id)
            target.append(task_id)

    def _rename(self) -> None:
        task_id = self.rng.choice(self.open_ids + self.done_ids)
        description = f"{self.rng.choice(CHORES)} (again)"
        self._request("PATCH", task_id, json={"description": description})

    def _delete(self) -> None:
        # Finished tasks are the ones people clear away.
        task_id = self.rng.choice(self.done_ids or self.open_ids)
        response = self._request("DELETE", task_id)
        if response is not None and response.status_code == httpx.codes.NO_CONTENT:
            self._forget(task_id)

    def _missing(self) -> None:
        task_id = self.rng.randint(UNKNOWN_ID_MIN, UNKNOWN_ID_MAX)
        method = self.rng.choice(("GET", "PATCH", "DELETE"))
        json = {"done": True} if method == "PATCH" else None
        self._request(method, task_id, json=json)

    def _invalid(self) -> None:
        description = self.rng.choice(INVALID_DESCRIPTIONS)
        self._request("POST", json={"description": description})


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt while the block runs.

    So Ctrl+C, a supervisor's SIGTERM, and ``kill -INT`` from a script all end the
    run the same way: summary printed, telemetry flushed. SIGINT needs this too: a
    background job of a non-interactive shell (``todo-client traffic &`` in a
    script) starts with SIGINT ignored, and would otherwise ignore ``kill -INT``.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = {
            signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
            signal.SIGTERM: signal.signal(signal.SIGTERM, interrupt),
        }
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
