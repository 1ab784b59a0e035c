"""Subscriptions: criteria-based R4 and topic-based (backport) notifications, delivery."""
