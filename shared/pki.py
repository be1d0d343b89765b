"""Identity material for a cluster: a CA, serving certificates, tokens, kubeconfig.

``redkube up`` (and the compose init step) call ``ensure_cluster_identity`` once per
home directory; files are written with mode 0600 and reused on the next start.
"""

from __future__ import annotations

import base64
import datetime
import fcntl
import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: user name, groups: the control-plane identities that get a token each.
COMPONENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("admin", ("system:masters",)),
    "scheduler": ("system:kube-scheduler", ()),
    "controller-manager": ("system:kube-controller-manager", ()),
    "proxy": ("system:kube-proxy", ()),
}


def _write_private(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, 0o600)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("redkube-ca"))
        .issuer_name(_name("redkube-ca"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        .sign(key, hashes.SHA256())
    )
    _write_private(
        directory / "ca.key",
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_serving_cert(directory: Path, *, hosts: list[str], days: int = 365) -> None:
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("redkube-apiserver"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write_private(
        directory / "apiserver.key",
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    (directory / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class Identity:
    home: Path

    @property
    def pki(self) -> Path:
        return self.home / "pki"

    @property
    def ca(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def cert(self) -> Path:
        return self.pki / "apiserver.crt"

    @property
    def key(self) -> Path:
        return self.pki / "apiserver.key"

    @property
    def token_file(self) -> Path:
        return self.home / "tokens.csv"

    def token_path(self, name: str) -> Path:
        return self.home / "tokens" / name

    def token(self, name: str) -> str:
        return self.token_path(name).read_text().strip()

    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig"


def _token_rows(path: Path) -> dict[str, str]:
    rows: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line and not line.startswith("#"):
                rows[line.split(",")[1]] = line
    return rows


def ensure_token(identity: Identity, name: str, user: str, groups: tuple[str, ...]) -> str:
    """A token for ``name`` (file ``tokens/NAME``), registered in the token file.

    Several processes may register at once (compose's node containers): the token
    file is changed under a lock and replaced atomically, so API servers re-reading
    it never see half a file.
    """
    identity.home.mkdir(parents=True, exist_ok=True)
    with open(identity.home / ".tokens.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = identity.token_path(name)
        rows = _token_rows(identity.token_file)
        if path.exists() and user in rows and rows[user].startswith(path.read_text().strip() + ","):
            return path.read_text().strip()
        token = secrets.token_urlsafe(32)
        _write_private(path, token + "\n")
        rows[user] = f'{token},{user},{user},"{",".join(groups)}"'
        staging = identity.token_file.with_suffix(".tmp")
        _write_private(staging, "\n".join(rows.values()) + "\n")
        os.replace(staging, identity.token_file)
        return token


def ensure_node_token(identity: Identity, node: str) -> str:
    return ensure_token(identity, f"node-{node}", f"system:node:{node}", ("system:nodes",))


def ensure_cluster_identity(home: Path, *, hosts: list[str] | None = None) -> Identity:
    identity = Identity(home)
    identity.pki.mkdir(parents=True, exist_ok=True)
    if not identity.ca.exists():
        make_ca(identity.pki)
    wanted = ["127.0.0.1", "localhost", "::1", socket.gethostname(), *(hosts or [])]
    if not identity.cert.exists() or _missing_names(identity.cert, wanted) or _expires_soon(identity.cert):
        make_serving_cert(identity.pki, hosts=wanted)
    for name, (user, groups) in COMPONENTS.items():
        ensure_token(identity, name, user, groups)
    return identity


def _missing_names(cert_path: Path, hosts: list[str]) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    present = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))
    return any(h not in present for h in hosts)


def _expires_soon(cert_path: Path, *, days: int = 30) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.not_valid_after_utc - _now() < datetime.timedelta(days=days)


def write_kubeconfig(
    identity: Identity,
    *,
    server: str,
    token: str,
    path: Path | None = None,
    user: str = "admin",
    ca: Path | None = None,
) -> Path:
    """A kubeconfig for ``server`` with ``token``; ``ca`` (default: the cluster's own CA)
    is the certificate that signed the serving certificate."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            # The CA is embedded, so the file works wherever it is copied (a host outside compose).
            {
                "name": "redkube",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode((ca or identity.ca).read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "redkube", "context": {"cluster": "redkube", "user": user, "namespace": "default"}}],
        "current-context": "redkube",
        "preferences": {},
    }
    target = path or identity.kubeconfig
    _write_private(target, yaml.safe_dump(config, sort_keys=False))
    return target
