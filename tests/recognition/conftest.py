"""The authentication fixtures of tests/auth, for the multi-institution scenario."""

from tests.auth.conftest import auth_app, http, register

__all__ = ["auth_app", "http", "register"]
