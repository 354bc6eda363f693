"""Polling with a deadline: the only way tests and the local cluster wait for something."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.05,
    description: str = "condition",
    retry_on: tuple[type[Exception], ...] = (Exception,),
) -> T:
    """Call `predicate` until it returns a truthy value and return that value.

    Raises TimeoutError naming `description` (and the last exception the predicate raised,
    if any) when `timeout` seconds pass first. Exceptions from the predicate count as "not
    yet" when they are instances of `retry_on` (an API object that does not exist yet is the
    usual reason to poll); narrow it to let programming errors surface at once.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    last_value: object = None
    while True:
        try:
            value = predicate()
        except Exception as exc:
            last_error = exc
        else:
            if value:
                return value
            last_error = None
            last_value = value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            detail = (
                f"; last error: {type(last_error).__name__}: {last_error}"
                if last_error is not None
                else f"; last value: {last_value!r}"
            )
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {description}{detail}")
        time.sleep(min(interval, remaining))


async def async_wait_until(
    predicate: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.01,
    description: str = "condition",
) -> T:
    """`wait_until` for code on an event loop: the loop keeps running between the checks."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {description}")
        await asyncio.sleep(min(interval, remaining))
