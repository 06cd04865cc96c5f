"""Waiting, off the producer's thread, for the reports of what was sent up to a point."""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import KafkaError

from dynpricing.kafka_io import DeliveryFailedError, DeliveryTracker, wait_for_reports
from tests.unit.services.fakes import Report

WAIT_S = 10.0


def _report(tracker: DeliveryTracker, offsets: range, error: KafkaError | None = None) -> None:
    for offset in offsets:
        tracker(error, Report(("decisions", 0, offset)))


def test_a_wait_returns_once_everything_sent_before_it_is_reported() -> None:
    tracker = DeliveryTracker(sent=5)
    _report(tracker, range(3))
    waiting = threading.Thread(target=wait_for_reports, args=(tracker, 5, WAIT_S))
    waiting.start()
    _report(tracker, range(3, 5))
    waiting.join(WAIT_S)
    assert not waiting.is_alive()
    assert tracker.reported == 5


def test_reports_of_messages_sent_later_do_not_matter() -> None:
    tracker = DeliveryTracker(sent=2)
    _report(tracker, range(2))
    tracker.sent += 100  # the loop went on producing
    wait_for_reports(tracker, 2, WAIT_S)  # returns at once


def test_a_missing_report_fails_after_the_timeout() -> None:
    tracker = DeliveryTracker(sent=3)
    _report(tracker, range(2))
    with pytest.raises(DeliveryFailedError, match="1 messages without a delivery report"):
        wait_for_reports(tracker, 3, 0.05)


def test_a_failed_delivery_fails_the_wait() -> None:
    tracker = DeliveryTracker(sent=2)
    _report(tracker, range(1))
    _report(tracker, range(1, 2), KafkaError(KafkaError._MSG_TIMED_OUT))
    assert tracker.reported == 2
    with pytest.raises(DeliveryFailedError, match="1 deliveries failed"):
        wait_for_reports(tracker, 2, WAIT_S)
