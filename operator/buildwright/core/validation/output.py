"""The output image settings: the timestamp (Zero, SourceTimestamp, BuildTimestamp or epoch
seconds) and the build platforms (os/arch, not contradicting the nodeSelector). An explicitly
empty timestamp passes here, as upstream's does, and fails when the Pod is rendered."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from buildwright.api.v1beta1 import (
    BuildSpec,
    ImagePlatform,
)
from buildwright.core.formats import go_quote
from buildwright.core.reasons import Failure, Reason
from buildwright.core.validation.common import last_failure

LABEL_OS = "kubernetes.io/os"


LABEL_ARCH = "kubernetes.io/arch"


def is_int64(text: str) -> bool:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return False
    return -(2**63) <= int(text) < 2**63


_PLATFORM_VALUE = re.compile(r"[a-z0-9]{1,64}")


def validate_platforms(
    platforms: Sequence[ImagePlatform] | None, node_selector: Mapping[str, str] | None
) -> Failure | None:
    """Multi-arch preflight for a non-empty platform list (first failure).

    Rules (upstream main): os and arch both set; each `[a-z0-9]{1,64}` (the form Nodes carry
    in their kubernetes.io/os and kubernetes.io/arch labels); no os/arch pair twice; and the
    nodeSelector must not pin kubernetes.io/os or kubernetes.io/arch itself, since the
    controller schedules per platform. An empty or absent list means "no multi-arch".
    """
    if not platforms:
        return None
    seen: set[str] = set()
    for index, platform in enumerate(platforms):
        where = f"spec.output.platforms[{index}]"
        if not platform.os or not platform.arch:
            return Failure(Reason.INVALID_PLATFORM, f"{where} must specify both os and arch")
        for field, value, label in (
            ("os", platform.os, LABEL_OS),
            ("arch", platform.arch, LABEL_ARCH),
        ):
            if not _PLATFORM_VALUE.fullmatch(value):
                return Failure(
                    Reason.INVALID_PLATFORM,
                    f"{where}.{field} {go_quote(value)}: invalid; use the value your Nodes have"
                    f" for label {go_quote(label)}",
                )
        key = f"{platform.os}/{platform.arch}"
        if key in seen:
            return Failure(Reason.INVALID_PLATFORM, f"{where} is a duplicate of {key}")
        seen.add(key)
    for label in (LABEL_OS, LABEL_ARCH):
        if label in (node_selector or {}):
            return Failure(
                Reason.NODE_SELECTOR_PLATFORM_CONFLICT,
                f"nodeSelector must not contain {go_quote(label)} when spec.output.platforms"
                " is set; the build controller manages os/arch scheduling",
            )
    return None


def validate_output(spec: BuildSpec) -> Failure | None:
    """#6 output: timestamp value, then platforms (a platform failure overwrites)."""
    timestamp_failure: Failure | None = None
    timestamp = spec.output.timestamp
    source = spec.source
    empty_source = source is None or (
        source.git is None and source.oci_artifact is None and source.local is None
    )
    if timestamp in (None, "", "Zero", "BuildTimestamp"):
        pass
    elif timestamp == "SourceTimestamp":
        if empty_source:
            timestamp_failure = Failure(
                Reason.OUTPUT_TIMESTAMP_NOT_SUPPORTED,
                "cannot use SourceTimestamp output image setting with an empty build source",
            )
    elif not is_int64(timestamp):
        timestamp_failure = Failure(
            Reason.OUTPUT_TIMESTAMP_NOT_VALID,
            "output timestamp value is invalid, must be Zero, SourceTimestamp, BuildTimestamp,"
            " or number",
        )
    platforms = validate_platforms(spec.output.platforms, spec.node_selector)
    return last_failure([timestamp_failure, platforms])
