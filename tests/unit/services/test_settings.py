"""Each service reads its settings from its own env prefix, as docs/interfaces.md lists them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from dynpricing.settings import (
    BOOTSTRAP_ENV,
    DEFAULT_BOOTSTRAP,
    DeciderSettings,
    EngineSettings,
    KafkaSettings,
    LearnerSettings,
    ProducerSettings,
    ServiceSettings,
    SimulatorSettings,
    librdkafka_config,
)

INTERFACES = Path(__file__).resolve().parents[3] / "docs" / "interfaces.md"
SERVICES: dict[str, type[ServiceSettings]] = {
    "DYNPRICING_ENGINE_": EngineSettings,
    "DYNPRICING_PRODUCER_": ProducerSettings,
    "DYNPRICING_SIMULATOR_": SimulatorSettings,
    "DYNPRICING_DECIDER_": DeciderSettings,
    "DYNPRICING_LEARNER_": LearnerSettings,
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable of the developer's shell may leak into what a test reads."""
    import os  # noqa: PLC0415 - only to list the variables to remove

    for name in list(os.environ):
        if name.startswith("DYNPRICING_") or name == BOOTSTRAP_ENV:
            monkeypatch.delenv(name)


def _section(title: str) -> str:
    text = INTERFACES.read_text()
    start = text.index(title)
    following = text.find("\n#", start + len(title))
    return text[start : following if following != -1 else None]


def _table_variables(section: str) -> list[str]:
    names = []
    for cells in re.findall(r"^\| `([^|]+)` \|", section, flags=re.MULTILINE):
        names += [name.strip("` ") for name in cells.split("/")]
    return names


def _field(settings: Any, variable: str) -> Any:
    value = settings
    for part in variable.lower().split("__"):
        assert part in type(value).model_fields, f"{variable}: no field {part!r}"
        value = getattr(value, part)
    return value


@pytest.mark.parametrize("prefix", SERVICES)
def test_every_documented_common_variable_is_a_setting_of_every_service(prefix: str) -> None:
    settings = SERVICES[prefix]()
    common = _section("## Settings").split("Engine only")[0]
    variables = _table_variables(common)
    assert "KAFKA__SASL_PASSWORD" in variables
    for variable in variables:
        _field(settings, variable)


def test_every_documented_engine_variable_is_an_engine_setting() -> None:
    variables = _table_variables(_section("Engine only"))
    assert "DECISION_TIMEOUT_S" in variables
    assert "PRIOR_BETA" in variables
    for variable in variables:
        _field(EngineSettings(), variable)


@pytest.mark.parametrize(
    ("title", "settings_class"),
    [("Decider only", DeciderSettings), ("Learner only", LearnerSettings)],
)
def test_every_documented_decider_and_learner_variable_is_their_setting(
    title: str, settings_class: type[ServiceSettings]
) -> None:
    variables = _table_variables(_section(title))
    assert "GROUP_ID" in variables
    assert "PRIOR_BETA" in variables
    for variable in variables:
        _field(settings_class(), variable)


def test_decider_and_learner_defaults_match_the_documented_ones() -> None:
    decider, learner = DeciderSettings(), LearnerSettings()
    assert (decider.http_port, learner.http_port) == (8003, 8004)
    assert (decider.group_id, learner.group_id) == ("dynpricing-decider", "dynpricing-learner")
    assert (decider.group_instance_id, decider.session_timeout_s) == (None, 10.0)
    assert decider.commit_interval_s == 1.0
    assert (learner.model_publish_interval_s, learner.max_held) == (1.0, 100_000)
    assert (learner.resolved_memory, learner.state_path) == (1_000_000, Path("bandit_stats.json"))
    assert decider.topics.model == learner.topics.model == "pricing_model"
    assert decider.prices == learner.prices == EngineSettings().prices


def test_a_session_timeout_below_the_brokers_minimum_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DYNPRICING_DECIDER_SESSION_TIMEOUT_S", "2")
    with pytest.raises(ValidationError, match="session_timeout_s"):
        DeciderSettings()


def test_every_documented_producer_and_simulator_variable_is_a_setting() -> None:
    for title, settings in (
        ("Producer only", ProducerSettings()),
        ("Simulator only", SimulatorSettings()),
    ):
        paragraph = _section(title).split("\n\n")[0]
        variables = re.findall(r"`([A-Z][A-Z_]*[A-Z])`", paragraph)
        assert variables
        for variable in variables:
            _field(settings, variable)


