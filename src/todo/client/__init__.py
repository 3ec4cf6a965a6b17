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
itself, at most 40 at a time), and deliberately sends some requests that fail:
unknown task ids (404) and empty, blank or too-long descriptions (400). The first
seven requests visit every kind once, so even a short run shows them all; then the
mix is random (``--seed N`` repeats it). It sends ``--rate`` requests per second
(default 5, at most 100) for ``--duration`` seconds (default 60, at most a day),
each request its own trace (``traffic add``, ``traffic missing``, ...). Ctrl+C or
SIGTERM stops it early. Then it prints how many requests got each status::

    Sending about 5 requests/s to http://localhost:5000 for 60 s (seed 7); Ctrl+C stops
    Sent 300 requests to http://localhost:5000 in 60.0 s (seed 7)
    status  requests
       200       175
       201        61
       204        25
       400        23
       404        16
     total       300

If the app stops answering during a run, ``traffic`` counts the failures (``failed:
no answer``) and carries on for up to 30 s, so an app restart does not end it.

Options (before the command):

``--url URL``
    The To-Do app: default ``$TODO_URL``, else ``http://localhost:5000``.
``--timeout SECONDS``
    How long to wait for each answer, default 10.

Errors are one line on stderr, never a traceback, with the exit code:

=====  ==================================================================
 code  meaning
=====  ==================================================================
 0     success
 1     the app refused the request; its message and the status are printed:
       ``todo-client: error: There is no task 42; it may have been deleted.
       (HTTP 404)``
 2     a bad command line (usage printed by argparse)
 3     no usable answer: ``todo-client: error: cannot reach
       http://localhost:5000: connection refused``, a timeout, or a server
       that is not the To-Do app
 130   stopped by Ctrl+C or SIGTERM (``traffic`` prints its summary first)
=====  ==================================================================

Configuration:
    Telemetry follows the standard ``OTEL_*`` variables, exactly as the app's
    does (`todo.telemetry.configure_sdk`): nothing is exported unless an exporter
    variable asks for it, and ``OTEL_SERVICE_NAME`` overrides ``todo-client``::

        $ OTEL_TRACES_EXPORTER=otlp OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \\
          OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 todo-client list

    Everything is flushed before the command exits; when the collector is down
    that costs a few seconds of retries (bounded by ``OTEL_EXPORTER_OTLP_TIMEOUT``)
    and a warning from the exporter, and the exit code is unchanged. Under the
    ``opentelemetry-instrument`` agent the agent's SDK and httpx instrumentation
    are used as they are (set ``OTEL_SERVICE_NAME=todo-client`` then).
    ``OTEL_PROPAGATORS`` changes the propagation format (default W3C
    ``tracecontext,baggage``).

Telemetry:
    Each command is one root ``INTERNAL`` span ``todo-client <command>`` with the
    CLI attributes of the semantic conventions (``process.executable.name``,
    ``process.pid``, ``process.exit.code``; ``error.type`` and status ERROR when
    the exit code is not 0) and ``todo.task.id`` where there is one. Beneath it,
    one ``CLIENT`` span per request from the httpx instrumentation (named after
    the method, e.g. ``POST``), whose context the app continues. ``traffic``
    requests are root spans ``traffic <action>`` (attribute
    ``todo_client.traffic.action``) linked to the ``todo-client traffic`` span.
"""

from __future__ import annotations

from todo.client.cli import main

__all__ = ["main"]
