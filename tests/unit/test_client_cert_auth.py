"""x509 authentication and certificate reloading, without processes: who a certificate
names, when it stops counting, and when new serving files are (not) taken."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from services.apiserver.auth import Authenticator, self_subject_review
from services.apiserver.errors import ApiError
from services.apiserver.tls import ServingCertificates, client_certificate
from shared import pki


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    pki.make_ca(tmp_path)
    return tmp_path


def test_certificate_names_the_user_and_groups(ca: Path) -> None:
    cert, _ = pki.issue_client_cert(ca, user="alice", groups=["devs", "ops"])
    user = Authenticator({}).authenticate(None, client_cert=cert.decode())
    assert (user.name, user.groups) == ("alice", ("devs", "ops", "system:authenticated"))
    review = self_subject_review(user)["status"]["userInfo"]
    assert review == {"username": "alice", "groups": ["devs", "ops", "system:authenticated"]}


def test_certificate_wins_over_a_token_and_neither_is_401(ca: Path) -> None:
    cert, _ = pki.issue_client_cert(ca, user="alice")
    authn = Authenticator({})
    assert authn.authenticate("no-such-token", client_cert=cert.decode()).name == "alice"
    with pytest.raises(ApiError) as caught:
        authn.authenticate(None, client_cert=None)
    assert caught.value.code == 401


def test_expired_or_unreadable_certificates_do_not_authenticate(ca: Path) -> None:
    authn = Authenticator({})
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    expired, _ = pki.issue_client_cert(ca, user="alice", validity=datetime.timedelta(hours=1), not_before=past)
    for pem in (expired, b"garbage"):
        with pytest.raises(ApiError) as caught:
            authn.authenticate(None, client_cert=pem.decode())
        assert caught.value.code == 401


def test_client_certificate_reads_the_asgi_tls_extension() -> None:
    assert client_certificate({"type": "http"}) is None
    assert client_certificate({"extensions": {"tls": {"client_cert_chain": []}}}) is None
    assert client_certificate({"extensions": {"tls": {"client_cert_chain": ["PEM", "CA"]}}}) == "PEM"


def _serving_pair(ca: Path, directory: Path) -> tuple[Path, Path, int]:
    cert, key = pki.issue_serving_cert(ca, hosts=["127.0.0.1"], validity=datetime.timedelta(days=1))
    pki.write_atomic(directory / "tls.key", key, private=True)
    pki.write_atomic(directory / "tls.crt", cert)
    return directory / "tls.crt", directory / "tls.key", x509.load_pem_x509_certificate(cert).serial_number


def test_serving_certificates_reload_whole_pairs_only(ca: Path, tmp_path: Path) -> None:
    served = tmp_path / "served"
    cert_file, key_file, _ = _serving_pair(ca, served)
    certificates = ServingCertificates(cert_file, key_file=key_file, client_ca_file=ca / "ca.crt")
    assert certificates.context.verify_mode == ssl.CERT_OPTIONAL
    assert not certificates.refresh(force=True)  # nothing changed

    _serving_pair(ca, served)
    assert certificates.refresh(force=True) and certificates.reloads == 1

    # A key without its certificate (half of a renewal) is refused; the pair, once whole, is taken.
    _, key = pki.issue_serving_cert(ca, hosts=["127.0.0.1"], validity=datetime.timedelta(days=1))
    pki.write_atomic(key_file, key, private=True)
    assert not certificates.refresh(force=True)
    _serving_pair(ca, served)
    assert certificates.refresh(force=True) and certificates.reloads == 2
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
