"""todo-client: use the To-Do app's JSON API from a terminal, traced with OpenTelemetry.

Every command is one trace that spans both processes: a root span in the client
(``todo-client add``, ...), the HTTP ``CLIENT`` span of the instrumented ``httpx``
client beneath it, and, through W3C ``traceparent`` propagation, the app's
``SERVER`` span beneath that. The client's service name is ``todo-client``.

Usage::

    $ todo-client add "Buy milk"
    Added task 1: Buy milk
    $ todo-client list
    ID  Done  Description
     1  [ ]   Buy milk
    1 task, 0 done
    $ todo-client done 1
    Marked task 1 as done: Buy milk
    $ todo-client undone 1
    Marked task 1 as not done: Buy milk
    $ todo-client delete 1
    Deleted task 1
    $ todo-client traffic --rate 5 --duration 60 --seed 7

``traffic`` sends realistic demo traffic for the viewers to show: it lists, adds,
reads, renames, completes, reopens and deletes tasks (only the tasks it created
itself), and deliberately sends some requests that fail: unknown task ids (404) and
empty or too-long descriptions (400). The first few requests visit every kind once,
so even a short run shows them all; then the mix is random (``--seed`` makes it
repeatable). It runs at ``--rate`` requests per second for ``--duration`` seconds,
or until Ctrl+C (or SIGTERM), and then prints how many requests got each status::

    Sent 298 requests to http://localhost:5000 in 60.0 s (seed 7)
    status  requests
       200       171
       201        58
       204        21
       400        17
       404        31
     total       298

Options (before the command):

``--url URL``
    The To-Do app, default ``http://localhost:5000`` (or ``$TODO_URL``).
``--timeout SECONDS``
    How long to wait for each answer, default 10.

Exit codes: 0 success; 1 the app refused the request (the app's message is printed,
e.g. ``todo-client: error: Task 42 not found. (HTTP 404)``); 2 bad command line;
3 no usable answer (``todo-client: error: cannot reach http://localhost:5000:
connection refused``, a timeout, or a server that is not the To-Do app); 130
interrupted by Ctrl+C (``traffic`` still prints its summary first).

Configuration: telemetry follows the standard ``OTEL_*`` variables, exactly like the
app (``todo.telemetry.configure_sdk``), e.g.::

    $ OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 \\
        todo-client list

Without them no telemetry is exported. Under the ``opentelemetry-instrument`` agent
the agent's SDK is used as is. Everything is flushed before the command exits.
"""

from __future__ import annotations

from todo.client.cli import main

__all__ = ["main"]
