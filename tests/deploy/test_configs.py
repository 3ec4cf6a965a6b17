"""The production configuration in deploy/ is consistent, pinned and safe by default.

Docker is not available where these tests run, so they check what can be checked
without it: every file parses; the Collector's pipelines name only components
that are defined (and every defined one is used), in the right order; every
image is pinned; the app's OTEL_* settings point at the Collector service; the
published ports are bound to loopback and agree with the docs chapter's table;
Prometheus accepts its config (promtool); Grafana's data sources link to each
other; and the dashboard queries only metric and label names that the real app
emits (measured by running it, see tests/deploy/emit_metrics.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from gunicorn.app.wsgiapp import WSGIApplication
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.conftest import (
    CHAPTER,
    COLLECTOR,
    COMPOSE,
    DASHBOARD_PROVIDERS,
    DASHBOARDS,
    DATASOURCES,
    DEPLOY,
    DOCKERFILE,
    GUNICORN_CONF,
    LOKI,
    PROMETHEUS,
    load_yaml,
)
from tests.support import ROOT, venv_env

#: Collector pipelines the stack must have: one per signal.
SIGNALS = ("traces", "metrics", "logs")
#: Components defined in the Collector config but deliberately not in a pipeline.
#: Empty: an unused component is a mistake (it still starts and listens).
UNUSED_ON_PURPOSE: frozenset[str] = frozenset()
#: Component type names that the pinned Collector (0.155) only knows as
#: deprecated aliases; the canonical names are used instead.
DEPRECATED_TYPES = {
    "otlp": "otlp_grpc",
    "otlphttp": "otlp_http",
    "resourcedetection": "resource_detection",
    "prometheusremotewrite": "prometheus_remote_write",
}
#: Ports a user opens (app, Jaeger UI, Grafana, Prometheus) plus OTLP in.
EXPECTED_PUBLISHED_PORTS = {5000, 16686, 3000, 9090, 4317, 4318}
#: A pinned tag: a release number (1.2, v1.2.3, 15.18-bookworm...), never latest.
PINNED_TAG = re.compile(r"^v?\d+\.\d+(\.\d+)?([-.][\w.-]+)?$")
#: Labels that Prometheus or the Collector's exporter add; the app never emits them.
SCRAPE_LABELS = {"job", "instance", "le"}
#: How long the app may take to produce its metrics in emit_metrics.py.
EMIT_TIMEOUT_S = 60


# --- Helpers ------------------------------------------------------------------------


def component_type(component_id: str) -> str:
    """Return the type of a Collector component id (``otlp_grpc/jaeger`` -> ``otlp_grpc``)."""
    return component_id.split("/", 1)[0]


def image_tag(image: str) -> tuple[str, str | None]:
    """Split ``repo:tag`` (a registry host may carry a port: only the last ':' counts)."""
    name = image.partition("@")[0]
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, None
    return repo, tag


def published_ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Return ``(host ip, host port, container port)`` for each published port."""
    found = []
    for entry in service.get("ports", []):
        assert isinstance(entry, str), f"use the short 'ip:host:container' syntax: {entry!r}"
        parts = entry.split(":")
        assert len(parts) == 3, f"publish with an explicit host address, not {entry!r}"
        ip, host, container = parts
        found.append((ip, int(host), int(container.split("/")[0])))
    return found


def chapter_port_table() -> dict[int, str]:
    """Return {port: URL column} from the docs chapter's table whose first column is Port."""
    rows: dict[int, str] = {}
    header: list[str] | None = None
    for line in CHAPTER.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if header[0] == "port" and cells[0].isdigit():
            url_col = header.index("url") if "url" in header else 1
            rows[int(cells[0])] = cells[url_col]
    return rows


def prometheus_exprs(dashboard: dict[str, Any]) -> Iterator[str]:
    """Yield every PromQL expression of a dashboard (panels and variables)."""
    for panel in dashboard["panels"]:
        if panel.get("datasource", {}).get("uid") != "prometheus":
            continue
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("datasource", {}).get("uid") == "prometheus":
            query = variable["query"]
            yield query["query"] if isinstance(query, dict) else query


