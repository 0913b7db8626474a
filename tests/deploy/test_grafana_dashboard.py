"""deploy/grafana: the dashboard's panels, its destination variable, and queries that honour the variable."""

from __future__ import annotations

from tests.deploy.observability import dashboard, dashboard_queries, metric_names

# Metric families the panels need (per-destination throughput to InTarget feeds).
REQUIRED = {
    "gateway_events_consumed_total",
    "gateway_events_delivered_total",
    "gateway_events_dead_lettered_total",
    "gateway_delivery_retries_total",
    "gateway_events_filtered_total",
    "gateway_consumer_lag",
    "gateway_delivery_latency_seconds_bucket",
    "gateway_batch_events_bucket",
    "gateway_http_requests_total",
    "gateway_in_flight_events",
    "gateway_destination_up",
    "gateway_feed_requests_total",
    "gateway_feed_rows_total",
}


def test_panels_cover_the_required_metrics() -> None:
    """Throughput, dead letters, retries, filtered, lag, latency, batches, status classes, in flight, up, feeds."""
    used = set().union(*(metric_names(query) for query in dashboard_queries()))
    assert used >= REQUIRED
    titles = " ".join(panel["title"].lower() for panel in dashboard()["panels"])
    for word in ("lag", "latency", "batch", "status", "in flight", "up", "feed"):
        assert word in titles, word


def test_latency_panel_shows_p50_and_p99() -> None:
    """Delivery latency is drawn as the 0.5 and 0.99 quantiles of the histogram."""
    latency = [q for q in dashboard_queries() if "gateway_delivery_latency_seconds_bucket" in q]
    assert any(q.startswith("histogram_quantile(0.5,") for q in latency)
    assert any(q.startswith("histogram_quantile(0.99,") for q in latency)


def test_destination_variable_filters_every_per_destination_query() -> None:
    """A multi-value destination variable from the gateway's own series, used by every per-destination query."""
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    destination = variables["destination"]
    assert destination["multi"] and destination["includeAll"]
    assert "destination" in destination["query"]["query"]
    assert variables["datasource"]["type"] == "datasource"
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            if "gateway_ready" not in target["expr"]:  # per replica, not per destination
                assert 'destination=~"$destination"' in target["expr"], panel["title"]
            assert target["datasource"]["uid"] == "${datasource}"


def test_panels_do_not_overlap() -> None:
    """Grid positions do not collide (a hand edit that stacks panels is caught)."""
    cells: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))
