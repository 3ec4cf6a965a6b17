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
    Task,
    as_task,
    send,
)
from todo.models import MAX_DESCRIPTION_LENGTH

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

    def __init__(
        self,
        http: httpx.Client,
        tracer: Tracer,
        *,
        seed: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = http
        self.tracer = tracer
        # Not for security: a seeded, repeatable mix of demo requests.
        self.rng = random.Random(seed)  # noqa: S311
        self.clock = clock
        self.sleep = sleep
        self.report = TrafficReport(seed=seed)
        self.open_ids: list[int] = []
        self.done_ids: list[int] = []
        self._answered = False
        self._last_answer = 0.0
        self._actions: dict[str, Callable[[], None]] = {
            "list": self._do_list,
            "add": self._do_add,
            "get": self._do_get,
            "complete": self._do_complete,
            "reopen": self._do_reopen,
            "rename": self._do_rename,
            "delete": self._do_delete,
            "missing": self._do_missing,
            "invalid": self._do_invalid,
        }

    def run(self, *, rate: float, duration: float) -> TrafficReport:
        """Send about ``rate`` requests per second for ``duration`` seconds.

        Raises:
            ClientError: The app could not be reached at the start, or stopped
                answering for `GIVE_UP_AFTER_S`.
            KeyboardInterrupt: Ctrl+C; `report` holds what was sent so far.
        """
        interval = 1.0 / rate
        # Each request is its own trace; a link leads back to the run's command span.
        command = trace.get_current_span().get_span_context()
        links = [trace.Link(command)] if command.is_valid else None
        start = self.clock()
        deadline = start + duration
        due = start
        step = 0
        try:
            while (now := self.clock()) < deadline:
                if now < due:
                    self.sleep(min(due, deadline) - now)
                    continue
                action = TOUR[step] if step < len(TOUR) else self._pick()
                step += 1
                with self.tracer.start_as_current_span(
                    f"traffic {action}",
                    context=Context(),
                    attributes={ATTR_EXECUTABLE: SERVICE_NAME, ATTR_TRAFFIC_ACTION: action},
                    links=links,
                ):
                    self._actions[action]()
                # A fixed schedule keeps the rate; after a stall, start afresh
                # rather than catching up with a burst.
                due = max(due + interval, self.clock() - interval)
        finally:
            self.report.elapsed_s = self.clock() - start
        return self.report

    def _pick(self) -> str:
        weights = dict(ACTION_WEIGHTS)
        if len(self.open_ids) + len(self.done_ids) >= MAX_OWNED_TASKS:
            weights["add"] = 0
            weights["delete"] *= 3
        names = list(weights)
        return self.rng.choices(names, weights=[weights[n] for n in names])[0]

    # Each action sends exactly one request.

    def _request(self, method: str, path: str, *, json: Any = None) -> httpx.Response | None:
        try:
            response = send(self.http, method, path, json=json)
        except ClientError as exc:
            now = self.clock()
            if not self._answered or now - self._last_answer > GIVE_UP_AFTER_S:
                if self._answered:
                    exc.message = f"{exc.message} (no answer for {GIVE_UP_AFTER_S:g} s)"
                    exc.args = (exc.message,)
                raise
            self.report.failures[_reason_label(exc)] += 1
            logger.debug("no answer: %s", exc.message)
            return None
        self._answered = True
        self._last_answer = self.clock()
        self.report.statuses[response.status_code] += 1
        return response

    def _owned(self) -> list[int]:
        return self.open_ids + self.done_ids

    def _forget(self, task_id: int) -> None:
        for ids in (self.open_ids, self.done_ids):
            if task_id in ids:
                ids.remove(task_id)

    def _task_from(self, response: httpx.Response | None, status: int) -> Task | None:
        if response is None or response.status_code != status:
            return None
        try:
            return as_task(response.json(), response)
        except (ValueError, ClientError):
            return None

    def _do_list(self) -> None:
        self._request("GET", API_TASKS)

    def _do_add(self) -> None:
        description = self.rng.choice(CHORES)
        task = self._task_from(
            self._request("POST", API_TASKS, json={"description": description}),
            httpx.codes.CREATED,
        )
        if task is not None:
            self.open_ids.append(task["id"])

    def _do_get(self) -> None:
        owned = self._owned()
        if not owned:
            self._do_add()
            return
        task_id = self.rng.choice(owned)
        self._after_lookup(task_id, self._request("GET", f"{API_TASKS}/{task_id}"))

    def _do_complete(self) -> None:
        self._set_done(self.open_ids, self.done_ids, done=True)

    def _do_reopen(self) -> None:
        self._set_done(self.done_ids, self.open_ids, done=False)

    def _set_done(self, source: list[int], target: list[int], *, done: bool) -> None:
        if not source:
            self._do_add()
            return
        task_id = self.rng.choice(source)
        response = self._request("PATCH", f"{API_TASKS}/{task_id}", json={"done": done})
        if response is not None and response.status_code == httpx.codes.OK:
            source.remove(task_id)
            target.append(task_id)
        self._after_lookup(task_id, response)

    def _do_rename(self) -> None:
        owned = self._owned()
        if not owned:
            self._do_add()
            return
        task_id = self.rng.choice(owned)
        description = f"{self.rng.choice(CHORES)} (again)"
        response = self._request(
            "PATCH", f"{API_TASKS}/{task_id}", json={"description": description}
        )
        self._after_lookup(task_id, response)

    def _do_delete(self) -> None:
        # Finished tasks are the ones people clear away.
        pool = self.done_ids or self.open_ids
        if not pool:
            self._do_add()
            return
        task_id = self.rng.choice(pool)
        response = self._request("DELETE", f"{API_TASKS}/{task_id}")
        if response is not None and response.status_code in (
            httpx.codes.NO_CONTENT,
            httpx.codes.NOT_FOUND,
        ):
            self._forget(task_id)

    def _do_missing(self) -> None:
        task_id = self.rng.randint(UNKNOWN_ID_MIN, UNKNOWN_ID_MAX)
        method = self.rng.choice(("GET", "PATCH", "DELETE"))
        json = {"done": True} if method == "PATCH" else None
        self._request(method, f"{API_TASKS}/{task_id}", json=json)

    def _do_invalid(self) -> None:
        description = self.rng.choice(INVALID_DESCRIPTIONS)
        self._request("POST", API_TASKS, json={"description": description})

    def _after_lookup(self, task_id: int, response: httpx.Response | None) -> None:
        # Someone else (a person in the browser) deleted it: stop using it.
        if response is not None and response.status_code == httpx.codes.NOT_FOUND:
            self._forget(task_id)


def _reason_label(exc: ClientError) -> str:
    return "timeout" if "Timeout" in exc.error_type else "no connection"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl+C, so a supervisor's stop also prints the summary and flushes."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
