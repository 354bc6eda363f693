"""Result files, as the steps inside the build Pod write and read them.

Steps write each result as a small file under ``/tekton/results/<name>`` (the paths strategies
already expect); ``step-results`` folds them into its termination message. The message's
format and the result names are the Pod's contract with the status reader and live in
`buildwright.core.contract`.
"""

from __future__ import annotations

import argparse
import os

from buildwright.core.contract import (
    RESULT_ERROR_MESSAGE,
    RESULT_ERROR_REASON,
    render_termination_message,
)


def write_result(path: str | None, value: str) -> None:
    """Write one result file (no trailing newline); a missing path means "not requested"."""
    if not path:
        return
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(value)


def write_error_results(
    reason: str,
    message: str,
    *,
    reason_file: str | None,
    message_file: str | None,
    termination_log: str | None,
) -> str | None:
    """The error results as result files and, for an init container whose failure stops the
    Pod, also as its own termination message (JSON, the git step's format). Returns why the
    termination message could not be written, if it could not: the result files still carry
    the reason, so callers only warn."""
    write_result(reason_file, reason)
    write_result(message_file, message)
    if not termination_log:
        return None
    errors = {RESULT_ERROR_REASON: reason, RESULT_ERROR_MESSAGE: message}
    report = render_termination_message(errors)
    try:
        with open(termination_log, "w", encoding="utf-8") as handle:
            handle.write(report)
    except OSError as error:
        return f"cannot write {termination_log}: {error}"
    return None


def parse_bool(value: str) -> bool:
    """A step's boolean flag as Shipwright passes it (`true`, `false`, empty)."""
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "t"):
        return True
    if lowered in ("false", "0", "no", "f", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def bool_argument(value: str) -> bool:
    """`parse_bool` as an argparse type: a bad value is a usage error naming the flag."""
    try:
        return parse_bool(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def strip_result_value(raw: str) -> str:
    """Drop the single trailing newline that ``echo > file`` leaves; keep everything else."""
    if raw.endswith("\r\n"):
        return raw[:-2]
    if raw.endswith("\n"):
        return raw[:-1]
    return raw


