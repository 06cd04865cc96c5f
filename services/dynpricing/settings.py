"""Settings of each service, read from the environment (pydantic-settings).

One ``Settings`` class per service, each with its own env prefix and ``__`` for
nested groups, so ``DYNPRICING_ENGINE_KAFKA__BOOTSTRAP_SERVERS`` sets the
engine's broker list. ``docs/interfaces.md`` lists every variable; the Helm
values and docker-compose use the same names.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def _host_name() -> str:
    """``HOSTNAME`` (a pod's name in Kubernetes, a container's id in compose), else the host's."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


def _default_bootstrap() -> str:
    """A service-specific setting wins; otherwise the shared ``KAFKA_BOOTSTRAP_SERVERS``."""
    return os.environ.get(BOOTSTRAP_ENV) or DEFAULT_BOOTSTRAP


class KafkaSettings(BaseModel):
    """How to reach the broker; security settings pass through to librdkafka."""

    bootstrap_servers: str = Field(default_factory=_default_bootstrap)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    linger_ms: float = Field(default=1.0, ge=0)  # producers: wait for a batch this long
    topic_partitions: int = Field(default=3, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)


class TopicSettings(BaseModel):
    """Topic names; every service agrees on them through the same variables."""

    demand: str = "demand_events"
    decisions: str = "pricing_decisions"
    outcomes: str = "pricing_outcomes"
    dead_letters: str = "pricing_dead_letters"
    # the posterior per context, written by the learner, read by the deciders (compacted)
    model: str = "pricing_model"

    def all(self) -> list[str]:
        """The pricing loop's four topics (what the engine uses)."""
        return [self.demand, self.decisions, self.outcomes, self.dead_letters]

    def with_model(self) -> list[str]:
        """Every topic, the compacted model topic of the split roles included."""
        return [*self.all(), self.model]


def librdkafka_config(kafka: KafkaSettings) -> dict[str, str | int | float | bool]:
    """The one place that turns our Kafka settings into librdkafka keys."""
    conf: dict[str, str | int | float | bool] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "security.protocol": kafka.security_protocol,
    }
    optional = {
        "sasl.mechanism": kafka.sasl_mechanism,
        "sasl.username": kafka.sasl_username,
        "sasl.password": kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
        "ssl.ca.location": kafka.ssl_ca_location,
        "ssl.certificate.location": kafka.ssl_certificate_location,
        "ssl.key.location": kafka.ssl_key_location,
    }
    conf.update({key: value for key, value in optional.items() if value})
    return conf