def test_defaults_are_the_documented_ports_topics_and_broker() -> None:
    engine, producer, simulator = EngineSettings(), ProducerSettings(), SimulatorSettings()
    assert (engine.http_port, producer.http_port, simulator.http_port) == (8000, 8001, 8002)
    assert engine.topics.all() == [
        "demand_events",
        "pricing_decisions",
        "pricing_outcomes",
        "pricing_dead_letters",
    ]
    assert engine.topics.with_model()[-1] == engine.topics.model == "pricing_model"
    assert engine.kafka.bootstrap_servers == DEFAULT_BOOTSTRAP == "127.0.0.1:9092"
    assert engine.kafka.security_protocol == "PLAINTEXT"
    assert (engine.log_level, engine.log_format) == ("info", "auto")


@pytest.mark.parametrize("settings_class", [EngineSettings, ProducerSettings, SimulatorSettings])
def test_http_listens_on_loopback_unless_an_address_is_set(
    settings_class: type[EngineSettings | ProducerSettings | SimulatorSettings],
) -> None:
    assert settings_class().http_host == "127.0.0.1"


def test_engine_defaults_match_the_documented_ones() -> None:
    engine = EngineSettings()
    assert engine.state_path == Path("bandit_stats.json")
    assert engine.group_id == "dynpricing-engine"
    assert engine.prices == (1.0, 1.2, 1.5, 2.0)
    assert (engine.base_prices, engine.locations) == ({}, ())
    assert (engine.objective, engine.prior_alpha, engine.prior_beta) == ("revenue", 1.0, 1.0)
    assert engine.half_life_s is None
    assert (engine.snapshot_interval_s, engine.decision_timeout_s) == (5.0, 300.0)
    assert (engine.expired_as, engine.max_pending, engine.batch_size) == ("reject", 1_000_000, 1000)
    assert engine.max_contexts == 250_000
    assert engine.seed is None


def test_a_producers_replica_is_its_host_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTNAME", "producer-5d8b")
    assert ProducerSettings().replica_id == "producer-5d8b"
    monkeypatch.setenv("DYNPRICING_PRODUCER_REPLICA_ID", "replica-1")
    assert ProducerSettings().replica_id == "replica-1"


def test_producer_and_simulator_defaults_match_the_documented_ones() -> None:
    producer, simulator = ProducerSettings(), SimulatorSettings()
    assert (producer.rate, producer.count) == (50.0, 0)
    assert producer.locations == ("Airport", "Downtown")
    assert (simulator.market_path, simulator.delay_mean_s) == (None, 0.0)
    assert simulator.group_id == "dynpricing-simulator"


def test_nested_variables_under_a_service_prefix_reach_only_that_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DYNPRICING_ENGINE_KAFKA__BOOTSTRAP_SERVERS", "kafka-0:9093")
    monkeypatch.setenv("DYNPRICING_ENGINE_TOPICS__DEMAND", "rides")
    monkeypatch.setenv("DYNPRICING_ENGINE_HTTP_PORT", "9100")
    engine = EngineSettings()
    assert engine.kafka.bootstrap_servers == "kafka-0:9093"
    assert engine.topics.demand == "rides"
    assert engine.topics.outcomes == "pricing_outcomes"
    assert engine.http_port == 9100
    producer = ProducerSettings()
    assert producer.kafka.bootstrap_servers == DEFAULT_BOOTSTRAP
    assert (producer.topics.demand, producer.http_port) == ("demand_events", 8001)


def test_the_shared_bootstrap_variable_applies_unless_a_service_names_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(BOOTSTRAP_ENV, "shared:9092")
    monkeypatch.setenv("DYNPRICING_SIMULATOR_KAFKA__BOOTSTRAP_SERVERS", "own:9092")
    monkeypatch.setenv("DYNPRICING_PRODUCER_KAFKA__SASL_USERNAME", "producer")
    assert EngineSettings().kafka.bootstrap_servers == "shared:9092"
    assert SimulatorSettings().kafka.bootstrap_servers == "own:9092"
    producer = ProducerSettings()
    assert producer.kafka.bootstrap_servers == "shared:9092"
    assert producer.kafka.sasl_username == "producer"


