"""A throw-away certificate authority and a loopback server certificate, made at run time
(and, on request, a client certificate from the same CA, for a daemon that verifies clients).

Nothing here is ever committed: the files land in the sandbox's own folder (mode 0600 keys).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    cert: Path
    key: Path
    client_cert: Path | None = None  # with client=True: CN "pipeline client", clientAuth
    client_key: Path | None = None


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def make_loopback_tls(folder: Path, *, days: int = 30, client: bool = False) -> TlsFiles:
    """A CA and a certificate for localhost/127.0.0.1 signed by it, written into `folder`;
    with `client`, also a client certificate (extended key usage clientAuth) from the same CA."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pipeline sandbox CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    validity = (now - dt.timedelta(minutes=5), now + dt.timedelta(days=days))
    key, cert = _leaf(
        ca_key,
        ca_name,
        "localhost",
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        validity=validity,
        san=x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        ),
    )
    files = TlsFiles(
        ca_cert=folder / "ca.crt", cert=folder / "server.crt", key=folder / "server.key"
    )
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(files.key, key)
    if not client:
        return files
    client_key, client_cert = _leaf(
        ca_key,
        ca_name,
        "pipeline client",
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        validity=validity,
    )
    cert_path, key_path = folder / "client.crt", folder / "client.key"
    cert_path.write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, client_key)
    return dataclasses.replace(files, client_cert=cert_path, client_key=key_path)


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    common_name: str,
    *,
    usage: x509.ObjectIdentifier,
    validity: tuple[dt.datetime, dt.datetime],
    san: x509.SubjectAlternativeName | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new key and its certificate for `common_name`, signed by the CA, for one `usage`."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())
