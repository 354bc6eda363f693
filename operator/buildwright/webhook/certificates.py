"""Certificates for loopback and in-cluster TLS: a throwaway CA and the certificates it signs.

Used by the local control plane (apiserver serving and client certificates) and by the
conversion webhook (its serving certificate). Keys are P-256; certificates are backdated a
few minutes so a client whose clock lags slightly still accepts them, and name every host
as a subjectAltName because Go clients such as the apiserver ignore the common name.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from buildwright.webhook.config import WebhookConfig

BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM (PKCS#8) private key."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA able to sign certificates; its key lives only in memory."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        *,
        days: int,
        organizations: Sequence[str] = (),
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        server: bool = False,
    ) -> KeyPair:
        """A leaf certificate for a server (names required) or a client."""
        key = new_key()
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        subject += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signing=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        elif server:
            raise ValueError("a serving certificate needs at least one hostname or IP address")
        cert = builder.sign(self.key, hashes.SHA256())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), key_pem(key))


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def new_ca(common_name: str, *, days: int) -> CertificateAuthority:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(key, cert)


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signing,
        crl_sign=signing,
        encipher_only=False,
        decipher_only=False,
    )


def generate_self_signed(
    hostnames: list[str], ip_addresses: list[str], days: int = 365
) -> tuple[bytes, bytes, bytes]:
    """Create a CA and a serving certificate signed by it.

    Returns PEM `(ca_cert, server_cert, server_key)`. The server certificate names every
    hostname and IP address as a subjectAltName. The CA key is discarded: a new pair is
    generated on rotation.
    """
    if not hostnames and not ip_addresses:
        raise ValueError("a serving certificate needs at least one hostname or IP address")
    ca = new_ca("buildwright-webhook-ca", days=days)
    serving = ca.issue(
        hostnames[0] if hostnames else ip_addresses[0],
        days=days,
        server=True,
        dns_names=hostnames,
        ip_addresses=ip_addresses,
    )
    return ca.cert_pem, serving.cert_pem, serving.key_pem


def certificate_not_after(cert_pem: bytes) -> datetime.datetime:
    """When a PEM certificate expires (UTC), to decide on rotation."""
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


# A generated certificate lives 90 days and is replaced after 60: short enough that a leaked
# key is not useful for long, long enough that rotation is a rare event.
GENERATED_DAYS = 90


# Renew when less than this share of the lifetime remains (cert-manager's default, too).
RENEW_REMAINING_FRACTION = 1 / 3


# Upper bound between checks: a renewed Secret is picked up within this time even when the
# certificate we serve is still far from its renewal point.
MAX_CHECK_INTERVAL = 3600.0


# Lower bound, so that a failing renewal (API down, Secret not yet renewed) is retried without
# spinning.
MIN_CHECK_INTERVAL = 60.0


def certificate_usable(certificate: Certificate | None, now: datetime.datetime) -> bool:
    """A certificate from our Secret can be served as it is (present, not due for renewal)."""
    return certificate is not None and not rotation_due(
        certificate.not_before, certificate.not_after, now
    )


def renewal_time(not_before: datetime.datetime, not_after: datetime.datetime) -> datetime.datetime:
    """When a certificate valid from `not_before` to `not_after` should be replaced."""
    return not_after - (not_after - not_before) * RENEW_REMAINING_FRACTION


def rotation_due(
    not_before: datetime.datetime, not_after: datetime.datetime, now: datetime.datetime
) -> bool:
    """True once less than a third of the certificate's lifetime remains (or it is invalid)."""
    return now >= renewal_time(not_before, not_after) or now < not_before


def seconds_until_check(
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    now: datetime.datetime,
    *,
    max_interval: float = MAX_CHECK_INTERVAL,
    min_interval: float = MIN_CHECK_INTERVAL,
) -> float:
    """How long the rotation task sleeps before it looks again."""
    remaining = (renewal_time(not_before, not_after) - now).total_seconds()
    return max(min_interval, min(max_interval, remaining))


def merged_ca_bundle(new_ca: bytes, previous_ca: bytes | None) -> bytes:
    """The caBundle while a new CA takes over: the apiserver must trust the certificate
    served before `reload_certificate` as well as the one served after it."""
    if not previous_ca or previous_ca.strip() == new_ca.strip():
        return new_ca
    return new_ca.rstrip(b"\n") + b"\n" + previous_ca


@dataclass(frozen=True)
class Certificate:
    """PEM material: the CA the apiserver trusts, the serving certificate and its key."""

    ca: bytes
    cert: bytes
    key: bytes

    def _x509(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert)

    @property
    def not_before(self) -> datetime.datetime:
        return self._x509().not_valid_before_utc

    @property
    def not_after(self) -> datetime.datetime:
        return self._x509().not_valid_after_utc


def generate_certificate(config: WebhookConfig, days: int = GENERATED_DAYS) -> Certificate:
    ca, cert, key = generate_self_signed(config.hostnames, config.ip_addresses, days)
    return Certificate(ca=ca, cert=cert, key=key)


def secret_data(certificate: Certificate) -> dict[str, str]:
    """The Secret `data` holding `certificate` (cert-manager's keys)."""
    return {
        key: base64.b64encode(value).decode("ascii")
        for key, value in (
            ("tls.crt", certificate.cert),
            ("tls.key", certificate.key),
            ("ca.crt", certificate.ca),
        )
    }


def stored_certificate(secret: Mapping[str, Any] | None) -> Certificate | None:
    """The certificate in our own Secret; None while it is empty or unreadable."""
    if secret is None:
        return None
    try:
        return certificate_from_secret(secret)
    except (ValueError, TypeError):
        return None


def certificate_from_secret(secret: Mapping[str, Any]) -> Certificate:
    """tls.crt/tls.key/ca.crt of a kubernetes.io/tls Secret (cert-manager's layout).

    Without ca.crt the serving certificate must be self-signed and is its own CA.
    """
    data = secret.get("data") or {}
    name = (secret.get("metadata") or {}).get("name", "?")
    missing = [k for k in ("tls.crt", "tls.key") if not data.get(k)]
    if missing:
        raise ValueError(f"Secret {name} has no {' and no '.join(missing)}")
    cert = base64.b64decode(data["tls.crt"])
    key = base64.b64decode(data["tls.key"])
    ca = base64.b64decode(data["ca.crt"]) if data.get("ca.crt") else cert
    return Certificate(ca=ca, cert=cert, key=key)
