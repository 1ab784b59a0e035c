"""Delivery state of subscriptions (migration 0007), durable so that a restarted
or another worker resumes where one stopped.

- sub_state: one row per Subscription the workers know: its status as delivery sees it, who
  owns it (the client whose access applies), the event counter (events-since-subscription-
  start), the highest number delivered, consecutive failures, when to try again, and the
  lease of the worker delivering it (one at a time: order per subscription, no duplicates).
- sub_events: each subscription's numbered events: pending, delivered or dead (the dead-letter
  list an administrator replays). At most one row per resource version per subscription.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from gateway.store.tables import metadata

sub_state = Table(
    "sub_state",
    metadata,
    Column("sub_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # requested | active | error | off
    Column("version", Integer, nullable=False),  # the Subscription version last taken in
    Column("owner", String(256)),  # client id of its last writer (None: the gateway / auth off)
    Column("events_total", BigInteger, nullable=False, default=0),
    Column("delivered", BigInteger, nullable=False, default=0),
    Column("failures", Integer, nullable=False, default=0),
    Column("next_attempt", BigInteger, nullable=False, default=0),  # µs
    Column("lease_owner", String(64)),
    Column("lease_until", BigInteger, nullable=False, default=0),  # µs
    Column("last_sent", BigInteger, nullable=False, default=0),  # µs (heartbeats)
    Column("error", Text),
)

sub_events = Table(
    "sub_events",
    metadata,
    Column("sub_id", String(64), primary_key=True),
    Column("number", BigInteger, primary_key=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("action", String(16), nullable=False),
    Column("topic_events", Text),  # the domain events (space-separated codes), if any
    Column("state", String(12), nullable=False),  # pending | delivered | dead
    Column("created_at", BigInteger, nullable=False),  # µs
    Index("ux_sub_events_version", "sub_id", "res_type", "res_id", "version", unique=True),
    Index("ix_sub_events_state", "sub_id", "state", "number"),
)
