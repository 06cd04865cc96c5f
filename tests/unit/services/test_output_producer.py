"""The producer wrapper owns its delivery reports: counts, waits, full queues, too large."""

from __future__ import annotations

import threading

import orjson
import pytest

from dynpricing import events
from dynpricing.kafka_io import (
    DeliveryFailedError,
    MessageTooLargeError,
    OutputProducer,
    StopFlag,
)
from tests.unit.services.fakes import FakeProducer

WAIT_S = 10.0
DEAD = "dead_letters"


def _wrapped(fake: FakeProducer, **kwargs: object) -> OutputProducer:
    return OutputProducer(fake, **kwargs)  # type: ignore[arg-type]


def test_every_message_handed_over_is_counted_and_its_report_too() -> None:
    fake = FakeProducer(deliver_at_once=False)
    producer = _wrapped(fake)
    producer.send_many("decisions", [b"a", b"b", b"c"], ["k", "k", None])
    producer.send("decisions", b"d", "k")
    assert (producer.sent, producer.reported, producer.in_flight) == (4, 0, 4)
    producer.poll()
    assert (producer.reported, producer.delivered, producer.in_flight) == (4, 4, 0)
    assert producer.highest == {("decisions", 0): 3}


def test_a_wait_returns_once_everything_sent_before_it_is_reported() -> None:
    fake = FakeProducer(deliver_at_once=False)
    producer = _wrapped(fake)
    producer.send_many("decisions", [b"x"] * 5, [None] * 5)
    waiting = threading.Thread(target=producer.wait_for_reports, args=(5,))
    waiting.start()
    producer.send_many("decisions", [b"later"] * 100, [None] * 100)  # the loop went on
    producer.poll()
    waiting.join(WAIT_S)
    assert not waiting.is_alive()


def test_a_wait_gives_up_when_abandoned_or_out_of_time_and_fails_on_a_failed_delivery() -> None:
    fake = FakeProducer(deliver_at_once=False)
    producer = _wrapped(fake)
    producer.send("decisions", b"x", None)
    abandon = threading.Event()
    abandon.set()
    assert producer.wait_for_reports(1, abandon) is False
    assert producer.wait_for_reports(1, timeout_s=0.01) is False
    fake.purge()  # a report with an error
    with pytest.raises(DeliveryFailedError, match="1 deliveries failed"):
        producer.wait_for_reports(1)


def test_a_full_queue_is_waited_out_by_serving_reports() -> None:
    fake = FakeProducer(deliver_at_once=False, queue_limit=2)
    producer = _wrapped(fake, stop=StopFlag())
    producer.send_many("decisions", [b"1", b"2", b"3"], [None] * 3)
    assert producer.sent == 3
    assert fake.polls >= 1
    assert [m.value for m in fake.messages] == [b"1", b"2", b"3"]


def test_a_stopped_service_does_not_wait_for_room_in_a_full_queue() -> None:
    fake = FakeProducer(deliver_at_once=False, queue_limit=0)
    fake.poll = lambda _timeout=0.0: 0  # type: ignore[method-assign] # the broker is away
    stop = StopFlag()
    stop.set()
    producer = _wrapped(fake, stop=stop)
    with pytest.raises(DeliveryFailedError, match="stopped while the queue"):
        producer.send("demand", b"x", None)
    assert producer.sent == 0


def _letter(size: int) -> bytes:
    origin = events.Origin("demand", 0, 1)
    return events.encode_dead_letter(b"x" * size, "too_large", "detail", origin, 1.0)


def test_a_dead_letter_too_large_for_the_producer_goes_without_its_original_bytes() -> None:
    letter = _letter(10_000)
    fake = FakeProducer(max_bytes=len(letter) - 1)
    producer = _wrapped(fake, shrink={DEAD: events.shrink_dead_letter})
    producer.send(DEAD, letter, "k")
    (sent,) = fake.messages
    body = orjson.loads(sent.value)
    assert body["original_base64"] == ""
    assert (body["original_length"], body["original_truncated"]) == (10_000, True)
    assert (producer.sent, producer.delivered) == (1, 1)


def test_a_dead_letter_the_broker_refuses_as_too_large_is_replaced_and_its_report_counts() -> None:
    letter = _letter(10_000)
    fake = FakeProducer(deliver_at_once=False, broker_max_bytes=len(letter) - 1)
    producer = _wrapped(fake, shrink={DEAD: events.shrink_dead_letter})
    producer.send(DEAD, letter, "k")
    producer.poll()  # refused: the smaller one is produced in its place
    assert (producer.reported, producer.failures) == (0, [])
    producer.poll()
    assert (producer.sent, producer.reported, producer.delivered) == (1, 1, 1)
    assert orjson.loads(fake.messages[-1].value)["original_base64"] == ""


def test_another_message_too_large_raises_and_only_what_was_handed_over_counts() -> None:
    fake = FakeProducer(max_bytes=5)
    producer = _wrapped(fake, shrink={DEAD: events.shrink_dead_letter})
    with pytest.raises(MessageTooLargeError):
        producer.send_many("decisions", [b"small", b"much too large"], [None, None])
    assert producer.sent == 1
