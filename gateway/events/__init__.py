"""Events: outbox relay and buses (in-process, Redis Streams)."""
