"""Credentials: the in-cluster service account, else the kubeconfig, obtained once and
shared by kopf (its login handler) and the operator's own API clients."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kopf

_connection: kopf.ConnectionInfo | None = None


def connection_info(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """Credentials from the in-cluster service account, else from the kubeconfig."""
    global _connection
    if _connection is None:
        info = None
        if (
            os.environ.get("KUBERNETES_SERVICE_HOST")
            and Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()
        ):
            info = kopf.login_with_service_account(settings=settings)
        if info is None:
            info = kopf.login_with_kubeconfig(settings=settings)
        if info is None:
            raise kopf.LoginError("no in-cluster service account and no kubeconfig found")
        _connection = info
    return _connection


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    return connection_info(settings)
