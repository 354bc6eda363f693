"""The node agent: a kubelet stand-in whose containers really run, as host processes.

`python -m buildwright_localcluster.nodeagent --kubeconfig K` registers a Node, takes the Pods
bound (or bindable) to it and runs their containers with `ProcessExecutor` until SIGTERM or
SIGINT, and serves the kubelet API (logs, exec, attach; see kubeletapi.py) to the apiserver
with the local cluster's kubelet certificates. It must run as root (mount namespaces, bind
mounts) on a host that has the tools the build steps call; see e2e/local/README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from kubernetes import config as k8s_config

from buildwright_localcluster.binaries import ensure_entrypoint
from buildwright_localcluster.kubelet import KubeletStandIn
from buildwright_localcluster.kubeletapi import KubeletTLS
from buildwright_localcluster.process_executor import DEFAULT_STATE_DIR, ProcessExecutor

log = logging.getLogger("buildwright.nodeagent")


def node_agent(
    kubeconfig: str | Path,
    *,
    node_name: str = "buildwright-node",
    state_dir: str | Path = DEFAULT_STATE_DIR,
    venv_bin: str | Path | None = None,
    entrypoint_binary: str | Path | None = None,
    tls: KubeletTLS | None = None,
) -> KubeletStandIn:
    """A started-able stand-in kubelet running Pods with a ProcessExecutor (not yet started).

    The executor's sweeper is started with it; `stop()` on the stand-in closes both.
    """
    api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    if entrypoint_binary is None:
        entrypoint_binary = ensure_entrypoint()
    executor = ProcessExecutor(
        api_client, state_dir=state_dir, venv_bin=venv_bin, entrypoint_binary=entrypoint_binary
    )
    executor.start_sweeper()
    return KubeletStandIn(kubeconfig, node_name=node_name, executor=executor, tls=tls, events=True)


def local_cluster_tls(kubeconfig: Path) -> KubeletTLS | None:
    """The kubelet TLS material of the `make cluster` control plane behind `kubeconfig`."""
    from buildwright_localcluster.__main__ import _read_state, _state_dir

    state = _read_state(_state_dir(kubeconfig))
    if not state or "kubelet_cert" not in state:
        return None
    return KubeletTLS(
        cert_file=Path(state["kubelet_cert"]),
        key_file=Path(state["kubelet_key"]),
        client_ca_file=Path(state["kubelet_client_ca"]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m buildwright_localcluster.nodeagent", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--node-name", default="buildwright-node")
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR,
        help="per-Pod volumes, logs and termination messages live in STATE_DIR/pods/<uid>",
    )  # fmt: skip
    parser.add_argument(
        "--venv-bin", type=Path, default=None,
        help="directory holding buildwright-step (default: this Python's bin directory)",
    )  # fmt: skip
    parser.add_argument(
        "--entrypoint-binary", type=Path, default=None,
        help="Tekton's entrypoint built for this machine (default: hack/build-entrypoint.sh's)",
    )  # fmt: skip
    parser.add_argument(
        "--tls-cert-file",
        type=Path,
        default=None,
        help="the kubelet API's serving certificate (default: the local cluster's)",
    )
    parser.add_argument("--tls-private-key-file", type=Path, default=None)
    parser.add_argument(
        "--client-ca-file",
        type=Path,
        default=None,
        help="the CA of the apiserver's kubelet client certificate",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if os.geteuid() != 0:
        print("the node agent must run as root (it bind-mounts volumes)", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tls: KubeletTLS | None
    if args.tls_cert_file and args.tls_private_key_file and args.client_ca_file:
        tls = KubeletTLS(args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)
    else:
        tls = local_cluster_tls(args.kubeconfig)
    if tls is None:
        log.warning("no kubelet TLS material: kubectl logs and exec will not reach this node")
    kubelet = node_agent(
        args.kubeconfig, node_name=args.node_name, state_dir=args.state_dir,
        venv_bin=args.venv_bin, entrypoint_binary=args.entrypoint_binary, tls=tls,
    )  # fmt: skip
    kubelet.start()
    port = kubelet.server.port if kubelet.server is not None else None
    log.info("node agent %s running Pods (kubelet API on 127.0.0.1:%s)", args.node_name, port)
    try:
        stop.wait()
    finally:
        kubelet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
