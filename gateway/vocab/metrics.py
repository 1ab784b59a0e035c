"""Prometheus metrics every layer may count into (served at /metrics).

Defined here, on the ground floor, so that the store, the domain parts and the edge count into
the same registry without importing one another. With several uvicorn workers the edge serves
them through prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by
`gateway serve`); gateway/http/observe.py counts requests and serves /metrics. Label values
come from fixed vocabularies (the router's interactions, R4 type names, status codes, the
outcomes and states below), never from a client's text.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "gateway_requests_total",
    "FHIR requests answered, by interaction, resource type and status code",
    ["interaction", "type", "status"],
)
LATENCY = Histogram(
    "gateway_request_seconds",
    "Time to answer a FHIR request, by interaction and resource type",
    ["interaction", "type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
VALIDATION_FAILURES = Counter(
    "gateway_validation_failures_total",
    "Writes refused by validation, by resource type",
    ["type"],
)
OUTBOX_LAG = Gauge(
    "gateway_outbox_lag_seconds",
    "Age of the oldest event not yet relayed to the bus (measured at each scrape)",
    # Set by the worker answering the scrape: the latest measurement is the truth (a "max"
    # would keep a worker's old high value after the outbox drained).
    multiprocess_mode="mostrecent",
)
SUBSCRIPTION_DELIVERIES = Counter(
    "gateway_subscription_deliveries_total",
    "Subscription notifications attempted, by outcome (delivered, failed, dead-lettered)",
    ["outcome"],
)
EXPORT_JOBS = Counter(
    "gateway_export_jobs_total",
    "Bulk export jobs, by state reached (accepted, completed, failed, cancelled, expired)",
    ["state"],
)
