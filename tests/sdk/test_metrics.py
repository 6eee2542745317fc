"""`GET /metrics` scraped the way Prometheus does (OpenMetrics text, a key as
`Authorization: Bearer`), parsed with the Prometheus client's own OpenMetrics parser, and its
figures moved by what the unmodified SDK does: creates, commands, code cells, errors."""

import httpx
import pytest
from compat import CREATE
from e2b import Sandbox


def scrape(server, headers=None) -> dict:
    # Imported here: the matrix venvs collect this module (then deselect it) without it.
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    r = httpx.get(server.api_url + "/metrics",
                  headers=headers if headers is not None else {"Authorization": f"Bearer {server.api_key}"},
                  timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/openmetrics-text"), r.headers
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def test_metrics_need_a_key_of_this_server(server):
    assert httpx.get(server.api_url + "/metrics", timeout=30).status_code == 401
    for headers in ({"Authorization": "Bearer not-a-key"}, {"X-API-Key": "not-a-key"}):
        assert httpx.get(server.api_url + "/metrics", headers=headers, timeout=30).status_code == 401
    # Both ways of giving the key work.
    scrape(server, {"X-API-Key": server.api_key})
    scrape(server)


def test_creates_commands_and_errors_move_the_figures(server):
    before = scrape(server)
    sbx = Sandbox.create(template="base", timeout=120, **CREATE)
    server.sandbox_ids.add(sbx.sandbox_id)
    try:
        assert sbx.commands.run("echo counted").stdout == "counted\n"
        during = scrape(server)
    finally:
        sbx.kill()
    after = scrape(server)

    assert value(during, "bulkhead_sandboxes", template="base", state="running") >= 1
    assert (value(after, "bulkhead_sandboxes", template="base", state="running")
            == value(during, "bulkhead_sandboxes", template="base", state="running") - 1)
    created = ("bulkhead_sandbox_creates_total", {"template": "base", "outcome": "created"})
    assert value(during, created[0], **created[1]) == value(before, created[0], **created[1]) + 1
    hist = [(n, dict(l)) for (n, l) in during if n == "bulkhead_sandbox_create_seconds_count"]
    assert hist, during.keys()
    assert (sum(value(during, n, **l) for n, l in hist)
            == sum(value(before, n, **l) for n, l in hist) + 1)
    assert (value(during, "bulkhead_executions_total", kind="command")
            >= value(before, "bulkhead_executions_total", kind="command") + 1)
    assert (value(after, "bulkhead_execution_seconds_count", kind="command")
            >= value(before, "bulkhead_execution_seconds_count", kind="command") + 1)
    assert ("bulkhead_pool_ready", frozenset({("template", "base")})) in during

    # A create of a template that does not exist: counted as invalid, under no name the
    # client chose, and as an API error.
    with pytest.raises(Exception):
        Sandbox.create(template="no-such-template-for-metrics", timeout=30, **CREATE)
    later = scrape(server)
    assert (value(later, "bulkhead_sandbox_creates_total", template="(unknown)", outcome="invalid")
            == value(after, "bulkhead_sandbox_creates_total", template="(unknown)", outcome="invalid") + 1)
    assert not any("no-such-template" in str(k) for k in later)
    assert total(later, "bulkhead_api_errors_total") > total(after, "bulkhead_api_errors_total")


def test_run_code_is_counted(server):
    from e2b_code_interpreter import Sandbox as CodeSandbox

    before = scrape(server)
    sbx = CodeSandbox.create(timeout=120, **CREATE)
    server.sandbox_ids.add(sbx.sandbox_id)
    try:
        assert sbx.run_code("6*7").text == "42"
    finally:
        sbx.kill()
    after = scrape(server)
    assert (value(after, "bulkhead_executions_total", kind="run_code")
            == value(before, "bulkhead_executions_total", kind="run_code") + 1)
    assert (value(after, "bulkhead_execution_seconds_count", kind="run_code")
            == value(before, "bulkhead_execution_seconds_count", kind="run_code") + 1)
