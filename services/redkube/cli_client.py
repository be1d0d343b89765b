"""The REST client behind the ``redkube`` client verbs: kubeconfig, HTTPS, errors.

A synchronous httpx client is enough for a command-line tool that makes a handful of
requests (and streams one watch or log at most), and keeps every verb a plain
function. Errors surface as ``CliError`` carrying the text kubectl would print and
the exit code; the verbs never print tracebacks.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from shared.resources import RESOURCES, Resource, lookup

#: Exit codes a script can rely on.
EXIT_OK = 0
EXIT_ERROR = 1  # any error kubectl reports (from the server, a bad manifest, a timeout)
EXIT_USAGE = 2  # argparse's code for a bad command line


class CliError(Exception):
    """A failure to report on stderr (already worded as kubectl words it)."""

    def __init__(self, message: str, *, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ApiStatusError(CliError):
    """The server answered with a Status failure."""

    def __init__(self, http_code: int, status: dict[str, Any]) -> None:
        self.http_code = http_code
        self.status = status
        self.reason = str(status.get("reason") or "Unknown")
        self.action = ""  # what the verb was doing, for messages such as 'error when creating "x.yaml"'
        if http_code == 401:
            message = "error: You must be logged in to the server (Unauthorized)"
        else:
            message = f"Error from server ({self.reason}): {status.get('message') or 'unknown error'}"
        super().__init__(message)


@dataclass(frozen=True)
class Config:
    server: str
    token: str | None
    ca: str | None
    namespace: str
    insecure: bool = False
    ca_data: str | None = None


def kubeconfig_path(explicit: str | None = None) -> Path:
    """``--kubeconfig``, else ``KUBECONFIG``, else ``$REDKUBE_HOME/kubeconfig``, else ``~/.redkube/kubeconfig``."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("KUBECONFIG"):
        return Path(os.environ["KUBECONFIG"].split(os.pathsep)[0]).expanduser()
    if os.environ.get("REDKUBE_HOME"):
        return Path(os.environ["REDKUBE_HOME"]) / "kubeconfig"
    return Path.home() / ".redkube" / "kubeconfig"


def _named(items: list[dict[str, Any]] | None, name: str | None) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return item
    return (items or [{}])[0]


def load_config(explicit: str | None = None) -> Config:
    path = kubeconfig_path(explicit)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise CliError(f"error: cannot read kubeconfig {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CliError(f"error: kubeconfig {path} is not valid YAML: {exc}") from exc
    context = _named(raw.get("contexts"), raw.get("current-context")).get("context") or {}
    cluster = _named(raw.get("clusters"), context.get("cluster")).get("cluster") or {}
    user = _named(raw.get("users"), context.get("user")).get("user") or {}
    if not cluster.get("server"):
        raise CliError(f"error: no server in kubeconfig {path}")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    ca = cluster.get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        ca = str(path.parent / ca)
    return Config(
        server=cluster["server"].rstrip("/"),
        token=token,
        ca=ca,
        namespace=context.get("namespace") or "default",
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        ca_data=base64.b64decode(cluster["certificate-authority-data"]).decode()
        if cluster.get("certificate-authority-data")
        else None,
    )


def resolve(kind: str) -> Resource:
    """A resource by plural, singular, kind or short name, or kubectl's error."""
    resource = lookup(kind)
    if resource is None:
        raise CliError(f'error: the server doesn\'t have a resource type "{kind}"')
    return resource


def by_manifest(doc: dict[str, Any]) -> Resource:
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    for resource in RESOURCES:
        if resource.kind == kind and resource.api_version == api_version:
            return resource
    raise CliError(f'error: resource mapping not found for kind "{kind}" in version "{api_version}"')


def display_name(resource: Resource) -> str:
    """``pod``, ``deployment.apps``: how kubectl names a kind in its messages."""
    return f"{resource.kind.lower()}.{resource.group}" if resource.group else resource.kind.lower()


def qualified_plural(resource: Resource) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


class Client:
    def __init__(self, config: Config, *, timeout: float = 30.0) -> None:
        self.config = config
        headers = {"User-Agent": "redkube-cli"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        verify: Any = True
        if config.insecure:
            verify = False
        elif config.ca_data:
            verify = ssl.create_default_context(cadata=config.ca_data)
        elif config.ca:
            verify = ssl.create_default_context(cafile=config.ca)
        self.http = httpx.Client(base_url=config.server, headers=headers, verify=verify, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def path(resource: Resource, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
        if resource.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{resource.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Any:
        headers = {"Accept": accept}
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body).encode()
        try:
            response = self.http.request(method, path, params=params, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        return self._decode(response)

    def _unreachable(self, exc: httpx.HTTPError) -> CliError:
        host = self.config.server.split("://", 1)[-1]
        if isinstance(exc, httpx.ConnectError) and "refused" in str(exc).lower():
            return CliError(
                f"The connection to the server {host} was refused - did you specify the right host or port?"
            )
        return CliError(f"Unable to connect to the server: {exc}")

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = {"message": response.text}
        if response.status_code >= 400:
            if not isinstance(data, dict) or data.get("kind") != "Status":
                data = {"reason": response.reason_phrase, "message": response.text.strip()}
            raise ApiStatusError(response.status_code, data)
        return data

    @contextmanager
    def stream(
        self, path: str, *, params: dict[str, Any] | None = None, accept: str = "application/json"
    ) -> Iterator[Iterator[str]]:
        """Yield the lines of a streamed answer (watch events, log lines)."""
        try:
            with self.http.stream("GET", path, params=params, headers={"Accept": accept}, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    self._decode(response)
                yield response.iter_lines()
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc

    # --- convenience ---------------------------------------------------------------

    def get(self, resource: Resource, namespace: str | None, name: str, sub: str | None = None) -> dict[str, Any]:
        return self.request("GET", self.path(resource, namespace, name, sub))  # type: ignore[no-any-return]

    def list(
        self, resource: Resource, namespace: str | None, *, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        body = self.request("GET", self.path(resource, namespace), params=params)
        return list(body.get("items") or [])


__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "ApiStatusError",
    "CliError",
    "Client",
    "Config",
    "by_manifest",
    "display_name",
    "kubeconfig_path",
    "load_config",
    "qualified_plural",
    "resolve",
]
