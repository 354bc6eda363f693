"""The `buildwright` command: run the operator (against a cluster or a local control plane)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import yaml

LOCAL_KUBECONFIG = Path(".local/kubeconfig")


def _has_cluster_credentials() -> bool:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return True
    configured = os.environ.get("KUBECONFIG")
    if configured:
        return any(Path(p).exists() for p in configured.split(os.pathsep) if p)
    return (Path.home() / ".kube" / "config").exists()


STRATEGIES_DIR = Path(__file__).resolve().parents[2] / "strategies"


def _start_local_cluster() -> None:
    """No cluster given: start (or reuse) the local control plane, point at it, and install
    the CRDs (current models, webhook addressed by loopback URL) and the strategies."""
    from buildwright.api import crdgen
    from buildwright.localcluster import __main__ as localcluster

    code = localcluster.main(["up", "--kubeconfig", str(LOCAL_KUBECONFIG)])
    if code != 0:
        raise SystemExit(code)
    os.environ["KUBECONFIG"] = str(LOCAL_KUBECONFIG.resolve())
    port = os.environ.get("BUILDWRIGHT_WEBHOOK_PORT") or "8443"  # the apiserver dials loopback
    url = os.environ.setdefault("BUILDWRIGHT_WEBHOOK_URL", f"https://127.0.0.1:{port}/convert")
    apply = ["kubectl", "apply", "--server-side", "--force-conflicts"]
    crds = "---\n".join(yaml.safe_dump(crdgen.crd(kind, url)) for kind in crdgen.KINDS)
    subprocess.run([*apply, "-f", "-"], input=crds, text=True, check=True)
    names = [f"crd/{kind['plural']}.{crdgen.GROUP}" for kind in crdgen.KINDS]
    subprocess.run(
        ["kubectl", "wait", "--for=condition=Established", "--timeout=60s", *names], check=True
    )
    if STRATEGIES_DIR.is_dir():  # a source checkout; an installed wheel has no strategies/
        subprocess.run([*apply, "-k", str(STRATEGIES_DIR)], check=True)


def run(args: argparse.Namespace) -> int:
    import kopf

    from buildwright import main as operator_main

    if args.local or not _has_cluster_credentials():
        _start_local_cluster()
    operator_main.load_handlers()
    namespaces = args.namespace or []
    operator_main.NAMESPACES = tuple(namespaces)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if not args.verbose:
        # kopf reports every on.event handler run ("Handler … succeeded"): our own log lines
        # tell the story; keep kopf's warnings and errors.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,
            liveness_endpoint=args.liveness,
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="buildwright", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the operator in the foreground")
    run_parser.add_argument(
        "--namespace", action="append", help="watch only this namespace (repeatable)"
    )
    run_parser.add_argument(
        "--local",
        action="store_true",
        help="start the local control plane and run against it (default without a kubeconfig)",
    )
    run_parser.add_argument(
        "--liveness", default=None, help="serve kopf's probes, e.g. http://0.0.0.0:8080/healthz"
    )
    run_parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
