"""HTTPS for `kefal-lite serve --tls`: the configured certificate, or a self-signed one
made on first start, and the pin the install line carries for it.

A self-signed certificate is trusted by pinning its SHA-256 (the agent's `--pin`, and
curl's `--pinnedpubkey` for the download of install.sh): no CA is involved, so the pin
is the whole trust and is shown with every install line. A CA-issued certificate is not
pinned (it is renewed every few months; the system's CAs verify it instead).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import psutil
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kefal_lite.config import ConfigError, Settings

CERT_FILE = "tls-cert.pem"
KEY_FILE = "tls-key.pem"
VALID_DAYS = 3650  # the pin, not the dates, is what agents trust


class Pin(msgspec.Struct, frozen=True):
    cert: str  # "sha256:<hex>" of the DER certificate: the agent's --pin
    spki: str  # "sha256//<base64>" of the public key: curl's --pinnedpubkey


class TlsFiles(msgspec.Struct, frozen=True):
    cert: Path
    key: Path
    generated: bool  # made by this server (self-signed)


def files(settings: Settings) -> TlsFiles:
    if settings.tls_cert or settings.tls_key:
        if not (settings.tls_cert and settings.tls_key):
            raise ConfigError("tls.cert and tls.key go together: set both, or neither")
        return TlsFiles(Path(settings.tls_cert), Path(settings.tls_key), generated=False)
    data = settings.data_path
    return TlsFiles(data / CERT_FILE, data / KEY_FILE, generated=True)


def ensure_certificate(settings: Settings, now: datetime | None = None) -> TlsFiles:
    """The files to serve; a self-signed pair is generated into the data dir when no
    certificate is configured and none was generated before."""
    found = files(settings)
    if not found.generated:
        for path in (found.cert, found.key):
            if not path.is_file():
                raise ConfigError(f"tls: {path} does not exist or is not a file")
        return found
    if found.cert.is_file() and found.key.is_file():
        return found
    _generate(found, settings.host, now or datetime.now(UTC))
    return found


def _names(host: str) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    dns = {"localhost", socket.gethostname(), socket.getfqdn()}
    ips: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    for addresses in psutil.net_if_addrs().values():
        for addr in addresses:
            if addr.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    ips.add(ipaddress.ip_address(addr.address.split("%")[0]))
                except ValueError:
                    continue
    try:
        ips.add(ipaddress.ip_address(host))
    except ValueError:
        if host:
            dns.add(host)
    return sorted(d for d in dns if d and d not in ("0.0.0.0", "::")), sorted(ips, key=str)


def _generate(target: TlsFiles, host: str, now: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    dns, ips = _names(host)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"kefal-lite {dns[0]}"[:64])])
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ip) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    target.key.parent.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_new(target.key, key_pem, 0o600)
    _write_new(target.cert, cert.public_bytes(serialization.Encoding.PEM), 0o600)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def pin_of(cert_pem: bytes) -> Pin:
    cert = x509.load_pem_x509_certificate(cert_pem)
    der = cert.public_bytes(serialization.Encoding.DER)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Pin(
        cert="sha256:" + hashlib.sha256(der).hexdigest(),
        spki="sha256//" + base64.b64encode(hashlib.sha256(spki).digest()).decode(),
    )


def is_self_signed(cert_pem: bytes) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.issuer == cert.subject


_cache: dict[tuple[str, int, int], Pin | None] = {}


def served_pin(settings: Settings) -> Pin | None:
    """The pin for install lines: that of the served certificate when it is self-signed,
    None when TLS is off or a CA vouches for the certificate."""
    if not settings.tls_enabled:
        return None
    path = files(settings).cert
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _cache:
        pem = path.read_bytes()
        _cache[key] = pin_of(pem) if is_self_signed(pem) else None
    return _cache[key]
