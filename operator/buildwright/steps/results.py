"""``buildwright-step results``: report the build's result files through the termination message.

Runs as the Pod's last container, ``step-results``. Every regular file in the results
directory becomes one ``{"key": <file name>, "value": <content>, "type": 1}`` entry of the
termination log, the same shape Tekton gives its steps' termination messages, so the operator
can read digest, size, commit and error details from the Pod status alone.

It always exits 0: a failed build has already failed in an earlier container, and a results
container that fails as well would only hide which step it was.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from buildwright.core.contract import (
    TERMINATION_MESSAGE_LIMIT,
    render_termination_message,
    select_results,
)
from buildwright.steps.resultfiles import strip_result_value

DEFAULT_RESULTS_DIR = "/tekton/results"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"


def read_results(results_dir: str) -> dict[str, str]:
    """Result name → value for every regular file in ``results_dir`` (missing dir ⇒ ``{}``)."""
    results: dict[str, str] = {}
    try:
        entries = sorted(os.scandir(results_dir), key=lambda entry: entry.name)
    except FileNotFoundError:
        return results
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_file():
            continue
        try:
            with open(entry.path, "rb") as handle:
                raw = handle.read()
        except OSError as error:
            print(f"results: cannot read {entry.name}: {error.strerror}", file=sys.stderr)
            continue
        results[entry.name] = strip_result_value(raw.decode("utf-8", errors="replace"))
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="buildwright-step results",
        description="Write the result files as JSON into the container termination log.",
    )
    parser.add_argument("--results-dir", default=DEFAULT_RESULTS_DIR)
    parser.add_argument("--termination-log", default=DEFAULT_TERMINATION_LOG)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results = read_results(args.results_dir)
    kept = select_results(results, TERMINATION_MESSAGE_LIMIT)
    message = render_termination_message(kept, TERMINATION_MESSAGE_LIMIT)
    for key in sorted(results):
        if key not in kept:
            print(f"results: {key} left out, the termination message is limited to "
                  f"{TERMINATION_MESSAGE_LIMIT} bytes")
        elif kept[key] != results[key]:
            print(f"results: {key} shortened to fit the termination message")
    try:
        with open(args.termination_log, "w", encoding="utf-8") as handle:
            handle.write(message)
    except OSError as error:
        print(f"results: cannot write {args.termination_log}: {error.strerror}", file=sys.stderr)
        return 0
    print(f"results: reported {len(kept)} result(s): {', '.join(sorted(kept)) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
