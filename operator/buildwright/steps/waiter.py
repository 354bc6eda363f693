"""``buildwright-step waiter``: hold the Pod until a local source has been uploaded.

For ``source.type: Local`` the Pod's first step is ``step-source-local`` running
``waiter start``. The ``shp build upload`` CLI streams a tar of the user's directory into that
container (``kubectl exec … tar x``) and then runs ``waiter done``, which removes the lock file;
``start`` sees it gone and exits 0, so the strategy's steps run on the uploaded source.

* ``waiter start --lock-file=PATH [--timeout=DURATION]`` writes its PID into the lock file and
  polls (every 100 ms: one ``stat``) until the file is gone. After the timeout (Go duration
  syntax, default 60s; like Shipwright's waiter, a timeout of 1s or less is replaced by the
  default) it removes the lock file, reports ``LocalSourceUploadTimeout`` through the error
  results if they were asked for, and exits 1. SIGTERM (the Pod is being deleted or the
  BuildRun cancelled) removes the lock file and exits 143 without error results: nobody failed.
* ``waiter done [--lock-file=PATH]`` (alias ``stop``) removes the lock file; it exits 1 when
  there is none, because then no waiter was waiting and the upload went nowhere.

Without ``--lock-file`` both use the path the build Pod uses, so a CLI that runs a bare
``waiter done`` reaches the waiting step.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType

from buildwright.core.formats import format_go_duration, parse_duration
from buildwright.steps.resultfiles import write_error_results

# The lock file the build Pod names (core.pod's LOCAL_TMP_DIR; a test keeps them equal). Not
# imported from there: that module pulls in the API models, a fifth of a second per start.
DEFAULT_LOCK_FILE = "/shp-tmp/waiter.lock"
DEFAULT_TIMEOUT = "60s"
MINIMUM_TIMEOUT_SECONDS = 1.0
POLL_INTERVAL_SECONDS = 0.1

REASON_TIMEOUT = "LocalSourceUploadTimeout"

EXIT_TIMEOUT = 1
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(Exception):
    """SIGTERM arrived while waiting."""


def log(message: str) -> None:
    print(f"waiter: {message}", flush=True)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r} (use Go syntax such as 90s, 5m or 1h30m)"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="buildwright-step waiter",
        description="Wait until 'waiter done' removes the lock file, or time out.",
    )
    # Accepted before the subcommand too, as Shipwright's waiter takes them; the subcommands'
    # copies suppress their defaults so they do not overwrite a value given up front.
    parser.add_argument("--lock-file", default=DEFAULT_LOCK_FILE,
                        help=f"the lock file (default {DEFAULT_LOCK_FILE})")
    parser.add_argument("--timeout", type=_duration, default=parse_duration(DEFAULT_TIMEOUT),
                        help=f"how long 'start' waits (Go duration, default {DEFAULT_TIMEOUT})")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lock-file", default=argparse.SUPPRESS,
                        help=f"the lock file (default {DEFAULT_LOCK_FILE})")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="{start,done}")
    start = subcommands.add_parser("start", parents=[common],
                                   help="create the lock file and wait until it is removed")
    start.add_argument("--timeout", type=_duration, default=argparse.SUPPRESS,
                       help=f"how long to wait (Go duration, default {DEFAULT_TIMEOUT})")
    start.add_argument("--result-file-error-reason", metavar="FILE")
    start.add_argument("--result-file-error-message", metavar="FILE")
    start.add_argument("--termination-log", metavar="FILE",
                       help="on timeout, also write the error results here as JSON")
    subcommands.add_parser("done", aliases=["stop"], parents=[common],
                           help="remove the lock file, ending the wait")
    return parser


def effective_timeout(seconds: float) -> float:
    """Shipwright's waiter treats a timeout of 1s or less as a mistake and uses the default."""
    if seconds <= MINIMUM_TIMEOUT_SECONDS:
        log(f"the timeout {format_go_duration(seconds)} is not above 1s; using the default "
            f"{DEFAULT_TIMEOUT}")
        return parse_duration(DEFAULT_TIMEOUT)
    return seconds


def _remove_lock(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def wait_for_removal(lock_file: str, timeout: float) -> bool:
    """Create ``lock_file`` and poll until it disappears (True) or ``timeout`` passes (False).

    The lock file is removed on every way out, so a restarted container starts afresh.
    """
    directory = os.path.dirname(lock_file)
    if directory:
        os.makedirs(directory, exist_ok=True)
    deadline = time.monotonic() + timeout
    # Inside the try: a SIGTERM that arrives while the file is being written still removes it.
    try:
        descriptor = os.open(lock_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(str(os.getpid()))
        while os.path.lexists(lock_file):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(POLL_INTERVAL_SECONDS, remaining))
        return True
    finally:
        _remove_lock(lock_file)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def start(args: argparse.Namespace) -> int:
    timeout = effective_timeout(args.timeout)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    log(f"waiting up to {format_go_duration(timeout)} for the source upload; "
        f"lock file {args.lock_file}")
    try:
        done = wait_for_removal(args.lock_file, timeout)
    except Terminated:
        log("terminated while waiting for the source upload")
        return EXIT_TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)
    if done:
        log("the source upload is done")
        return 0
    reason = REASON_TIMEOUT
    message = (f"no local source was uploaded within {format_go_duration(timeout)}: upload it "
               "with 'shp build upload', or raise the source's local.timeout")
    problem = write_error_results(
        reason, message, reason_file=args.result_file_error_reason,
        message_file=args.result_file_error_message, termination_log=args.termination_log,
    )  # fmt: skip
    if problem:
        print(f"waiter: warning: {problem}", file=sys.stderr, flush=True)
    print(f"error: {reason}: {message}", file=sys.stderr, flush=True)
    return EXIT_TIMEOUT


def done(args: argparse.Namespace) -> int:
    try:
        with open(args.lock_file, encoding="utf-8") as handle:
            holder = handle.read().strip()
        os.unlink(args.lock_file)
    except FileNotFoundError:
        print(f"waiter: error: no waiter is waiting: the lock file {args.lock_file} does not "
              "exist", file=sys.stderr, flush=True)
        return 1
    log(f"removed the lock file {args.lock_file}" + (f" (waiter PID {holder})" if holder else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return start(args) if args.command == "start" else done(args)
    except OSError as error:
        print(f"waiter: error: {error}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
