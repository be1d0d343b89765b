"""Renewal of the serving certificate ``redkube up`` made itself, while the cluster runs.

A thread of the supervisor looks at the certificate every so often (a twentieth of its
lifetime, at most a minute) and reissues it from the same CA with the same names once
less than a third of its lifetime is left, as kubelet's certificate manager does. Each
file is replaced atomically (temporary file + rename, the key 0600); the API servers
notice the change and serve the new pair to new connections (``apiserver/tls.py``), so
nothing restarts and open watches stay. A certificate the user supplied
(``--tls-cert-file``) is never touched: ``up`` does not start the renewal then.

``--serving-cert-validity SECONDS`` (or ``REDKUBE_SERVING_CERT_VALIDITY``), a testing
knob hidden from ``--help``, issues the certificate with that lifetime at start, so a
renewal can be seen within seconds.
"""

from __future__ import annotations

import argparse
import datetime
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from shared import pki

DEFAULT_VALIDITY = datetime.timedelta(days=365)
MAX_CHECK_INTERVAL = 60.0
MIN_CHECK_INTERVAL = 0.5
VALIDITY_ENV = "REDKUBE_SERVING_CERT_VALIDITY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--serving-cert-validity", type=float, default=None, help=argparse.SUPPRESS)


def _lifetime(cert: x509.Certificate) -> tuple[datetime.timedelta, datetime.timedelta]:
    """(whole lifetime, time left) of a certificate."""
    now = datetime.datetime.now(datetime.UTC)
    return cert.not_valid_after_utc - cert.not_valid_before_utc, cert.not_valid_after_utc - now


@dataclass
class ServingCertRenewal:
    identity: pki.Identity
    validity: datetime.timedelta = DEFAULT_VALIDITY
    log: Any = None
    renewals: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def current(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.identity.cert.read_bytes())

    def due(self) -> bool:
        lifetime, left = _lifetime(self.current())
        return left < lifetime / 3

    def check_interval(self) -> float:
        try:
            lifetime, _ = _lifetime(self.current())
        except (OSError, ValueError):
            return MAX_CHECK_INTERVAL / 6  # unreadable now (being replaced by hand?): look again soon
        return max(MIN_CHECK_INTERVAL, min(MAX_CHECK_INTERVAL, lifetime.total_seconds() / 20))

    def renew(self) -> None:
        """Reissue from the same CA for the same names; the key lands before the certificate
        (a reader that sees the new key with the old certificate refuses the pair and retries)."""
        old = self.current()
        hosts = pki.certificate_hosts(self.identity.cert)
        cert, key = pki.issue_serving_cert(self.identity.pki, hosts=hosts, validity=self.validity)
        pki.write_atomic(self.identity.key, key, private=True)
        pki.write_atomic(self.identity.cert, cert)
        self.renewals += 1
        if self.log is not None:
            new = self.current()
            self.log.info("serving certificate renewed", old_serial=f"{old.serial_number:x}",
                          serial=f"{new.serial_number:x}", not_after=new.not_valid_after_utc.isoformat())

    def _run(self) -> None:
        while not self._stop.wait(self.check_interval()):
            try:
                if self.due():
                    self.renew()
            except Exception as exc:  # a bad file or full disk must not end the supervisor
                if self.log is not None:
                    self.log.warning("serving certificate renewal failed; retrying", error=str(exc))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="serving-cert-renewal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def start(identity: pki.Identity, *, args: argparse.Namespace, log: Any = None) -> ServingCertRenewal:
    """Begin renewing ``identity``'s serving certificate (first reissuing it with the testing
    lifetime, if one is asked for, before any API server reads it). With a user-supplied
    certificate (``args.tls_cert_file``) nothing runs and ``stop`` does nothing."""
    renewal = ServingCertRenewal(identity, log=log)
    if getattr(args, "tls_cert_file", None):
        return renewal
    seconds = getattr(args, "serving_cert_validity", None) or float(os.environ.get(VALIDITY_ENV) or 0)
    if seconds > 0:
        renewal.validity = datetime.timedelta(seconds=seconds)
        lifetime, _ = _lifetime(renewal.current())
        if abs((lifetime - renewal.validity).total_seconds()) > 1:
            renewal.renew()
    renewal.start()
    return renewal