def test_lists_and_maps_are_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNPRICING_ENGINE_PRICES", "[0.8, 1.0, 1.5]")
    monkeypatch.setenv("DYNPRICING_ENGINE_BASE_PRICES", '{"Airport": 12.5}')
    monkeypatch.setenv("DYNPRICING_ENGINE_LOCATIONS", '["Airport", "Downtown"]')
    monkeypatch.setenv("DYNPRICING_PRODUCER_LOCATIONS", '["Harbour"]')
    engine = EngineSettings()
    assert engine.prices == (0.8, 1.0, 1.5)
    assert engine.base_prices == {"Airport": 12.5}
    assert engine.locations == ("Airport", "Downtown")
    assert ProducerSettings().locations == ("Harbour",)


@pytest.mark.parametrize("prices", ["[]", "[2.0, 1.0]", "[1.0, 1.0]", "[0, 1.0]", "[-1.0, 1.0]"])
def test_a_price_grid_that_is_not_positive_distinct_and_ascending_is_refused(
    monkeypatch: pytest.MonkeyPatch, prices: str
) -> None:
    monkeypatch.setenv("DYNPRICING_ENGINE_PRICES", prices)
    with pytest.raises(ValidationError, match="prices"):
        EngineSettings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DYNPRICING_ENGINE_EXPIRED_AS", "keep"),
        ("DYNPRICING_ENGINE_KAFKA__SECURITY_PROTOCOL", "TLS"),
        ("DYNPRICING_ENGINE_KAFKA__SASL_MECHANISM", "GSSAPI"),
        ("DYNPRICING_ENGINE_HTTP_PORT", "70000"),
        ("DYNPRICING_ENGINE_MAX_PENDING", "0"),
        ("DYNPRICING_ENGINE_DECISION_TIMEOUT_S", "0"),
        ("DYNPRICING_PRODUCER_RATE", "-1"),
        ("DYNPRICING_SIMULATOR_DELAY_MEAN_S", "-0.5"),
    ],
)
def test_out_of_range_settings_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    service = next(cls for prefix, cls in SERVICES.items() if variable.startswith(prefix))
    with pytest.raises(ValidationError):
        service()


def test_demand_level_bounds_out_of_order_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DYNPRICING_ENGINE_DEMAND_LOW_BELOW", "3.0")
    with pytest.raises(ValidationError, match="demand_low_below"):
        EngineSettings()
    monkeypatch.setenv("DYNPRICING_ENGINE_DEMAND_MEDIUM_BELOW", "4.0")
    assert EngineSettings().demand_medium_below == 4.0


def test_settings_are_frozen() -> None:
    settings = EngineSettings()
    with pytest.raises(ValidationError):
        settings.batch_size = 5  # type: ignore[misc]


def test_the_sasl_password_is_a_secret_that_repr_does_not_show(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DYNPRICING_ENGINE_KAFKA__SASL_PASSWORD", "hunter2")
    settings = EngineSettings()
    assert isinstance(settings.kafka.sasl_password, SecretStr)
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())


def test_plaintext_kafka_settings_become_only_the_broker_and_protocol() -> None:
    conf = librdkafka_config(KafkaSettings(bootstrap_servers="b:9092"))
    assert conf == {"bootstrap.servers": "b:9092", "security.protocol": "PLAINTEXT"}


def test_security_settings_pass_through_to_librdkafka_keys_with_the_secret_revealed() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="b:9094",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="engine",
        sasl_password=SecretStr("s3cret"),
        ssl_ca_location="/etc/kafka/ca.crt",
        ssl_certificate_location="/etc/kafka/tls.crt",
        ssl_key_location="/etc/kafka/tls.key",
    )
    assert librdkafka_config(kafka) == {
        "bootstrap.servers": "b:9094",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "engine",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/kafka/ca.crt",
        "ssl.certificate.location": "/etc/kafka/tls.crt",
        "ssl.key.location": "/etc/kafka/tls.key",
    }


def test_security_settings_from_the_environment_reach_librdkafka(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DYNPRICING_SIMULATOR_KAFKA__SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("DYNPRICING_SIMULATOR_KAFKA__SSL_CA_LOCATION", "/ca.pem")
    conf = librdkafka_config(SimulatorSettings().kafka)
    assert conf["security.protocol"] == "SSL"
    assert conf["ssl.ca.location"] == "/ca.pem"
    assert "sasl.password" not in conf
