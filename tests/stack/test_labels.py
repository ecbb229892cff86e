from datetime import datetime, timedelta, timezone

import pytest

from mltoolkit.errors import SpecError
from mltoolkit.stack.labels import (
    check_owner,
    format_expires,
    label_safe,
    parse_expires,
    parse_ttl,
    resource_labels,
)

NOW = datetime(2025, 1, 31, 7, 29, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "ttl, expected",
    [("90m", timedelta(minutes=90)), ("8h", timedelta(hours=8)), ("2D", timedelta(days=2)),
     ("1w", timedelta(weeks=1)), (timedelta(hours=1), timedelta(hours=1)), (None, None)],
)
def test_ttl_forms(ttl, expected):
    assert parse_ttl(ttl) == expected


@pytest.mark.parametrize("ttl", ["8", "0h", "-1h", "soon", 8, timedelta(0)])
def test_bad_ttl(ttl):
    with pytest.raises(SpecError, match="ttl"):
        parse_ttl(ttl)


def test_labels_are_gcp_safe_and_expiry_rounds_up():
    labels = resource_labels(owner="alice", stack="dev", ttl=timedelta(hours=8), now=NOW)
    # 07:29:30 + 8 h = 15:29:30, rounded up to the minute: 15:30
    assert labels == {"managed-by": "mltoolkit", "owner": "alice", "stack": "dev", "expires": "20250131t1530z"}
    assert parse_expires(labels["expires"]) == datetime(2025, 1, 31, 15, 30, tzinfo=timezone.utc)
    assert "expires" not in resource_labels(owner="alice", stack="dev", ttl=None, now=NOW)


def test_expires_round_trip_and_junk():
    when = datetime(2030, 12, 1, 0, 5, tzinfo=timezone.utc)
    assert parse_expires(format_expires(when)) == when
    assert parse_expires("tomorrow") is None and parse_expires(None) is None


def test_owner(monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "Jane.Doe@Corp")
    assert check_owner(None) == "jane-doe-corp"
    assert check_owner("ml_team-1") == "ml_team-1"
    with pytest.raises(SpecError, match="owner"):
        check_owner("Alice")
    assert label_safe("--x_") == "x"
