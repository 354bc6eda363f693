"""The waiter step as the build Pod runs it: a real ``start`` process, ended by ``done``, by its
timeout or by SIGTERM. Every wait polls with a deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from buildwright.core.contract import LOCAL_TMP_DIR
from buildwright.steps import waiter
from buildwright.steps.__main__ import main as step_main
from buildwright_localcluster.wait import wait_until

DEADLINE_SECONDS = 20.0


def until(condition: Callable[[], bool], what: str) -> None:
    wait_until(condition, timeout=DEADLINE_SECONDS, interval=0.02, description=what, retry_on=())


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "buildwright.steps", "waiter", "start", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=DEADLINE_SECONDS)
    return process.returncode, stdout, stderr


def test_start_waits_until_done_removes_the_lock_file(tmp_path: Path) -> None:
    lock = tmp_path / "tmp" / "waiter.lock"
    process = start(f"--lock-file={lock}", "--timeout=60s")
    try:
        until(lock.exists, "the lock file")
        assert lock.read_text() == str(process.pid)
        assert process.poll() is None  # still waiting for the upload
        assert step_main(["waiter", "done", f"--lock-file={lock}"]) == 0
        code, stdout, _ = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 0
    assert "the source upload is done" in stdout
    assert not lock.exists()


def test_lock_file_may_come_before_the_subcommand(tmp_path: Path) -> None:
    lock = tmp_path / "waiter.lock"
    process = subprocess.Popen(
        [sys.executable, "-m", "buildwright.steps", "waiter", f"--lock-file={lock}", "start"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        until(lock.exists, "the lock file")
        assert waiter.main([f"--lock-file={lock}", "stop"]) == 0
        code, _, _ = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 0


def test_timeout_fails_with_error_results(tmp_path: Path) -> None:
    lock = tmp_path / "waiter.lock"
    reason, message, termination = (tmp_path / "reason", tmp_path / "message",
                                     tmp_path / "termination-log")
    began = time.monotonic()
    process = start(f"--lock-file={lock}", "--timeout=1500ms",
                    f"--result-file-error-reason={reason}",
                    f"--result-file-error-message={message}",
                    f"--termination-log={termination}")
    code, _, stderr = finish(process)
    assert code == 1
    assert time.monotonic() - began >= 1.5
    assert not lock.exists()
    assert reason.read_text() == "LocalSourceUploadTimeout"
    assert message.read_text().startswith("no local source was uploaded within 1.5s")
    assert "LocalSourceUploadTimeout" in stderr
    reported = {entry["key"]: entry["value"] for entry in json.loads(termination.read_text())}
    assert reported == {"shp-error-reason": reason.read_text(),
                        "shp-error-message": message.read_text()}


def test_sigterm_removes_the_lock_file_and_exits(tmp_path: Path) -> None:
    lock = tmp_path / "waiter.lock"
    reason = tmp_path / "reason"
    process = start(f"--lock-file={lock}", "--timeout=60s", f"--result-file-error-reason={reason}")
    try:
        until(lock.exists, "the lock file")
        process.send_signal(signal.SIGTERM)
        code, stdout, _ = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 128 + signal.SIGTERM
    assert "terminated while waiting" in stdout
    assert not lock.exists()
    assert not reason.exists()  # a cancelled run is nobody's failure


def test_done_without_a_waiter_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert waiter.main(["done", f"--lock-file={tmp_path / 'missing.lock'}"]) == 1
    assert "no waiter is waiting" in capsys.readouterr().err


def test_short_timeouts_fall_back_to_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert waiter.effective_timeout(1.0) == 60.0
    assert waiter.effective_timeout(0.0) == 60.0
    assert "using the default 60s" in capsys.readouterr().out
    assert waiter.effective_timeout(2.5) == 2.5


def test_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    args = waiter.build_parser().parse_args(["start", "--lock-file=/x/l", "--timeout=2m"])
    assert (args.command, args.lock_file, args.timeout) == ("start", "/x/l", 120.0)
    assert waiter.build_parser().parse_args(["start"]).timeout == 60.0
    with pytest.raises(SystemExit):
        waiter.build_parser().parse_args(["start", "--timeout=soon"])
    assert "invalid duration 'soon'" in capsys.readouterr().err


def test_default_lock_file_is_the_one_the_pod_uses() -> None:
    # A CLI that runs a bare `waiter done` must reach the lock file of the Pod's step.
    pod_lock_file = f"{LOCAL_TMP_DIR}/waiter.lock"
    assert pod_lock_file == waiter.DEFAULT_LOCK_FILE
    assert os.path.isabs(waiter.DEFAULT_LOCK_FILE)


def test_a_sigterm_while_the_lock_file_is_written_still_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signal handler raises wherever the waiter is; it was once raised between creating
    the lock file and the cleanup that removes it (seen under load as a left-over lock)."""
    lock = tmp_path / "waiter.lock"
    real_fdopen = waiter.os.fdopen

    def interrupted_write(descriptor: int, *args: Any, **kwargs: Any) -> Any:
        real_fdopen(descriptor, *args, **kwargs).close()
        raise waiter.Terminated

    monkeypatch.setattr(waiter.os, "fdopen", interrupted_write)
    with pytest.raises(waiter.Terminated):
        waiter.wait_for_removal(str(lock), timeout=5)
    assert not lock.exists()
