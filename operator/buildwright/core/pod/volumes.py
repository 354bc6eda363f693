"""The build Pod's own volumes (source, home, results, the entrypoint's), their mounts, the
names of Secret volumes, and the Secrets and ConfigMaps a rendered Pod needs to exist."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from buildwright.core.contract import (
    DOCKER_CONFIG_DIR,
    HOME_DIR,
    RESULTS_DIR,
)
from buildwright.core.pod.containers import RenderContext
from buildwright.core.resolve import (
    SOURCE_ROOT,
)

VOLUME_SOURCE = "shp-source"
VOLUME_HOME = "shp-home"
VOLUME_RESULTS = "shp-results"
VOLUME_OUTPUT_DIRECTORY = "shp-output-directory"
VOLUME_DOCKER_CONFIG = "shp-docker-config"
VOLUME_TRIVY_CACHE = "shp-trivy-cache-data"
VOLUME_LOCAL_TMP = "shp-local-tmp"
VOLUME_ENTRYPOINT = "tekton-internal-bin"
VOLUME_RUN = "tekton-internal-run"


def secret_volume_name(secret_name: str) -> str:
    """Shipwright's volume name for a mounted Secret: `shp-<name>` with every run of
    characters outside [A-Za-z0-9-] turned into one `-`, cut to 63, one trailing `-` off."""
    name = "shp-" + re.sub(r"[^A-Za-z0-9-]+", "-", secret_name)
    name = name[:63]
    return name[:-1] if name.endswith("-") else name


def volume_mount(name: str, path: str, read_only: bool = False) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": name, "mountPath": path}
    if read_only:
        mount["readOnly"] = True
    return mount


def common_mounts(ctx: RenderContext, *, docker_config: bool) -> list[dict[str, Any]]:
    """Mounts every step gets; parents before the directories mounted inside them."""
    mounts = [volume_mount(VOLUME_SOURCE, SOURCE_ROOT), volume_mount(VOLUME_HOME, HOME_DIR)]
    if docker_config and ctx.docker_config:
        mounts.append(volume_mount(VOLUME_DOCKER_CONFIG, DOCKER_CONFIG_DIR, read_only=True))
    mounts.append(volume_mount(VOLUME_RESULTS, RESULTS_DIR))
    return mounts


def unique_volume_name(wanted: str, taken: set[str], secret_name: str) -> str:
    """The secret's volume name, or a hashed variant when it would clash with another."""
    if wanted not in taken:
        return wanted
    digest = hashlib.sha256(secret_name.encode()).hexdigest()[:8]
    return f"{wanted[:54].rstrip('-')}-{digest}"


def required_volume_objects(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """The Secrets and ConfigMaps a rendered Pod mounts without `optional: true`, as
    ("secrets" | "configmaps", name) in volume order: the shell checks they exist before it
    creates the Pod (VolumeDoesNotExist) rather than leave it stuck."""
    wanted: list[tuple[str, str]] = []

    def add(kind: str, source: dict[str, Any], name_key: str) -> None:
        name = source.get(name_key, "")
        if not source.get("optional", False) and (kind, name) not in wanted:
            wanted.append((kind, name))

    for volume in manifest.get("spec", {}).get("volumes", []):
        if "secret" in volume:
            add("secrets", volume["secret"], "secretName")
        if "configMap" in volume:
            add("configmaps", volume["configMap"], "name")
        for source in (volume.get("projected") or {}).get("sources", []):
            if "secret" in source:
                add("secrets", source["secret"], "name")
            if "configMap" in source:
                add("configmaps", source["configMap"], "name")
    return wanted
