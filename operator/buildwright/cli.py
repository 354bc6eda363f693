"""The `buildwright` command: run the operator (against a cluster or a local control plane)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
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
_OFF_VALUES = frozenset({"off", "false", "0", "no", "disabled"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unreachable_webhook_problem(environ: Mapping[str, str]) -> str | None:
    """Why the apiserver could not call this process's conversion webhook, with the fix; None
    when it can (in a cluster behind the Service, or at BUILDWRIGHT_WEBHOOK_URL)."""
    if (environ.get("BUILDWRIGHT_WEBHOOK") or "on").strip().lower() in _OFF_VALUES:
        return None
    if environ.get("KUBERNETES_SERVICE_HOST") or environ.get("BUILDWRIGHT_WEBHOOK_URL"):
        return None
    return (
        "this operator runs outside the cluster, so the apiserver cannot reach its conversion "
        "webhook through the in-cluster Service buildwright-webhook (v1alpha1 reads would "
        "fail). Either set BUILDWRIGHT_WEBHOOK_URL=https://<address the apiserver can reach>:"
        "<BUILDWRIGHT_WEBHOOK_PORT, default 8443>/convert, or BUILDWRIGHT_WEBHOOK=off to run "
        "without v1alpha1 conversion, or install the operator in the cluster (deploy/), or "
        "use `buildwright run --local` for a local control plane."
    )


def _start_local_cluster(environ: Mapping[str, str]) -> dict[str, str]:
    """No cluster given: start (or reuse) the local control plane, point at it, and install
    the CRDs (current models, webhook addressed by loopback URL) and the strategies. Returns
    the settings this implies (webhook port and URL, the namespace of the Lease)."""
    from buildwright.api import crdgen

    try:
        from buildwright_localcluster import __main__ as localcluster
    except ImportError:
        raise SystemExit(
            "the local control plane is a separate distribution: install it with "
            "`pip install -e localcluster/` from a checkout (`make venv` does), or give the "
            "operator a cluster through KUBECONFIG"
        ) from None

    code = localcluster.main(["up", "--kubeconfig", str(LOCAL_KUBECONFIG)])
    if code != 0:
        raise SystemExit(code)
    # The process's credentials, for kopf's login and the kubectl calls below alike.
    os.environ["KUBECONFIG"] = str(LOCAL_KUBECONFIG.resolve())
    # The apiserver dials loopback. A free port unless one is given, so that two operators on
    # one machine (two checkouts, a test run next to `make run`) do not collide on 8443.
    port = environ.get("BUILDWRIGHT_WEBHOOK_PORT") or str(_free_port())
    url = environ.get("BUILDWRIGHT_WEBHOOK_URL") or f"https://127.0.0.1:{port}/convert"
    implied = {"BUILDWRIGHT_WEBHOOK_PORT": port, "BUILDWRIGHT_WEBHOOK_URL": url}
    # The leader Lease and the webhook certificate Secret need a namespace that exists there.
    implied["BUILDWRIGHT_NAMESPACE"] = environ.get("BUILDWRIGHT_NAMESPACE") or "default"
    apply = ["kubectl", "apply", "--server-side", "--force-conflicts"]
    crds = "---\n".join(yaml.safe_dump(crdgen.crd(kind, url)) for kind in crdgen.KINDS)
    subprocess.run([*apply, "-f", "-"], input=crds, text=True, check=True)
    names = [f"crd/{kind['plural']}.{crdgen.GROUP}" for kind in crdgen.KINDS]
    subprocess.run(
        ["kubectl", "wait", "--for=condition=Established", "--timeout=60s", *names], check=True
    )
    if STRATEGIES_DIR.is_dir():  # a source checkout; an installed wheel has no strategies/
        subprocess.run([*apply, "-k", str(STRATEGIES_DIR)], check=True)
    return implied


def run(args: argparse.Namespace) -> int:
    import kopf
    import uvloop

    from buildwright import logs
    from buildwright import main as operator_main
    from buildwright.config import Settings

    logs.configure(logging.DEBUG if args.verbose else logging.INFO)
    environ: dict[str, str] = {**os.environ, **_settings_from_flags(args)}
    if args.local or not _has_cluster_credentials():
        environ.update(_start_local_cluster(environ))
    namespaces = args.namespace or []
    problem = unreachable_webhook_problem(environ)
    try:
        settings = Settings.from_env(environ, namespaces=tuple(namespaces))
    except ValueError as error:
        problem = problem or str(error)
    if problem is not None:
        logging.getLogger("buildwright").error("%s", problem)
        return 2
    operator_main.load_handlers()
    if not args.verbose:
        # kopf reports every on.event handler run ("Handler … succeeded"): our own log lines
        # tell the story; keep kopf's warnings and errors.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # uvloop: the event loop, its sockets and TLS in C (kopf's own `kopf run` uses it too).
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(
            kopf.operator(
                clusterwide=not namespaces,
                namespaces=namespaces,
                standalone=True,
                liveness_endpoint=args.liveness,
                memo=kopf.Memo(settings=settings),
            )
        )
    return 0


def _settings_from_flags(args: argparse.Namespace) -> dict[str, str]:
    """The flags given, as the environment variables they override."""
    flags = {
        "BUILDWRIGHT_LEADER_ELECTION": args.leader_election,
        "BUILD_CONTROLLER_LEASE_DURATION": args.lease_duration,
        "BUILD_CONTROLLER_RENEW_DEADLINE": args.renew_deadline,
        "BUILD_CONTROLLER_RETRY_PERIOD": args.retry_period,
        "BUILDWRIGHT_METRICS_PORT": args.metrics_port,
    }
    return {name: str(value) for name, value in flags.items() if value is not None}


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
    run_parser.add_argument(
        "--leader-election", choices=["on", "off"], default=None,
        help="compete for the leader Lease (default on; off for a single replica)",
    )  # fmt: skip
    run_parser.add_argument("--lease-duration", help="leader Lease duration, e.g. 15s")
    run_parser.add_argument("--renew-deadline", help="leader renew deadline, e.g. 10s")
    run_parser.add_argument("--retry-period", help="leader election retry period, e.g. 2s")
    run_parser.add_argument(
        "--metrics-port", type=int, default=None,
        help="port of /metrics, /healthz and /readyz (default 8383; 0 picks a free one)",
    )  # fmt: skip
    run_parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