def selectors(expr: str) -> Iterator[tuple[str, set[str]]]:
    """Yield (metric name, label names) for each ``name{...}`` and ``label_values(name``."""
    for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr):
        labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", match.group(2)))
        yield match.group(1), labels
    for match in re.finditer(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", expr):
        yield match.group(1), set()


def grouping_labels(expr: str) -> set[str]:
    """Return the labels of every ``by (...)`` clause."""
    labels: set[str] = set()
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        labels.update(label.strip() for label in group.split(",") if label.strip())
    return labels


# --- Every file parses -------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [COMPOSE, COLLECTOR, PROMETHEUS, LOKI, DATASOURCES, DASHBOARD_PROVIDERS],
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_yaml_files_parse_to_mappings(path: Path) -> None:
    assert isinstance(load_yaml(path), dict)


def test_dashboards_are_valid_json_with_unique_panel_ids() -> None:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files, "no dashboard in deploy/grafana/dashboards"
    for path in files:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        assert dashboard["uid"]
        assert dashboard["title"]


# --- The Collector -------------------------------------------------------------------


def test_collector_has_a_pipeline_per_signal(collector: dict[str, Any]) -> None:
    assert set(collector["service"]["pipelines"]) == set(SIGNALS)


@pytest.mark.parametrize("kind", ["receivers", "processors", "exporters"])
def test_collector_pipelines_use_only_defined_components(
    collector: dict[str, Any], kind: str
) -> None:
    defined = set(collector[kind])
    for name, pipeline in collector["service"]["pipelines"].items():
        missing = set(pipeline[kind]) - defined
        assert not missing, f"pipeline {name} names undefined {kind}: {sorted(missing)}"


@pytest.mark.parametrize("kind", ["receivers", "processors", "exporters"])
def test_every_defined_collector_component_is_used(collector: dict[str, Any], kind: str) -> None:
    used = {c for p in collector["service"]["pipelines"].values() for c in p[kind]}
    unused = set(collector[kind]) - used - UNUSED_ON_PURPOSE
    assert not unused, f"{kind} defined but in no pipeline: {sorted(unused)}"


def test_extensions_are_defined_and_enabled(collector: dict[str, Any]) -> None:
    assert set(collector["service"]["extensions"]) == set(collector["extensions"])
    assert "health_check" in collector["extensions"]


@pytest.mark.parametrize("signal", SIGNALS)
def test_memory_limiter_first_then_resource_detection_and_batch_last(
    collector: dict[str, Any], signal: str
) -> None:
    types = [component_type(p) for p in collector["service"]["pipelines"][signal]["processors"]]
    assert types[0] == "memory_limiter"
    assert types[-1] == "batch"
    assert "resource_detection" in types


def test_collector_uses_canonical_component_names(collector: dict[str, Any]) -> None:
    for kind in ("receivers", "processors", "exporters", "extensions"):
        for component in collector[kind]:
            if kind == "receivers":
                continue  # the OTLP receiver is still called `otlp`
            kind_type = component_type(component)
            assert kind_type not in DEPRECATED_TYPES, (
                f"{component}: use {DEPRECATED_TYPES[kind_type]}, the name since the pinned release"
            )


def test_collector_exports_each_signal_to_its_backend(
    collector: dict[str, Any], services: dict[str, Any]
) -> None:
    pipelines = collector["service"]["pipelines"]
    exporters = collector["exporters"]

    (jaeger,) = [e for e in pipelines["traces"]["exporters"] if component_type(e) == "otlp_grpc"]
    assert exporters[jaeger]["endpoint"] == "jaeger:4317"
    assert exporters[jaeger]["tls"]["insecure"] is True
    assert "jaeger" in services

    (loki,) = [e for e in pipelines["logs"]["exporters"] if component_type(e) == "otlp_http"]
    url = urlsplit(exporters[loki]["endpoint"])
    assert (url.hostname, url.port, url.path) == ("loki", 3100, "/otlp")
    assert "loki" in services

    assert "prometheus" in pipelines["metrics"]["exporters"]
    for signal in SIGNALS:
        assert "debug" in pipelines[signal]["exporters"]


def test_collector_receives_otlp_on_the_published_ports(
    collector: dict[str, Any], services: dict[str, Any]
) -> None:
    protocols = collector["receivers"]["otlp"]["protocols"]
    grpc_port = int(protocols["grpc"]["endpoint"].rsplit(":", 1)[1])
    http_port = int(protocols["http"]["endpoint"].rsplit(":", 1)[1])
    assert (grpc_port, http_port) == (4317, 4318)
    mapped = {container for _, _, container in published_ports(services["otel-collector"])}
    assert mapped == {grpc_port, http_port}


def test_memory_limiter_has_a_container_limit_to_be_a_percentage_of(
    collector: dict[str, Any], services: dict[str, Any]
) -> None:
    limiter = collector["processors"]["memory_limiter"]
    assert 0 < limiter["spike_limit_percentage"] < limiter["limit_percentage"] < 100
    assert services["otel-collector"]["mem_limit"]


# --- Compose ---------------------------------------------------------------------------


def test_every_image_is_pinned_to_a_release(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if "image" not in service:
            assert "build" in service, f"{name}: neither image nor build"
            continue
        _, tag = image_tag(service["image"])
        assert tag is not None, f"{name}: {service['image']} has no tag"
        assert PINNED_TAG.match(tag), f"{name}: {tag!r} is not a release (never latest)"


def test_jaeger_is_v2_and_loki_is_v3(services: dict[str, Any]) -> None:
    assert image_tag(services["jaeger"]["image"])[0] == "jaegertracing/jaeger"
    assert image_tag(services["jaeger"]["image"])[1].startswith("2.")  # type: ignore[union-attr]
    assert image_tag(services["loki"]["image"])[1].startswith("3.")  # type: ignore[union-attr]


def test_published_ports_are_loopback_only_and_only_the_browser_and_otlp_ones(
    services: dict[str, Any],
) -> None:
    published = {}
    for name, service in services.items():
        for ip, host, container in published_ports(service):
            assert ip == "127.0.0.1", f"{name} publishes {host} on {ip}, not loopback"
            assert host not in published, f"port {host} published twice"
            published[host] = (name, container)
    assert set(published) == EXPECTED_PUBLISHED_PORTS
    assert published[5000][0] == "app"
    assert published[16686][0] == "jaeger"
    assert published[3000][0] == "grafana"
    assert published[9090][0] == "prometheus"


def test_published_ports_agree_with_the_docs_table(services: dict[str, Any]) -> None:
    table = chapter_port_table()
    published = {host for s in services.values() for _, host, _ in published_ports(s)}
    assert set(table) == published, "docs/500-going-to-production.md's port table disagrees"
    for port in (5000, 16686, 3000, 9090):
        assert f"http://localhost:{port}" in table[port]


def test_docs_name_the_pinned_images(services: dict[str, Any]) -> None:
    text = CHAPTER.read_text(encoding="utf-8")
    for service in services.values():
        if "image" in service:
            assert service["image"] in text, f"the chapter does not name {service['image']}"


@pytest.mark.parametrize("service_name", ["app", "app-scrape"])
def test_app_telemetry_points_at_the_collector_service(
    services: dict[str, Any], collector: dict[str, Any], service_name: str
) -> None:
    env = services[service_name]["environment"]
    endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.hostname == "otel-collector"
    assert "otel-collector" in services
    grpc = collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert endpoint.port == int(grpc.rsplit(":", 1)[1])
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert not [k for k in env if re.match(r"OTEL_EXPORTER_OTLP_\w+_ENDPOINT$", k)], (
        "a per-signal endpoint would bypass the Collector"
    )
    assert env["OTEL_TRACES_EXPORTER"] == env["OTEL_LOGS_EXPORTER"] == "otlp"
    assert env["OTEL_SERVICE_NAME"] == "todo"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert 0 < float(env["OTEL_TRACES_SAMPLER_ARG"]) <= 1


def test_app_runs_on_postgres_once_it_is_healthy(services: dict[str, Any]) -> None:
    app = services["app"]
    url = urlsplit(app["environment"]["DATABASE_URL"])
    assert url.scheme == "postgresql+psycopg"
    assert url.hostname == "postgres"
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert app["environment"]["SECRET_KEY"].startswith("${SECRET_KEY:?"), "must be required"


def test_compose_references_exist(compose: dict[str, Any], services: dict[str, Any]) -> None:
    volumes = set(compose.get("volumes", {}))
    for name, service in services.items():
        depends = service.get("depends_on", [])
        for dependency in depends if isinstance(depends, list) else list(depends):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} mounts undeclared volume {source}"
        if "build" in service:
            build = service["build"]
            assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


# --- Prometheus --------------------------------------------------------------------------


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool is not installed (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(PROMETHEUS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_collector_exporter_keeping_its_labels(
    prometheus_config: dict[str, Any], collector: dict[str, Any], services: dict[str, Any]
) -> None:
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    exporter_port = collector["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    job = jobs["otel-collector"]
    assert job["static_configs"][0]["targets"] == [f"otel-collector:{exporter_port}"]
    assert job["honor_labels"] is True, "job/instance from service.name/instance.id"
    internal = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    assert jobs["otel-collector-internal"]["static_configs"][0]["targets"] == [
        f"otel-collector:{internal['prometheus']['port']}"
    ]


def test_prometheus_todo_job_finds_the_scrape_mode_app(
    prometheus_config: dict[str, Any], services: dict[str, Any]
) -> None:
    (job,) = [j for j in prometheus_config["scrape_configs"] if j["job_name"] == "todo"]
    (sd,) = job["dns_sd_configs"]
    env = services["app-scrape"]["environment"]
    assert sd["names"] == ["app-scrape"]
    assert sd["port"] == int(env["OTEL_EXPORTER_PROMETHEUS_PORT"])
    assert env["OTEL_METRICS_EXPORTER"] == "prometheus"
    assert env["OTEL_EXPORTER_PROMETHEUS_HOST"] == "0.0.0.0"  # noqa: S104 - inside its container
    assert env["WEB_CONCURRENCY"] == "1", "one /metrics port: one process"
    assert services["app-scrape"]["profiles"] == ["scrape"]


# --- Grafana -----------------------------------------------------------------------------


def test_datasources_point_at_compose_services(
    datasources: list[dict[str, Any]], services: dict[str, Any]
) -> None:
    uids = [d["uid"] for d in datasources]
    assert len(uids) == len(set(uids))
    assert {d["type"] for d in datasources} == {"prometheus", "jaeger", "loki"}
    for datasource in datasources:
        url = urlsplit(datasource["url"])
        assert url.hostname in services, f"{datasource['name']}: {url.hostname} is not a service"


def test_traces_link_to_logs_and_logs_link_to_traces(datasources: list[dict[str, Any]]) -> None:
    by_type = {d["type"]: d for d in datasources}
    jaeger, loki = by_type["jaeger"], by_type["loki"]
    to_logs = jaeger["jsonData"]["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == loki["uid"]
    assert "trace_id=" in to_logs["query"]
    assert "__span.traceId" in to_logs["query"]
    fields = loki["jsonData"]["derivedFields"]
    assert fields
    assert all(f["datasourceUid"] == jaeger["uid"] for f in fields)
    assert {f["matcherType"] for f in fields} == {"label", "regex"}


def strings(value: Any) -> Iterator[str]:
    """Yield every string in a parsed YAML document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_grafana_templates_escape_the_dollar_from_env_expansion() -> None:
    templates = [s for s in strings(load_yaml(DATASOURCES)) if "{__" in s]
    assert len(templates) >= 3, "the trace/log link templates are missing"
    for template in templates:
        assert not re.search(r"(?<!\$)\$\{__", template), (
            f"{template!r}: write $${{__...}}, Grafana expands ${{...}} from the environment"
        )


def test_dashboard_provider_reads_the_mounted_folder(services: dict[str, Any]) -> None:
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    mounts = dict(m.split(":")[:2] for m in services["grafana"]["volumes"])
    folder = mounts["./grafana/dashboards"]
    assert folder == provider["options"]["path"]
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(folder + "/")
    assert (DASHBOARDS / home.removeprefix(folder + "/")).is_file()


def test_dashboard_panels_use_provisioned_datasources(
    dashboards: dict[str, dict[str, Any]], datasources: list[dict[str, Any]]
) -> None:
    uids = {d["uid"] for d in datasources}
    for name, dashboard in dashboards.items():
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] in uids, f"{name}: panel {panel['title']}"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == panel["datasource"]["uid"]


@pytest.fixture(scope="module")
def emitted(services: dict[str, Any]) -> dict[str, set[str]]:
    """Return {sample name: label names} that the real app emits, under compose's semconv."""
    semconv = services["app"]["environment"].get("OTEL_SEMCONV_STABILITY_OPT_IN", "")
    result = subprocess.run(
        [sys.executable, "-m", "tests.deploy.emit_metrics"],
        cwd=ROOT,
        env=venv_env(OTEL_SEMCONV_STABILITY_OPT_IN=semconv),
        capture_output=True,
        text=True,
        timeout=EMIT_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(result.stdout):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def test_the_app_emits_the_metrics_the_docs_promise(emitted: dict[str, set[str]]) -> None:
    for name in (
        "todo_tasks_created_total",
        "todo_requests_total",
        "todo_tasks_open",
        "http_server_request_duration_seconds_bucket",
    ):
        assert name in emitted, f"the app does not emit {name}; it emits {sorted(emitted)}"


def test_dashboard_queries_only_what_the_app_emits(
    dashboards: dict[str, dict[str, Any]], emitted: dict[str, set[str]]
) -> None:
    checked = 0
    for name, dashboard in dashboards.items():
        for expr in prometheus_exprs(dashboard):
            used = list(selectors(expr))
            assert used, f"{name}: no metric in {expr!r}"
            for metric, labels in used:
                assert metric in emitted, f"{name}: the app does not emit {metric}"
                missing = labels - SCRAPE_LABELS - emitted[metric]
                assert not missing, f"{name}: {metric} has no label {sorted(missing)}"
                checked += 1
            available = set().union(*(emitted[m] for m, _ in used)) | SCRAPE_LABELS
            assert grouping_labels(expr) <= available, f"{name}: grouping by unknown labels"
    assert checked >= 10


# --- The image -------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            result.append((instruction.upper(), args.strip()))
    return result


def test_dockerfile_base_image_is_pinned_and_runs_as_non_root() -> None:
    instructions = dockerfile_instructions()
    bases = [args.split()[0] for ins, args in instructions if ins == "FROM"]
    for base in bases:
        _, tag = image_tag(base)
        assert tag, f"FROM {base} has no tag"
        assert PINNED_TAG.match(tag), f"FROM {base} is not pinned to a release"
    users = [args for ins, args in instructions if ins == "USER"]
    assert users, "no USER: the app would run as root"
    assert users[-1] not in ("root", "0", "0:0"), "the app must not run as root"
    last_user = max(i for i, (ins, _) in enumerate(instructions) if ins == "USER")
    cmd = max(i for i, (ins, _) in enumerate(instructions) if ins == "CMD")
    assert last_user < cmd
    assert json.loads(instructions[cmd][1]) == ["gunicorn", "-c", "deploy/gunicorn.conf.py"]


def test_dockerignore_lets_in_every_copied_path() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    for instruction, args in dockerfile_instructions():
        if instruction == "COPY":
            for source in args.split()[:-1]:
                assert source.rstrip("/") in allowed, f"{source} is excluded from the context"
                assert (ROOT / source).exists(), f"COPY {source}: no such file"


def test_lock_files_agree_where_the_image_uses_both() -> None:
    """The Dockerfile installs requirements.txt with requirements-dev.txt as constraints."""

    def pins(path: Path) -> dict[str, str]:
        found = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
            if match:
                found[match.group(1).lower()] = match.group(2)
        return found

    runtime, dev = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-dev.txt")
    assert runtime
    assert {k: v for k, v in runtime.items() if dev.get(k, v) != v} == {}
    assert "psycopg" in dev


# --- gunicorn.conf.py ----------------------------------------------------------------------


def load_gunicorn(monkeypatch: pytest.MonkeyPatch, *args: str, **env: str) -> Any:
    """Return gunicorn's settings for ``gunicorn -c deploy/gunicorn.conf.py ARGS`` under ``env``."""
    for name in ("GUNICORN_BIND", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["gunicorn", "-c", str(GUNICORN_CONF), *args])
    monkeypatch.chdir(ROOT)
    application = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]")
    return application.cfg, application.app_uri


def test_gunicorn_config_names_the_app_and_binds_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, app_uri = load_gunicorn(monkeypatch)
    assert app_uri == "todo.wsgi:app"
    assert cfg.bind == ["127.0.0.1:5000"]
    assert cfg.workers == min(2 * (os.cpu_count() or 1) + 1, 8)
    assert cfg.preload_app is False, "telemetry must start after the fork"
    assert cfg.control_socket_disable is True
    assert cfg.post_fork.__module__ != "gunicorn.config", "post_fork hook not set"
    assert cfg.worker_exit.__module__ != "gunicorn.config", "worker_exit hook not set"


def test_gunicorn_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = load_gunicorn(monkeypatch, GUNICORN_BIND="0.0.0.0:8000", WEB_CONCURRENCY="3")
    assert (cfg.bind, cfg.workers) == (["0.0.0.0:8000"], 3)


def test_gunicorn_command_line_wins_over_config_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = load_gunicorn(
        monkeypatch, "--bind", "127.0.0.1:8123", "--workers", "5", WEB_CONCURRENCY="3"
    )
    assert (cfg.bind, cfg.workers) == (["127.0.0.1:8123"], 5)


@pytest.mark.parametrize("value", ["two", "0", "-1"])
def test_gunicorn_rejects_a_bad_worker_count(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    with pytest.raises(SystemExit, match="WEB_CONCURRENCY"):
        load_gunicorn(monkeypatch, WEB_CONCURRENCY=value)
