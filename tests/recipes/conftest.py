"""Fixtures of the recipe tests."""

from __future__ import annotations

import pytest


class StopRun(Exception):
    """Raised where a test stops a run (say once its settings are resolved, before any data)."""


@pytest.fixture
def stop_at(monkeypatch):
    """``stop_at(module, "name")`` replaces that function by one that records its first argument
    and raises :class:`StopRun`; it returns the list of recorded arguments."""

    def patch(module, name: str) -> list:
        seen: list = []

        def stop(*args, **kwargs):
            seen.append(args[0] if args else None)
            raise StopRun

        monkeypatch.setattr(module, name, stop)
        return seen

    return patch