class ServiceSettings(BaseSettings):
    """What every service has: Kafka, topics, HTTP and logging."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore", frozen=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    http_port: int = Field(default=8000, ge=0, le=65535)
    # loopback unless asked: the chart and compose set 0.0.0.0 so Prometheus can scrape
    http_host: str = "127.0.0.1"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    seed: int | None = None
    # false where something else manages topics (Strimzi KafkaTopics): never create one,
    # wait (not ready) until they all exist
    create_topics: bool = True
    # SIGTERM ends the service within this, whatever the broker does
    shutdown_timeout_s: float = Field(default=20.0, gt=0)


class BanditSettings(ServiceSettings):
    """What every role that holds the posterior agrees on: grid, prior, policy, forgetting.

    The deciders and the learner must be given the same values (a model message
    written for another grid, prior, policy or objective is refused).
    """

    prices: tuple[float, ...] = (1.0, 1.2, 1.5, 2.0)
    locations: tuple[str, ...] = ()
    policy: str | None = None
    objective: Literal["revenue", "acceptance", "revenue-supply"] = "revenue"
    prior_alpha: float = Field(default=1.0, gt=0)
    prior_beta: float = Field(default=1.0, gt=0)
    half_life_s: float | None = Field(default=None, gt=0)  # set: a fixed half-life instead
    forgetting: Literal["adaptive", "none"] = "adaptive"  # without HALF_LIFE_S
    # contexts beyond this are dead-lettered as too_many_contexts (memory, state, labels)
    max_contexts: int = Field(default=250_000, ge=1)
    batch_size: int = Field(default=1000, ge=1)
    poll_timeout_s: float = Field(default=0.2, gt=0)

    @field_validator("prices")
    @classmethod
    def _ascending(cls, prices: tuple[float, ...]) -> tuple[float, ...]:
        if not prices or any(p <= 0 for p in prices) or list(prices) != sorted(set(prices)):
            raise ValueError("prices must be positive, distinct and ascending")
        return prices


class PricingSettings(BanditSettings):
    """What pricing a demand event needs besides the posterior (the engine, the deciders)."""

    base_prices: dict[str, float] = Field(default_factory=dict)
    demand_low_below: float = Field(default=1.0, gt=0)
    demand_medium_below: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _demand_bounds_ordered(self) -> PricingSettings:
        """Refused here, at start, rather than when the service builds its thresholds."""
        if self.demand_low_below > self.demand_medium_below:
            raise ValueError("demand_low_below must not exceed demand_medium_below")
        return self


class LearningSettings(BanditSettings):
    """The join and the state file (the engine, the learner)."""

    state_path: Path = Path("bandit_stats.json")
    snapshot_interval_s: float = Field(default=5.0, gt=0)
    summary_interval_s: float = Field(default=10.0, gt=0)
    decision_timeout_s: float = Field(default=300.0, gt=0)
    expired_as: Literal["reject", "drop"] = "reject"
    max_pending: int = Field(default=1_000_000, ge=1)
    # >= 1: without any memory a replayed outcome that names its context would be learnt twice
    resolved_memory: int = Field(default=200_000, ge=1)


class EngineSettings(PricingSettings, LearningSettings):
    """The pricing engine (``DYNPRICING_ENGINE_*``): decider and learner in one process."""

    model_config = SettingsConfigDict(
        env_prefix="DYNPRICING_ENGINE_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    http_port: int = Field(default=8000, ge=0, le=65535)
    group_id: str = "dynpricing-engine"


class DeciderSettings(PricingSettings):
    """A stateless pricing replica (``DYNPRICING_DECIDER_*``), one of a consumer group."""

    model_config = SettingsConfigDict(
        env_prefix="DYNPRICING_DECIDER_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    http_port: int = Field(default=8003, ge=0, le=65535)
    group_id: str = "dynpricing-decider"
    # static membership (the chart sets the pod's name): a restart within the session
    # timeout takes its partitions back without a rebalance
    group_instance_id: str | None = None
    # how long the group waits for a silent replica before its partitions move on
    session_timeout_s: float = Field(default=10.0, ge=6.0, le=300.0)
    # offsets are committed this often, each once the decisions it covers are delivered
    commit_interval_s: float = Field(default=1.0, gt=0)


class LearnerSettings(LearningSettings):
    """The single writer of the posterior (``DYNPRICING_LEARNER_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="DYNPRICING_LEARNER_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    http_port: int = Field(default=8004, ge=0, le=65535)
    group_id: str = "dynpricing-learner"
    # a changed context's posterior is published at most this often
    model_publish_interval_s: float = Field(default=1.0, gt=0)
    # replayed decisions are recognised while their id is remembered: sized for the
    # deciders' replay window (session timeout plus commit interval) at high rates
    resolved_memory: int = Field(default=1_000_000, ge=1)
    # outcomes read before their decision, held; beyond this outcomes are read no further
    # until the decisions catch up
    max_held: int = Field(default=100_000, ge=1)


class ProducerSettings(ServiceSettings):
    """The demand producer (``DYNPRICING_PRODUCER_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="DYNPRICING_PRODUCER_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    http_port: int = Field(default=8001, ge=0, le=65535)
    rate: float = Field(default=50.0, ge=0)
    count: int = Field(default=0, ge=0)
    locations: tuple[str, ...] = ("Airport", "Downtown")
    day_length_s: float = Field(default=600.0, gt=0)
    burst_probability: float = Field(default=0.02, ge=0, le=1)
    # mixed into the seed and the event ids, so replicas with one SEED publish distinct
    # streams; the pod's (or container's) host name unless set
    replica_id: str = Field(default_factory=_host_name)


class SimulatorSettings(ServiceSettings):
    """The outcome simulator (``DYNPRICING_SIMULATOR_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="DYNPRICING_SIMULATOR_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    http_port: int = Field(default=8002, ge=0, le=65535)
    market_path: Path | None = None
    delay_mean_s: float = Field(default=0.0, ge=0)
    horizon: int = Field(default=0, ge=0)  # decisions that make up the market's drift timeline
    group_id: str = "dynpricing-simulator"
    batch_size: int = Field(default=1000, ge=1)
    poll_timeout_s: float = Field(default=0.2, gt=0)
