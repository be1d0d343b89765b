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


def write_private(path: Path, data: bytes | str) -> None:
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
    write_private(
        directory / "ca.key",
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_serving_cert(
    directory: Path, *, hosts: list[str], days: int = 365, stem: str = "apiserver",
    common_name: str = "redkube-apiserver",
) -> None:
    """Sign ``STEM.crt``/``STEM.key`` in ``directory`` with its CA, valid for ``hosts``."""
    cert, key = issue_serving_cert(directory, hosts=hosts, validity=datetime.timedelta(days=days),
                                   common_name=common_name)
    write_atomic(directory / f"{stem}.key", key, private=True)
    write_atomic(directory / f"{stem}.crt", cert)


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
        write_private(path, token + "\n")
        rows[user] = f'{token},{user},{user},"{",".join(groups)}"'
        staging = identity.token_file.with_suffix(".tmp")
        write_private(staging, "\n".join(rows.values()) + "\n")
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
    write_private(target, yaml.safe_dump(config, sort_keys=False))
    return target


# --- client certificates and renewal (added for x509 authentication) ---------------------------


def write_atomic(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``path`` through a temporary file and a rename, so a reader (an API server
    reloading its certificate) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_ca(pki_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = serialization.load_pem_private_key((pki_dir / "ca.key").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{pki_dir / 'ca.key'} is not an EC key")
    return x509.load_pem_x509_certificate((pki_dir / "ca.crt").read_bytes()), key


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _backdate(validity: datetime.timedelta) -> datetime.timedelta:
    """Clock-skew allowance: five minutes, but never more than a tenth of a short lifetime
    (or renewal, which looks at the remaining share of the lifetime, would never settle)."""
    return min(datetime.timedelta(minutes=5), validity / 10)


def issue_client_cert(
    pki_dir: Path,
    *,
    user: str,
    groups: list[str] | tuple[str, ...] = (),
    validity: datetime.timedelta = datetime.timedelta(days=365),
    not_before: datetime.datetime | None = None,
) -> tuple[bytes, bytes]:
    """A client certificate (PEM cert, PEM key) signed by the CA in ``pki_dir``: CN is the
    user name and each O a group, as kube-apiserver's x509 authenticator reads them."""
    ca_cert, ca_key = _load_ca(pki_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - _backdate(validity)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        + [x509.NameAttribute(NameOID.COMMON_NAME, user)]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def issue_serving_cert(
    pki_dir: Path, *, hosts: list[str], validity: datetime.timedelta, common_name: str = "redkube-apiserver"
) -> tuple[bytes, bytes]:
    """A serving certificate (PEM cert, PEM key) like ``make_serving_cert``'s, of any lifetime,
    returned rather than written so the caller can replace the files atomically."""
    ca_cert, ca_key = _load_ca(pki_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    start = _now() - _backdate(validity)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + validity)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def certificate_hosts(cert_path: Path) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for (its SANs), in order."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    hosts: list[str] = []
    for value in san:
        if isinstance(value, x509.IPAddress):
            hosts.append(str(value.value))
        elif isinstance(value, x509.DNSName):
            hosts.append(value.value)
    return hosts


def client_kubeconfig(*, server: str, ca_pem: bytes, user: str, cert_pem: bytes, key_pem: bytes,
                      namespace: str = "default") -> str:
    """A kubeconfig (YAML) that authenticates ``user`` with a client certificate."""
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "redkube", "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert_pem),
                                          "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": f"{user}@redkube", "context": {"cluster": "redkube", "user": user,
                                                            "namespace": namespace}}],
        "current-context": f"{user}@redkube",
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)
