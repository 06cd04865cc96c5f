"""A stand-in for confluent_kafka.Producer: records what would have been produced."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Produced:
    topic: str
    value: bytes
    key: str | bytes | None


@dataclass(frozen=True)
class Report:
    """What a delivery report's message answers: where the message landed."""

    where: tuple[str, int, int]

    def topic(self) -> str:
        return self.where[0]

    def partition(self) -> int:
        return self.where[1]

    def offset(self) -> int:
        return self.where[2]


@dataclass
class FakeProducer:
    """Delivers every message at once and keeps it for the test to read."""

    messages: list[Produced] = field(default_factory=list)

    def produce(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> None:
        self.messages.append(Produced(topic, value, key))
        if on_delivery is not None:
            on_delivery(None, Report((topic, 0, len(self.messages) - 1)))

    def poll(self, timeout: float = 0.0) -> int:
        del timeout
        return 0

    def flush(self, timeout: float = 0.0) -> int:
        del timeout
        return 0
