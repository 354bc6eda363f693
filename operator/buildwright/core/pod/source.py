"""The source step: `step-source-default` clones Git or pulls an OCI artifact,
`step-source-local` waits for `shp build upload`; its results are the commit, author, branch,
image digest and source timestamp."""

from __future__ import annotations

from typing import Any

from buildwright.api.v1beta1 import (
    BuildSpec,
)
from buildwright.core.contract import (
    LOCAL_SOURCE_STEP,
    LOCAL_TMP_DIR,
    PULL_SECRET_PATH,
    RESULT_BRANCH_NAME,
    RESULT_COMMIT_AUTHOR,
    RESULT_COMMIT_SHA,
    RESULT_SOURCE_IMAGE_DIGEST,
    RESULT_SOURCE_TIMESTAMP,
    SOURCE_SECRET_PATH,
    SOURCE_STEP,
)
from buildwright.core.pod.containers import RenderContext, error_result_args, shipwright_container
from buildwright.core.pod.volumes import VOLUME_LOCAL_TMP, common_mounts, volume_mount
from buildwright.core.resolve import (
    SOURCE_ROOT,
    kube_escape,
)
from buildwright.core.substitute import (
    result_path,
)
from buildwright.core.validation import (
    source_secret,
)

DEFAULT_LOCAL_SOURCE_TIMEOUT = "60s"


def source_container(ctx: RenderContext, secret_volumes: dict[str, str]) -> dict[str, Any] | None:
    source = ctx.spec.source
    if source is None:
        return None
    mounts = common_mounts(ctx, docker_config=False)
    if source.type == "Local":
        timeout = (source.local.timeout if source.local else None) or DEFAULT_LOCAL_SOURCE_TIMEOUT
        args = [
            "waiter",
            "start",
            f"--lock-file={LOCAL_TMP_DIR}/waiter.lock",
            f"--timeout={kube_escape(timeout)}",
            *error_result_args(),
        ]
        mounts.append(volume_mount(VOLUME_LOCAL_TMP, LOCAL_TMP_DIR))
        return shipwright_container(ctx, LOCAL_SOURCE_STEP, args, mounts)
    if source.type == "OCI" and source.oci_artifact is not None:
        oci = source.oci_artifact
        args = [
            "bundle",
            "--image",
            kube_escape(oci.image),
            "--target",
            SOURCE_ROOT,
            "--result-file-image-digest",
            result_path(RESULT_SOURCE_IMAGE_DIGEST),
            "--result-file-source-timestamp",
            result_path(RESULT_SOURCE_TIMESTAMP),
            *error_result_args(),
        ]
        if oci.pull_secret:
            args += ["--secret-path", PULL_SECRET_PATH]
            mounts.append(volume_mount(secret_volumes[oci.pull_secret], PULL_SECRET_PATH, True))
        if oci.prune == "AfterPull":
            args.append("--prune")
        return shipwright_container(ctx, SOURCE_STEP, args, mounts)
    if source.type == "Git" and source.git is not None:
        git = source.git
        args = [
            "git-source",
            "--url",
            kube_escape(git.url),
            "--target",
            SOURCE_ROOT,
            "--result-file-commit-sha",
            result_path(RESULT_COMMIT_SHA),
            "--result-file-commit-author",
            result_path(RESULT_COMMIT_AUTHOR),
            "--result-file-branch-name",
            result_path(RESULT_BRANCH_NAME),
            "--result-file-source-timestamp",
            result_path(RESULT_SOURCE_TIMESTAMP),
            *error_result_args(),
        ]
        if git.revision:
            args += ["--revision", kube_escape(git.revision)]
        if git.depth is not None and git.depth >= 0:
            args += ["--depth", str(git.depth)]
        if ctx.inputs.git_url_rewrite:
            args.append("--git-url-rewrite")
        if git.clone_secret:
            args += ["--secret-path", SOURCE_SECRET_PATH]
            mounts.append(volume_mount(secret_volumes[git.clone_secret], SOURCE_SECRET_PATH, True))
        return shipwright_container(ctx, SOURCE_STEP, args, mounts)
    # A source whose type names no matching field (validated away upstream): nothing to fetch.
    return None


def source_secret_of(spec: BuildSpec) -> str | None:
    return source_secret(spec) or None


def has_source_timestamp(spec: BuildSpec) -> bool:
    source = spec.source
    return source is not None and (
        (source.type == "Git" and source.git is not None)
        or (source.type == "OCI" and source.oci_artifact is not None)
    )
