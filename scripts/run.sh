#!/usr/bin/env bash
# `make run`: otelviewer (the local telemetry backend) plus the To-Do app running
# under the zero-code agent, exporting traces, metrics and logs to it over OTLP.
# Ctrl+C stops both. Ports can be moved with the variables below.
set -euo pipefail
cd "$(dirname "$0")/.."

APP_PORT=${APP_PORT:-5000}
OTLP_GRPC_PORT=${OTLP_GRPC_PORT:-4317}
OTLP_HTTP_PORT=${OTLP_HTTP_PORT:-4318}
UI_PORT=${UI_PORT:-16686}
VIEWER_DB=${VIEWER_DB:-instance/otelviewer.db}
TRAFFIC=${TRAFFIC:-}
# How long we wait for a listener before giving up (seconds).
STARTUP_TIMEOUT=30

# Job control: each program below runs in its own process group, so Ctrl+C in
# the terminal reaches this script only, and cleanup() stops them in order.
set -m
pids=()
watchdog=
cleanup() {
  trap '' INT TERM  # a second Ctrl+C must not cut the clean stop short
  trap - EXIT
  [ -z "$watchdog" ] || kill "$watchdog" 2>/dev/null || true
  # Newest first, one at a time, so the app flushes its last telemetry to
  # otelviewer before otelviewer stops (the app and the client turn SIGTERM
  # into a clean exit, like Ctrl+C).
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap cleanup INT TERM EXIT

# Whoever started us (make passes its own pid; else our parent). A signal sent to
# it alone, as `timeout 60 make run` or a service manager sends SIGTERM to make,
# never reaches us: when it is gone, stop as if it had been passed on.
OWNER=${RUN_OWNER:-$PPID}
( while kill -0 "$OWNER" 2>/dev/null; do sleep 1; done; kill -TERM $$ 2>/dev/null ) &
watchdog=$!

wait_for_port() {  # port name
  for _ in $(seq $((STARTUP_TIMEOUT * 10))); do
    if python -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "run: $2 did not start on port $1 within ${STARTUP_TIMEOUT}s" >&2
  exit 1
}

mkdir -p "$(dirname "$VIEWER_DB")"
otelviewer serve --db "$VIEWER_DB" \
  --grpc-port "$OTLP_GRPC_PORT" --http-port "$OTLP_HTTP_PORT" --ui-port "$UI_PORT" &
pids+=($!)
wait_for_port "$OTLP_GRPC_PORT" otelviewer
wait_for_port "$UI_PORT" "the otelviewer UI"

# The agent reads these standard variables; see docs/telemetry-reference.md.
export OTEL_SERVICE_NAME=todo
export OTEL_TRACES_EXPORTER=otlp OTEL_METRICS_EXPORTER=otlp OTEL_LOGS_EXPORTER=otlp
export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_GRPC_PORT"
export OTEL_EXPORTER_OTLP_INSECURE=true
export OTEL_METRIC_EXPORT_INTERVAL=5000      # 5 s instead of 60 s: metrics show up quickly
export OTEL_PYTHON_LOG_CORRELATION=true      # trace ids in the text log lines too
# What keeps telemetry cheap (measured by `make bench`, see docs/benchmarks.md):
# small batches every 0.5 s (a request shows up in the viewer at once, and a
# big batch's encoding no longer stalls a request), no exemplars, and no second
# copy of the SQLAlchemy instrumentation (the app traces its own engine).
export OTEL_BSP_MAX_EXPORT_BATCH_SIZE=32 OTEL_BSP_SCHEDULE_DELAY=500
export OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=32 OTEL_BLRP_SCHEDULE_DELAY=500
export OTEL_METRICS_EXEMPLAR_FILTER=always_off
export OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=sqlalchemy
opentelemetry-instrument flask run --host 127.0.0.1 --port "$APP_PORT" --no-reload &
pids+=($!)
wait_for_port "$APP_PORT" "the To-Do app"

if [ -n "$TRAFFIC" ]; then
  OTEL_SERVICE_NAME=todo-client todo-client --url "http://127.0.0.1:$APP_PORT" \
    traffic --rate 2 --duration 3600 >/dev/null &
  pids+=($!)
fi

cat <<MSG

  To-Do app:          http://localhost:$APP_PORT
  otelviewer (traces, logs, metrics):  http://localhost:$UI_PORT
  Jaeger-compatible API:  http://localhost:$UI_PORT/api/services
  OTLP receivers:     grpc 127.0.0.1:$OTLP_GRPC_PORT, http 127.0.0.1:$OTLP_HTTP_PORT
${TRAFFIC:+  Demo traffic:       todo-client traffic (2 requests/s)
}
  Press Ctrl+C to stop.

MSG
wait -n "${pids[@]}" || true
