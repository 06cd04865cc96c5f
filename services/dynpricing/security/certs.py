"""A private certificate authority for the local broker and its clients (PEM files).

``dynpricing kafka up --security ...`` makes one CA, a server certificate for
the broker (also its client certificate towards its own controller listener)
and one client certificate per principal. Keys are EC P-256: generating one
takes a millisecond, where RSA takes tens, so a test session's broker starts
quickly. Everything is PEM, which both librdkafka and Kafka (``ssl.keystore.type
= PEM``) read directly, so no JDK ``keytool`` and no keystore passwords are
involved.

Tests also use :func:`issue` with another CA, or with a validity that has
already ended, to prove the broker refuses such certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dynpricing.security.local import write_private

CA_VALIDITY = dt.timedelta(days=365)
CERT_VALIDITY = dt.timedelta(days=365)
CLOCK_SKEW = dt.timedelta(minutes=5)  # certificates are valid a little before "now"
SERVER_HOSTS = ("localhost",)
SERVER_IPS = ("127.0.0.1",)


@dataclass(frozen=True)
class Authority:
    """A CA's certificate and key, able to sign certificates."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def name(self) -> str:
        return str(self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


@dataclass(frozen=True)
class CertFiles:
    """Where one principal's PEM certificate and key were written."""

    cert: Path
    key: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_authority(common_name: str) -> Authority:
    """A self-signed CA allowed to sign end-entity certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def issue(
    ca: Authority,
    common_name: str,
    *,
    server: bool = False,
    not_after: dt.datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for ``common_name`` signed by ``ca``: a client one, or a server one
    (for 127.0.0.1 and localhost) that also serves as a client certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    not_after = not_after or now + CERT_VALIDITY
    not_before = min(now - CLOCK_SKEW, not_after - CERT_VALIDITY)  # expired ones were valid once
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        names: list[x509.GeneralName] = [x509.DNSName(h) for h in SERVER_HOSTS]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(ca.key, hashes.SHA256()), key


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8, unencrypted: the form both Kafka's PEM key store and OpenSSL read."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_ca(ca: Authority, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert_pem(ca.cert))
    return path


def write_issued(
    ca: Authority,
    common_name: str,
    directory: Path,
    stem: str,
    *,
    server: bool = False,
    not_after: dt.datetime | None = None,
) -> CertFiles:
    """Issue a certificate and write ``<stem>.crt`` and ``<stem>.key`` under ``directory``."""
    cert, key = issue(ca, common_name, server=server, not_after=not_after)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / f"{stem}.crt"
    cert_path.write_bytes(cert_pem(cert))
    return CertFiles(cert_path, write_private(directory / f"{stem}.key", key_pem(key)))


def load_authority(cert_path: Path, key_path: Path) -> Authority:
    """A CA written earlier (``kafka up --keep-data`` keeps the clients' certificates valid)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} does not hold an EC private key")
    return Authority(cert, key)
