"""The image-processing step: push from `$(params.shp-output-directory)`, labels and
annotations, the output timestamp and the vulnerability scan, with the results it reports."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from buildwright.api.v1beta1 import (
    VulnerabilityScanOptions,
)
from buildwright.core.contract import (
    IMAGE_PROCESSING_STEP,
    PUSH_SECRET_PATH,
    RESULT_IMAGE_DIGEST,
    RESULT_IMAGE_SIZE,
    RESULT_IMAGE_VULNERABILITIES,
    RESULT_SOURCE_TIMESTAMP,
    TRIVY_CACHE_DIR,
)
from buildwright.core.pod.containers import (
    PHASE_OUTPUT,
    GenerationError,
    PodInputs,
    RenderContext,
    shipwright_container,
)
from buildwright.core.pod.source import has_source_timestamp
from buildwright.core.pod.volumes import (
    VOLUME_OUTPUT_DIRECTORY,
    VOLUME_TRIVY_CACHE,
    common_mounts,
    volume_mount,
)
from buildwright.core.resolve import (
    OUTPUT_DIRECTORY,
    kube_escape,
)
from buildwright.core.substitute import (
    result_path,
)

_INTEGER = re.compile(r"[+-]?[0-9]+")


def vulnerability_settings(options: VulnerabilityScanOptions) -> str:
    """The scan settings as compact JSON with unset and false fields left out."""
    settings: dict[str, Any] = {"enabled": True}
    if options.fail_on_finding:
        settings["failOnFinding"] = True
    if options.ignore is not None:
        ignore: dict[str, Any] = {}
        if options.ignore.id:
            ignore["id"] = list(options.ignore.id)
        if options.ignore.severity:
            ignore["severity"] = options.ignore.severity
        if options.ignore.unfixed:
            ignore["unfixed"] = True
        settings["ignore"] = ignore
    return json.dumps(settings, separators=(",", ":"))


def creation_epoch(inputs: PodInputs) -> int:
    if inputs.buildrun_creation_epoch is not None:
        return inputs.buildrun_creation_epoch
    created = inputs.buildrun.metadata.get("creationTimestamp")
    if not isinstance(created, str):
        raise GenerationError(
            f"{PHASE_OUTPUT}cannot use BuildTimestamp setting, because the BuildRun has no "
            "creation timestamp"
        )
    return int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())


def timestamp_args(ctx: RenderContext) -> list[str]:
    timestamp = ctx.spec.output.timestamp
    if timestamp is None:
        return []
    if timestamp == "Zero":
        return ["--image-timestamp", "0"]
    if timestamp == "SourceTimestamp":
        if not has_source_timestamp(ctx.spec):
            raise GenerationError(
                f"{PHASE_OUTPUT}cannot use SourceTimestamp setting, because there is no "
                "source timestamp available for this source"
            )
        return ["--image-timestamp-file", result_path(RESULT_SOURCE_TIMESTAMP)]
    if timestamp == "BuildTimestamp":
        return ["--image-timestamp", str(creation_epoch(ctx.inputs))]
    if _INTEGER.fullmatch(timestamp) is None or not -(2**63) <= int(timestamp) < 2**63:
        raise GenerationError(
            f"{PHASE_OUTPUT}cannot parse output timestamp {timestamp} as a number, must be "
            "Zero, SourceTimestamp, BuildTimestamp, or a an integer"
        )
    return ["--image-timestamp", timestamp]


def image_processing_container(
    ctx: RenderContext, uses_output_directory: bool, push_secret_volume: str | None
) -> dict[str, Any] | None:
    output = ctx.spec.output
    args: list[str] = []
    if uses_output_directory:
        args += ["--push", OUTPUT_DIRECTORY]
    for key, value in sorted((output.annotations or {}).items()):
        args += ["--annotation", kube_escape(f"{key}={value}")]
    for key, value in sorted((output.labels or {}).items()):
        args += ["--label", kube_escape(f"{key}={value}")]
    scan = output.vulnerability_scan
    if scan is not None and scan.enabled:
        args += ["--vuln-settings", kube_escape(vulnerability_settings(scan))]
        if ctx.inputs.vulnerability_count_limit > 0:
            args += ["--vuln-count-limit", str(ctx.inputs.vulnerability_count_limit)]
    args += timestamp_args(ctx)
    if not args:
        return None
    args += [
        "--image",
        kube_escape(output.image),
        f"--insecure={'true' if output.insecure else 'false'}",
        "--result-file-image-digest",
        result_path(RESULT_IMAGE_DIGEST),
        "--result-file-image-size",
        result_path(RESULT_IMAGE_SIZE),
        "--result-file-image-vulnerabilities",
        result_path(RESULT_IMAGE_VULNERABILITIES),
    ]
    mounts = common_mounts(ctx, docker_config=True)
    if uses_output_directory:
        mounts.append(volume_mount(VOLUME_OUTPUT_DIRECTORY, OUTPUT_DIRECTORY, read_only=True))
    if push_secret_volume is not None:
        args += ["--secret-path", PUSH_SECRET_PATH]
        mounts.append(volume_mount(push_secret_volume, PUSH_SECRET_PATH, read_only=True))
    mounts.append(volume_mount(VOLUME_TRIVY_CACHE, TRIVY_CACHE_DIR))
    return shipwright_container(
        ctx,
        IMAGE_PROCESSING_STEP,
        [IMAGE_PROCESSING_STEP, *args],
        mounts,
        env=[{"name": "TRIVY_CACHE_DIR", "value": TRIVY_CACHE_DIR}],
        image_processing=True,
    )
