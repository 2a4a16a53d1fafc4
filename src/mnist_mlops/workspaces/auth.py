"""Credentials bound to the MLflow server they belong to, as an MLflow request-auth plugin.

MLflow reads an HTTP server's credentials from process-wide variables
(``MLFLOW_TRACKING_USERNAME``/``PASSWORD``/``TOKEN``), so one process talking to two workspaces
with different users would send one workspace's credentials to the other unless something swaps
those variables around every call (and every thread sees the swap). Instead, each workspace binds
its credentials to its server's origin (scheme, host and port) here, and MLflow's documented
request-auth plugin hook (entry point ``mlflow.request_auth_provider``, selected by
``MLFLOW_TRACKING_AUTH``) asks :class:`OriginAuth` for the header of every request it sends,
tracking, registry and proxied artifacts alike. A request gets the credentials of the server it
goes to, or none: whichever thread, client or fluent call sends it, nothing is swapped.
"""

from __future__ import annotations

import base64
import os
import threading
from urllib.parse import urlsplit

import requests
from mlflow.tracking.request_auth.abstract_request_auth_provider import RequestAuthProvider

PROVIDER_NAME = "mnist-workspaces"
_bindings: dict[str, str] = {}  # origin -> Authorization header
_lock = threading.Lock()  # held for a dict update only, never across a request


def origin(uri: str) -> str | None:
    """``scheme://host:port`` of an HTTP(S) URI (default ports made explicit), else None."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


def authorization(credentials: dict[str, str]) -> str | None:
    """The Authorization header MLflow would build from these ``MLFLOW_TRACKING_*`` values."""
    user = credentials.get("MLFLOW_TRACKING_USERNAME")
    password = credentials.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if token := credentials.get("MLFLOW_TRACKING_TOKEN"):
        return f"Bearer {token}"
    return None


def bind(uri: str, credentials: dict[str, str]) -> None:
    """From now on, requests to ``uri``'s server carry these credentials (and only these).

    Non-HTTP URIs (``sqlite:///``, ``databricks://<profile>``) authenticate their own way and
    are left alone. One server has one set of credentials: binding again replaces it.
    """
    key = origin(uri)
    if key is None:
        return
    # Not a secret, and set once: selects this plugin for every MLflow HTTP request.
    os.environ["MLFLOW_TRACKING_AUTH"] = PROVIDER_NAME
    with _lock:
        # No credentials: "" removes whatever header another workspace's variables made.
        _bindings[key] = authorization(credentials) or ""


class OriginAuth(requests.auth.AuthBase):
    """Sets the Authorization header bound to the request's origin, replacing the one MLflow
    built from the process-wide variables (which may belong to another workspace). Requests to
    a server no workspace is bound to keep MLflow's header."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        key = origin(request.url or "")
        if key not in _bindings:
            return request
        if header := _bindings[key]:
            request.headers["Authorization"] = header
        else:
            request.headers.pop("Authorization", None)
        return request


class OriginAuthProvider(RequestAuthProvider):
    """MLflow's entry point to :class:`OriginAuth` (see ``pyproject.toml``)."""

    def get_name(self) -> str:
        return PROVIDER_NAME

    def get_auth(self) -> OriginAuth:
        return OriginAuth()
