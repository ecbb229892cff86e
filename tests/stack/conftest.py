"""Fixtures for the stack layer: replayed CLI scenarios and a recording fake CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from mltoolkit.stack.replay import ReplayPulumiCommand, Scenario

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pulumi"


@pytest.fixture(autouse=True)
def _no_user_passphrase(monkeypatch):
    """Tests decide whether a passphrase is in the environment."""
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)


@pytest.fixture
def scenario() -> Callable[..., Scenario]:
    def load(name: str, **overrides: Any) -> Scenario:
        return Scenario.load(FIXTURES / f"{name}.json", **overrides)

    return load


@pytest.fixture
def raw_events() -> Callable[[str], list[dict[str, Any]]]:
    def load(name: str) -> list[dict[str, Any]]:
        return json.loads((FIXTURES / f"{name}.json").read_text())["events"]

    return load


@pytest.fixture
def fake() -> ReplayPulumiCommand:
    return ReplayPulumiCommand()
