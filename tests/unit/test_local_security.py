"""The local broker's secured configuration and the files each role gets."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509

from dynpricing import broker
from dynpricing.security import local
from dynpricing.security.local import SecurityFiles, client_settings, make_material

BOOTSTRAP = "127.0.0.1:19092"


def _props(layout: broker.BrokerLayout, material: local.Secrets | None = None) -> dict[str, str]:
    lines = broker.server_properties(layout, material).splitlines()
    return dict(line.split("=", 1) for line in lines)


def _verify(cert_path: Path, ca_path: Path) -> x509.Certificate:
    cert = x509.load_pem_x509_certificate(
        cert_path.read_bytes().split(b"-----END PRIVATE KEY-----")[-1]
    )
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    cert.verify_directly_issued_by(ca)
    return cert


def test_plaintext_mode_keeps_todays_broker_without_an_authorizer(tmp_path: Path) -> None:
    props = _props(broker.BrokerLayout(port=19092, data_dir=tmp_path))
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert "authorizer.class.name" not in props


@pytest.mark.parametrize(("mode", "protocol"), [("sasl-scram", "SASL_SSL"), ("mtls", "SSL")])
def test_secured_modes_authorize_with_no_acl_meaning_no_access(
    tmp_path: Path, mode: local.SecurityMode, protocol: str
) -> None:
    layout = broker.BrokerLayout(port=19092, data_dir=tmp_path, security=mode)
    material = make_material(mode, layout.files)
    props = _props(layout, material)
    assert props["listeners"] == "CLIENT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["listener.security.protocol.map"] == f"CLIENT:{protocol},CONTROLLER:SSL"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:kafka-broker;User:admin"
    # the controller listener takes only certificates: nothing on the node is anonymous
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props.get("listener.name.client.ssl.client.auth") == (
        "required" if mode == "mtls" else None
    )


def test_sasl_mode_gives_the_broker_its_own_scram_user_and_no_role_passwords(
    tmp_path: Path,
) -> None:
    layout = broker.BrokerLayout(port=19092, data_dir=tmp_path, security="sasl-scram")
    material = make_material("sasl-scram", layout.files)
    text = broker.server_properties(layout, material)
    assert 'username="kafka-broker"' in text
    assert material.broker in text
    assert all(password not in text for password in material.roles.values())
    assert local.format_arguments("sasl-scram", material)[1].startswith(
        "SCRAM-SHA-512=[name=kafka-broker,"
    )


def test_the_broker_certificate_is_signed_by_the_ca_for_the_loopback_address(
    tmp_path: Path,
) -> None:
    files = SecurityFiles(tmp_path)
    make_material("mtls", files)
    cert = _verify(files.broker_store, files.ca_cert)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert cert.subject.rfc4514_string() == "CN=kafka-broker"


def test_each_role_gets_a_certificate_with_its_principal_as_cn(tmp_path: Path) -> None:
    files = SecurityFiles(tmp_path)
    make_material("mtls", files)
    for role in (*local.ROLE_NAMES, local.ADMIN_ROLE):
        cert_path, key_path = files.client_cert(role)
        cert = _verify(cert_path, files.client_ca)
        assert cert.subject.rfc4514_string() == f"CN={local.principal_name(role)}"
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_role_env_files_hold_exactly_the_services_kafka_settings(tmp_path: Path) -> None:
    files = SecurityFiles(tmp_path)
    material = make_material("sasl-scram", files)
    local.write_client_files("sasl-scram", files, BOOTSTRAP, material)
    env = local.read_env_file(files.env_file("simulator"))
    assert env == {
        "DYNPRICING_SIMULATOR_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
        "DYNPRICING_SIMULATOR_KAFKA__SSL_CA_LOCATION": str(files.client_ca),
        "DYNPRICING_SIMULATOR_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "DYNPRICING_SIMULATOR_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "DYNPRICING_SIMULATOR_KAFKA__SASL_USERNAME": "dynpricing-simulator",
        "DYNPRICING_SIMULATOR_KAFKA__SASL_PASSWORD": material.roles["simulator"],
    }
    assert stat.S_IMODE(files.env_file("simulator").stat().st_mode) == 0o600
    settings = local.kafka_settings_from_env(env, "simulator")
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == material.roles["simulator"]


def test_every_role_has_a_different_password(tmp_path: Path) -> None:
    material = make_material("sasl-scram", SecurityFiles(tmp_path))
    passwords = [*material.roles.values(), material.broker]
    assert len(set(passwords)) == len(passwords)
    assert all(len(p) >= 32 for p in passwords)


def test_a_restart_keeping_data_keeps_the_ca_and_the_passwords(tmp_path: Path) -> None:
    files = SecurityFiles(tmp_path)
    first = make_material("sasl-scram", files)
    local.write_client_files("sasl-scram", files, BOOTSTRAP, first)
    ca = files.ca_cert.read_bytes()
    again = make_material("sasl-scram", files)
    assert again == first
    assert files.ca_cert.read_bytes() == ca


def test_mtls_settings_name_the_roles_certificate_and_key(tmp_path: Path) -> None:
    files = SecurityFiles(tmp_path)
    settings = client_settings("mtls", files, BOOTSTRAP, "engine", None)
    assert settings["SECURITY_PROTOCOL"] == "SSL"
    assert settings["SSL_CERTIFICATE_LOCATION"] == str(tmp_path / "clients/engine.crt")
    assert settings["SSL_KEY_LOCATION"] == str(tmp_path / "clients/engine.key")
    assert "SASL_PASSWORD" not in settings


def test_what_kafka_up_prints_names_files_and_never_a_password(tmp_path: Path) -> None:
    files = SecurityFiles(tmp_path)
    material = make_material("sasl-scram", files)
    text = local.describe_clients("sasl-scram", files, BOOTSTRAP)
    assert str(files.env_file("engine")) in text
    assert "SASL_MECHANISM=SCRAM-SHA-512" in text
    assert all(p not in text for p in material.roles.values())


def test_kept_data_is_refused_in_another_security_mode(tmp_path: Path) -> None:
    (tmp_path / broker.MODE_FILE).write_text("sasl-scram")
    layout = broker.BrokerLayout(port=19092, data_dir=tmp_path, security="mtls")
    with pytest.raises(broker.BrokerError, match="made for --security sasl-scram"):
        broker.prepare(layout, fresh=False)


def test_status_and_down_find_a_secured_brokers_admin_settings_without_the_mode(
    tmp_path: Path,
) -> None:
    secured = broker.BrokerLayout(port=19092, data_dir=tmp_path, security="mtls")
    files = secured.files
    local.write_client_files("mtls", files, secured.bootstrap, make_material("mtls", files))
    unknown_mode = broker.BrokerLayout(port=19092, data_dir=tmp_path)
    assert unknown_mode.admin_config()["security.protocol"] == "SSL"
    assert unknown_mode.admin_config()["ssl.certificate.location"] == str(
        tmp_path / "clients/admin.crt"
    )
