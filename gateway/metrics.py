"""The Prometheus metrics contract (docs/metrics.md) in one container that takes its registry as an argument."""

from __future__ import annotations

import contextlib
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway import __version__, multiprocess_metrics

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 5, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 25000)


class Metrics:
    """Every metric the gateway exports; names are a contract that dashboards and alerts depend on."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events_consumed = Counter(
            "gateway_events_consumed", "Messages consumed from Kafka.", ["destination"], registry=registry
        )
        self.events_delivered = Counter(
            "gateway_events_delivered",
            "Vendor records acknowledged by the vendor, by normalized event type.",
            ["destination", "type"],
            registry=registry,
        )
        self.events_dead_lettered = Counter(
            "gateway_events_dead_lettered",
            "Messages written to the dead-letter topic, by reason.",
            ["destination", "reason"],
            registry=registry,
        )
        self.dead_letters_reduced = Counter(
            "gateway_dead_letters_reduced",
            "Dead letters the topic refused as too large, written without their value (header gateway-value-dropped).",
            ["destination"],
            registry=registry,
        )
        self.events_filtered = Counter(
            "gateway_events_filtered",
            "Messages this destination does not take (type filter or connector rule) and settled at once.",
            ["destination"],
            registry=registry,
        )
        self.events_duplicate = Counter(
            "gateway_events_duplicate",
            "Records the vendor reported as already received (counted as delivered too).",
            ["destination"],
            registry=registry,
        )
        self.events_skipped_settled = Counter(
            "gateway_events_skipped_settled",
            "Messages not sent again after a restart or rebalance: the commit metadata named them settled.",
            ["destination"],
            registry=registry,
        )
        self.offset_metadata_ignored = Counter(
            "gateway_offset_metadata_ignored",
            "Assigned partitions whose commit metadata was not ours or damaged (foreign, corrupt, stale): "
            "their records above the committed offset are sent again.",
            ["destination", "reason"],
            registry=registry,
        )
        self.delivery_retries = Counter(
            "gateway_delivery_retries",
            "Sends that will be retried, by reason.",
            ["destination", "reason"],
            registry=registry,
        )
        self.http_requests = Counter(
            "gateway_http_requests",
            "HTTP requests to vendors, by status class (error = no response).",
            ["destination", "status_class"],
            registry=registry,
        )
        self.http_request_duration = Histogram(
            "gateway_http_request_duration_seconds",
            "Vendor HTTP request duration.",
            ["destination"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.http_timeouts = Counter(
            "gateway_http_timeouts",
            "Vendor requests cut by their timeout, by which deadline cut them (adaptive, or the configured cap).",
            ["destination", "deadline"],
            registry=registry,
        )
        self.http_request_timeout = Gauge(
            "gateway_http_request_timeout_seconds",
            "The timeout of the destination's next vendor request (adaptive_timeout within the configured timeout).",
            ["destination"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.batch_events = Histogram(
            "gateway_batch_events",
            "Records per vendor send.",
            ["destination"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.delivery_latency = Histogram(
            "gateway_delivery_latency_seconds",
            "Time from consuming a message to the vendor's acknowledgement.",
            ["destination"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.event_age = Histogram(
            "gateway_event_age_seconds",
            "Time from the event's occurred_at to the vendor's acknowledgement.",
            ["destination"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "gateway_consumer_lag",
            "Messages not yet settled: log end offset minus the committable offset.",
            ["destination", "topic", "partition"],
            registry=registry,
            multiprocess_mode="livesum",  # with --workers: each partition's lag comes from the worker owning it
        )
        self.in_flight = Gauge(
            "gateway_in_flight_events",
            "Consumed messages not yet settled.",
            ["destination"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.in_flight_bytes = Gauge(
            "gateway_in_flight_bytes",
            "Bytes held by consumed messages not yet settled (values, keys, headers, vendor records, overhead).",
            ["destination"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.parked_events = Counter(
            "gateway_parked_events",
            "Messages of a blocked brand written to the destination's parking topic instead of waiting in memory.",
            ["destination", "brand"],
            registry=registry,
        )
        self.unparked_events = Counter(
            "gateway_unparked_events",
            "Parked messages read back from the parking topic and handed to delivery.",
            ["destination", "brand"],
            registry=registry,
        )
        self.parked_order_timeouts = Counter(
            "gateway_parked_order_timeouts",
            "Waits for order a parking reader gave up: parked messages went before older ones of their source "
            "partition that another process held, as that partition's commit made no progress for the order patience.",
            ["destination", "brand"],
            registry=registry,
        )
        self.parked_backlog = Gauge(
            "gateway_parked_backlog",
            "Parked messages of a brand not yet read back (by this replica's account); 0 once it delivers directly.",
            ["destination", "brand"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.brand_parking = Gauge(
            "gateway_brand_parking",
            "1 while a brand's events go to the parking topic (blocked, or its parked backlog not yet drained).",
            ["destination", "brand"],
            registry=registry,
            multiprocess_mode="livemax",  # with --workers: 1 while any worker parks the brand
        )
        self.destination_up = Gauge(
            "gateway_destination_up",
            "1 when the destination delivers; 0 while halted on credentials or failing.",
            ["destination"],
            registry=registry,
            multiprocess_mode="livemin",  # with --workers: 0 while any worker's pipeline is down
        )
        self.tenant_halted = Gauge(
            "gateway_tenant_halted",
            "1 while a tenant (brand) is halted on a credentials or allow-list answer.",
            ["destination", "tenant"],
            registry=registry,
            multiprocess_mode="livemax",  # with --workers: 1 while any worker holds the tenant halted
        )
        self.offset_commits = Counter(
            "gateway_offset_commits",
            "Offset commits, by result.",
            ["destination", "result"],
            registry=registry,
        )
        self.consumer_errors = Counter(
            "gateway_consumer_errors",
            "Failed reads and calls to Kafka (undecodable batch, lost broker), by aiokafka error class; all retried.",
            ["destination", "error"],
            registry=registry,
        )
        self.task_failures = Counter(
            "gateway_task_failures",
            "Background tasks of a pipeline (lane, dead_letter, commit, lag) that failed with a bug; all but lag are "
            "fatal: the process exits non-zero without committing past them.",
            ["destination", "task"],
            registry=registry,
        )
        # Connector extensions (gateway/extensions.py): InTarget's feed server, Enable3's ambassador and callbacks.
        self.feed_requests = Counter(
            "gateway_feed_requests",
            "Feed requests served to a pulling vendor, by feed and HTTP status.",
            ["destination", "feed", "status"],
            registry=registry,
        )
        self.feed_rows = Counter(
            "gateway_feed_rows",
            "Rows served in feed responses.",
            ["destination", "feed"],
            registry=registry,
        )
        self.feed_request_duration = Histogram(
            "gateway_feed_request_duration_seconds",
            "Feed request duration, first byte to last row.",
            ["destination", "feed"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.ambassador_requests = Counter(
            "gateway_ambassador_requests",
            "Local ambassador requests forwarded to a vendor, by endpoint and status class (error = no response).",
            ["destination", "endpoint", "status_class"],
            registry=registry,
        )
        self.ambassador_request_duration = Histogram(
            "gateway_ambassador_request_duration_seconds",
            "Ambassador request duration, including retries.",
            ["destination", "endpoint"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.callbacks = Counter(
            "gateway_callbacks",
            "Inbound vendor callbacks, by result (accepted, bad_signature, invalid, unavailable).",
            ["destination", "callback", "result"],
            registry=registry,
        )
        # Set through set_function by the gateway: /readyz's verdict at scrape time (alerts on readiness flapping).
        # With --workers, set_function is not available: each process sets its own verdict, and the minimum is shown.
        self.ready = Gauge(
            "gateway_ready",
            "1 while /readyz answers 200, 0 while it answers 503.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.build_info = Gauge(
            "gateway_build_info", "Build information.", ["version"], registry=registry, multiprocess_mode="livemax"
        )
        self.build_info.labels(version=__version__).set(1)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """Observe many values in one pass: per batch rather than per event (the lock is taken once per bucket).

    Equivalent to calling `observe` for each value (a unit test holds it to that); it relies on prometheus_client's
    child layout (`_upper_bounds`, `_buckets`, `_sum`), and falls back to `observe` if that ever changes.
    """
    if len(values) == 1:  # per-key deliveries settle one record at a time
        observe_one(histogram, values[0])
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    counts = Tally(bisect_left(bounds, value) for value in values)
    for index, count in counts.items():
        buckets[index].inc(count)
    total.inc(sum(values))


def observe_one(histogram: Histogram, value: float) -> None:
    """What `histogram.observe(value)` records (a unit test holds it to that), for less: the bucket is found by
    bisection where prometheus_client scans the bounds in Python (per request, on the hot path). It relies on the
    child layout as `observe_many` does, and falls back to `observe`."""
    try:
        total = histogram._sum
        bucket = histogram._buckets[bisect_left(histogram._upper_bounds, value)]
    except (AttributeError, IndexError):  # not the layout this relies on: the public way
        histogram.observe(value)
        return
    total.inc(value)
    bucket.inc(1)


class DestinationMetrics:
    """One destination's label-bound children, resolved once so the hot path does no label lookups."""

    def __init__(self, metrics: Metrics, destination: str) -> None:
        self.metrics = metrics
        self.destination = destination
        self.consumed = metrics.events_consumed.labels(destination=destination)
        self.filtered = metrics.events_filtered.labels(destination=destination)
        self.duplicate = metrics.events_duplicate.labels(destination=destination)
        self.skipped_settled = metrics.events_skipped_settled.labels(destination=destination)
        self.http_duration = metrics.http_request_duration.labels(destination=destination)
        self.batch_events = metrics.batch_events.labels(destination=destination)
        self.latency = metrics.delivery_latency.labels(destination=destination)
        self.event_age = metrics.event_age.labels(destination=destination)
        self.in_flight = metrics.in_flight.labels(destination=destination)
        self.in_flight_bytes = metrics.in_flight_bytes.labels(destination=destination)
        self.up = metrics.destination_up.labels(destination=destination)
        self.dead_letters_reduced = metrics.dead_letters_reduced.labels(destination=destination)
        for task in ("lane", "dead_letter", "commit", "lag"):  # at 0 from the start, so increase() sees the first
            metrics.task_failures.labels(destination, task)
        self._delivered: dict[str, Counter] = {}
        self._dead_lettered: dict[str, Counter] = {}
        self._retries: dict[str, Counter] = {}
        self._http: dict[str, Counter] = {}
        self.request_timeout = metrics.http_request_timeout.labels(destination=destination)
        self.timeouts_adaptive = metrics.http_timeouts.labels(destination, "adaptive")
        self.timeouts_cap = metrics.http_timeouts.labels(destination, "cap")
        self._lagged: set[tuple[str, int]] = set()  # partitions with a lag series

    def delivered(self, event_type: str) -> Counter:
        """Delivered counter child for a normalized event type."""
        child = self._delivered.get(event_type)
        if child is None:
            child = self._delivered[event_type] = self.metrics.events_delivered.labels(self.destination, event_type)
        return child

    def dead_lettered(self, reason: str) -> Counter:
        """Dead-lettered counter child for a reason."""
        child = self._dead_lettered.get(reason)
        if child is None:
            child = self._dead_lettered[reason] = self.metrics.events_dead_lettered.labels(self.destination, reason)
        return child

    def retries(self, reason: str) -> Counter:
        """Retry counter child for a reason."""
        child = self._retries.get(reason)
        if child is None:
            child = self._retries[reason] = self.metrics.delivery_retries.labels(self.destination, reason)
        return child

    def http_requests(self, status_class: str) -> Counter:
        """HTTP request counter child for a status class."""
        child = self._http.get(status_class)
        if child is None:
            child = self._http[status_class] = self.metrics.http_requests.labels(self.destination, status_class)
        return child

    def lag(self, topic: str, partition: int, value: int) -> None:
        """Set one partition's consumer lag."""
        self.metrics.consumer_lag.labels(self.destination, topic, str(partition)).set(value)
        self._lagged.add((topic, partition))

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop a revoked partition's lag series so a scaled-out replica does not report stale lag.

        With --workers a series cannot be removed (it stays in this process's file): it is zeroed instead, so that
        the lag the partition's new owner (another worker) reports is not added to a stale value."""
        if (topic, partition) not in self._lagged:
            return
        self._lagged.discard((topic, partition))
        if multiprocess_metrics.enabled():
            self.metrics.consumer_lag.labels(self.destination, topic, str(partition)).set(0)
            return
        with contextlib.suppress(KeyError):
            self.metrics.consumer_lag.remove(self.destination, topic, str(partition))

    def tenant_halted(self, tenant: str, halted: bool) -> None:
        """Mark a tenant halted or resumed."""
        self.metrics.tenant_halted.labels(self.destination, tenant).set(1 if halted else 0)

    def parked(self, brand: str) -> Counter:
        """Parked-events counter child for a brand."""
        return self.metrics.parked_events.labels(self.destination, brand)

    def unparked(self, brand: str) -> Counter:
        """Unparked-events counter child for a brand."""
        return self.metrics.unparked_events.labels(self.destination, brand)

    def parked_order_timeouts(self, brand: str) -> Counter:
        """Counter child of the waits for order a brand's parking reader gave up."""
        return self.metrics.parked_order_timeouts.labels(self.destination, brand)

    def parking(self, brand: str, parking: bool, backlog: int) -> None:
        """Set a brand's parking state and parked backlog."""
        self.metrics.brand_parking.labels(self.destination, brand).set(1 if parking else 0)
        self.metrics.parked_backlog.labels(self.destination, brand).set(backlog)

    def consumer_error(self, error: str) -> Counter:
        """Failed-read counter child for an aiokafka error class."""
        return self.metrics.consumer_errors.labels(self.destination, error)

    def task_failure(self, task: str) -> Counter:
        """Failed background task counter child (lane, dead_letter, commit, lag)."""
        return self.metrics.task_failures.labels(self.destination, task)

    def metadata_ignored(self, reason: str) -> None:
        """Count an assigned partition whose commit metadata was ignored, by reason (foreign, corrupt, stale)."""
        self.metrics.offset_metadata_ignored.labels(self.destination, reason).inc()

    def commit(self, result: str) -> None:
        """Count an offset commit by result (ok, failed)."""
        self.metrics.offset_commits.labels(self.destination, result).inc()
