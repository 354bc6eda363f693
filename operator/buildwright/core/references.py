"""Names of other objects that users write into Builds and BuildRuns, checked before use.

A Build or BuildRun names other objects: its strategy, its Build, Secrets, ConfigMaps, a
ServiceAccount, the sources of volumes. Those names go into API paths (the operator looks the
objects up) or into the build Pod (the kubelet does). The CRDs accept any string there, so a
name such as `../../victim/buildstrategies/vstrat` would, joined into a path, address an
object of another namespace. Every such name is checked here against the rule Kubernetes
applies to names of that kind; a name that breaks it cannot belong to any object, so:

- a name the operator would look up is treated as "not found", without a request, and ends
  in the reason the missing object gets (BuildStrategyNotFound, SpecOutputSecretRefNotFound,
  ServiceAccountNotFound, BuildNotFound, VolumeDoesNotExist), with the API's own wording;
- a name only the build Pod would use (`env[].valueFrom`, `paramValues[].secretValue`,
  volume sources) ends in `ReferenceNameInvalid`, naming the field and what is wrong with it,
  instead of a Pod the apiserver refuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from buildwright.api.base import EnvVar, Volume
from buildwright.api.v1beta1 import BuildRunSpec, BuildSpec, ParamValue
from buildwright.core.labels import dns1123_subdomain_errors
from buildwright.core.reasons import Failure, Reason


def object_name_errors(name: str) -> list[str]:
    """Why `name` cannot be the name of a Secret, ConfigMap, ServiceAccount, Build or
    strategy (all DNS-1123 subdomains); empty when it can."""
    if not name:
        return ["must not be empty"]
    return dns1123_subdomain_errors(name)


def can_exist(name: str) -> bool:
    """Whether an object of the kinds above may have this name: if not, a lookup is
    pointless (and the name must never be joined into an API path)."""
    return not object_name_errors(name)


# VolumeSource fields that name an object in the Pod's namespace: (source key, name key).
_NAMED_VOLUME_SOURCES = (("secret", "secretName"), ("configMap", "name"))
_NAMED_PROJECTIONS = (("secret", "name"), ("configMap", "name"))
# env[].valueFrom selectors that name an object in the Pod's namespace.
_NAMED_ENV_SOURCES = ("configMapKeyRef", "secretKeyRef")


def _volume_names(field: str, volumes: Sequence[Volume] | None) -> Iterator[tuple[str, Any]]:
    for index, volume in enumerate(volumes or ()):
        source = volume.model_dump(by_alias=True, exclude_none=True)
        for key, name_key in _NAMED_VOLUME_SOURCES:
            if isinstance(source.get(key), Mapping):
                yield f"{field}[{index}].{key}.{name_key}", source[key].get(name_key)
        projected = source.get("projected")
        if isinstance(projected, Mapping):
            for position, item in enumerate(projected.get("sources") or ()):
                for key, name_key in _NAMED_PROJECTIONS:
                    if isinstance(item, Mapping) and isinstance(item.get(key), Mapping):
                        yield (
                            f"{field}[{index}].projected.sources[{position}].{key}.{name_key}",
                            item[key].get(name_key),
                        )


def _env_names(field: str, env: Sequence[EnvVar] | None) -> Iterator[tuple[str, Any]]:
    for index, var in enumerate(env or ()):
        value_from = var.value_from or {}
        for key in _NAMED_ENV_SOURCES:
            selector = value_from.get(key)
            if isinstance(selector, Mapping):
                yield f"{field}[{index}].valueFrom.{key}.name", selector.get("name")


def _param_names(field: str, values: Sequence[ParamValue] | None) -> Iterator[tuple[str, Any]]:
    for index, value in enumerate(values or ()):
        singles = [("", value), *((f".values[{i}]", v) for i, v in enumerate(value.values or ()))]
        for suffix, single in singles:
            if single.config_map_value is not None:
                yield f"{field}[{index}]{suffix}.configMapValue.name", single.config_map_value.name
            if single.secret_value is not None:
                yield f"{field}[{index}]{suffix}.secretValue.name", single.secret_value.name


def pod_references(spec: BuildSpec | BuildRunSpec) -> list[tuple[str, Any]]:
    """(field path, name) of every object the build Pod would name from this spec."""
    found: list[tuple[str, Any]] = []
    found.extend(_volume_names("spec.volumes", spec.volumes))
    found.extend(_env_names("spec.env", spec.env))
    found.extend(_param_names("spec.paramValues", spec.param_values))
    return found


def invalid_pod_reference(references: Iterable[tuple[str, Any]]) -> Failure | None:
    """ReferenceNameInvalid for the first reference whose name no object can have."""
    for field, name in references:
        errors = object_name_errors(name) if isinstance(name, str) else ["must be a string"]
        if errors:
            return Failure(
                Reason.REFERENCE_NAME_INVALID,
                f"{field}: invalid name {_quoted(name)}: {', '.join(errors)}",
            )
    return None


def _quoted(name: Any) -> str:
    text = name if isinstance(name, str) else repr(name)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"')[:253] + '"'
