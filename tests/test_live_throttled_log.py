"""Shedding many subscriptions at once writes one warning per interval, with the count."""

from __future__ import annotations

import logging

import pytest

from graphql_api.live.throttled_log import ThrottledWarning


def test_a_burst_is_one_line_with_its_count_and_the_next_interval_writes_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    warning = ThrottledWarning(logging.getLogger("test.throttled"), 5.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.throttled"):
        written = [warning.warn("ended %s", "x") for _ in range(1000)]
        now[0] += 5.0
        written.append(warning.warn("ended %s", "y"))
    assert written.count(True) == 2
    assert [r.getMessage() for r in caplog.records] == [
        "ended x (1 such since the last line)",
        "ended y (1000 such since the last line)",
    ]
