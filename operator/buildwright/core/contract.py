"""The contract between the build Pod and the code that reads it back.

The Pod renderer (`core.pod`), the status reader (`core.status`), the programs that run in
the Pod (`buildwright.steps`) and the kubelet stand-in all depend on the same names: the
containers, the paths strategies and steps write to, the labels, the result keys, and the
format of the termination message that carries results out of the Pod. They are defined here,
once; nothing here imports anything but the standard library, so the steps can use it too.

The termination message is a JSON array in Tekton's format,
``[{"key": name, "value": value, "type": 1}, ...]``. Our own steps write it themselves
(`render_termination_message`); for strategy steps Tekton's entrypoint folds the result files
into it, adding entries of its own with type 3 (``StartedAt``, ``Reason: Skipped``), which are
not results. Kubernetes keeps at most 4096 bytes of a termination message and a message cut
in the middle is no longer JSON, so `render_termination_message` decides what to leave out
instead of letting the kubelet cut blindly, and leaves room for the entrypoint's entries: the
entrypoint fails the step when the message it appends to would pass 4096 bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

# --- containers ---------------------------------------------------------------------------
STEP_PREFIX = "step-"
SOURCE_STEP = "source-default"
LOCAL_SOURCE_STEP = "source-local"
IMAGE_PROCESSING_STEP = "image-processing"
IMAGE_PROCESSING_CONTAINER = STEP_PREFIX + IMAGE_PROCESSING_STEP
RESULTS_CONTAINER = "step-results"
PREPARE_CONTAINER = "prepare"
"""The init container that copies the entrypoint into the Pod."""
STEP_COMMAND = "buildwright-step"
"""The command of our own in-Pod programs (`buildwright.steps`)."""

# --- paths --------------------------------------------------------------------------------
HOME_DIR = "/tekton/home"
RESULTS_DIR = "/tekton/results"
DOCKER_CONFIG_DIR = f"{HOME_DIR}/.docker"
SOURCE_SECRET_PATH = "/workspace/shp-source-secret"
PULL_SECRET_PATH = "/workspace/shp-pull-secret"
PUSH_SECRET_PATH = "/workspace/shp-push-secret"
TRIVY_CACHE_DIR = "/trivy-cache-data"
LOCAL_TMP_DIR = "/shp-tmp"
TERMINATION_PATH = "/tekton/termination"
"""Every step's terminationMessagePath: the entrypoint (this is its default) and our own steps
write results here."""
ENTRYPOINT_IN_STEP_IMAGE = "/usr/local/bin/tekton-entrypoint"
"""Where the step image (the operator's image) carries Tekton's entrypoint binary."""
ENTRYPOINT_DIR = "/tekton/bin"
ENTRYPOINT = f"{ENTRYPOINT_DIR}/entrypoint"
RUN_DIR = "/tekton/run"
"""Per step `<index>/out` (or `out.err`) marks its end for the next step."""

# --- results ------------------------------------------------------------------------------
RESULT_IMAGE_DIGEST = "shp-image-digest"
RESULT_IMAGE_SIZE = "shp-image-size"
RESULT_IMAGE_VULNERABILITIES = "shp-image-vulnerabilities"
RESULT_ERROR_REASON = "shp-error-reason"
RESULT_ERROR_MESSAGE = "shp-error-message"
RESULT_COMMIT_SHA = "shp-source-default-commit-sha"
RESULT_COMMIT_AUTHOR = "shp-source-default-commit-author"
RESULT_BRANCH_NAME = "shp-source-default-branch-name"
RESULT_SOURCE_IMAGE_DIGEST = "shp-source-default-image-digest"
RESULT_SOURCE_TIMESTAMP = "shp-source-default-source-timestamp"
ERROR_RESULTS = (RESULT_ERROR_REASON, RESULT_ERROR_MESSAGE)
"""Result files the entrypoint folds into the termination message of a step that does not
write its own (the strategy's steps, image processing): a failed step's cause."""
VULNERABILITIES_EXIT_CODE = 22
"""The image-processing step's exit code when the scan found vulnerabilities it must fail on."""

# --- labels -------------------------------------------------------------------------------
LABEL_BUILDRUN_NAME = "buildrun.shipwright.io/name"
LABEL_BUILDRUN_GENERATION = "buildrun.shipwright.io/generation"
LABEL_BUILD_NAME = "build.shipwright.io/name"
LABEL_BUILD_GENERATION = "build.shipwright.io/generation"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "buildwright"

# --- the termination message --------------------------------------------------------------
KUBERNETES_TERMINATION_MESSAGE_LIMIT = 4096
"""Bytes of a container termination message that Kubernetes keeps."""

ENTRYPOINT_RESERVE = 256
"""Bytes left for the entries the entrypoint appends (its ``StartedAt`` entry is ~70)."""

TERMINATION_MESSAGE_LIMIT = KUBERNETES_TERMINATION_MESSAGE_LIMIT - ENTRYPOINT_RESERVE
"""Bytes of JSON our steps may write into their termination message."""

RESULT_TYPE = 1
"""Tekton's type for task results (other types are its internal bookkeeping)."""

# Results that must survive a crowded termination message, most important first. Anything
# not listed comes after them (alphabetically), and the two free-text results that can be
# arbitrarily long come last, truncated rather than dropped when there is still room.
PRIORITY: tuple[str, ...] = (
    RESULT_ERROR_REASON,
    RESULT_IMAGE_DIGEST,
    RESULT_IMAGE_SIZE,
    RESULT_COMMIT_SHA,
    RESULT_SOURCE_IMAGE_DIGEST,
    RESULT_SOURCE_TIMESTAMP,
    RESULT_BRANCH_NAME,
    RESULT_COMMIT_AUTHOR,
)
TRUNCATABLE_LAST: tuple[str, ...] = (RESULT_ERROR_MESSAGE, RESULT_IMAGE_VULNERABILITIES)

_ELLIPSIS = "..."


def _encode(results: Mapping[str, str]) -> str:
    entries = [
        {"key": key, "value": results[key], "type": RESULT_TYPE} for key in sorted(results)
    ]
    return json.dumps(entries, separators=(",", ":"), ensure_ascii=False)


def _size(results: Mapping[str, str]) -> int:
    return len(_encode(results).encode("utf-8"))


def _priority_order(keys: list[str]) -> list[str]:
    first = [key for key in PRIORITY if key in keys]
    last = [key for key in TRUNCATABLE_LAST if key in keys]
    middle = sorted(key for key in keys if key not in PRIORITY and key not in TRUNCATABLE_LAST)
    return first + middle + last


def _shorten(key: str, value: str, length: int) -> str:
    """The first ``length`` characters of a value, cut where the value's format allows."""
    if key == RESULT_IMAGE_VULNERABILITIES:
        # `ID:S,ID:S`: only whole entries, so the operator can still parse what is left.
        prefix = value[:length]
        if len(value) > length and value[length] != ",":
            prefix = prefix.rpartition(",")[0]
        return prefix.rstrip(",")
    if length <= len(_ELLIPSIS):
        return ""
    return value[: length - len(_ELLIPSIS)] + _ELLIPSIS


def _longest_fitting(
    chosen: dict[str, str], key: str, value: str, limit: int
) -> str | None:
    """The longest shortened form of ``value`` that keeps the message within ``limit``."""
    low, high, best = 0, len(value) - 1, None
    while low <= high:
        middle = (low + high) // 2
        candidate = _shorten(key, value, middle)
        if _size({**chosen, key: candidate}) <= limit:
            best = candidate
            low = middle + 1
        else:
            high = middle - 1
    return best or None


def select_results(results: Mapping[str, str], limit: int = TERMINATION_MESSAGE_LIMIT) -> dict[
    str, str
]:
    """The results to report when all of them may not fit into ``limit`` bytes of JSON.

    Results are taken in priority order (:data:`PRIORITY`, then others alphabetically, then
    :data:`TRUNCATABLE_LAST`); each one that fits is kept whole, one that does not is dropped
    unless it is in :data:`TRUNCATABLE_LAST`, which is shortened to fit instead.
    """
    if _size(results) <= limit:
        return dict(results)
    chosen: dict[str, str] = {}
    for key in _priority_order(list(results)):
        value = results[key]
        if _size({**chosen, key: value}) <= limit:
            chosen[key] = value
        elif key in TRUNCATABLE_LAST:
            shortened = _longest_fitting(chosen, key, value, limit)
            if shortened is not None:
                chosen[key] = shortened
    return chosen


def render_termination_message(
    results: Mapping[str, str], limit: int = TERMINATION_MESSAGE_LIMIT
) -> str:
    """Tekton-style JSON of ``results`` sorted by key: always valid, at most ``limit`` bytes."""
    return _encode(select_results(results, limit))


def parse_termination_message(text: str) -> dict[str, str]:
    """Results from a termination message; anything that is not such a message gives ``{}``.

    Entries with a non-string key or value are skipped, as are entries whose ``type`` says they
    are not task results; a later duplicate key wins.
    """
    try:
        entries = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}
    if not isinstance(entries, list):
        return {}
    results: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        key, value = entry.get("key"), entry.get("value")
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            continue
        if entry.get("type", RESULT_TYPE) != RESULT_TYPE:
            continue
        results[key] = value
    return results
