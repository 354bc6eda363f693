"""What the conversion modules share: the versions and kinds, the two annotations that keep
what a version cannot express, a group of keys that convert together, small helpers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]


GROUP = "shipwright.io"


V1ALPHA1 = "shipwright.io/v1alpha1"
V1BETA1 = "shipwright.io/v1beta1"
VERSIONS = (V1ALPHA1, V1BETA1)


KINDS = ("Build", "BuildRun", "BuildStrategy", "ClusterBuildStrategy")


ALPHA_FIELDS_ANNOTATION = "conversion.buildwright.io/v1alpha1-fields"


BETA_FIELDS_ANNOTATION = "conversion.buildwright.io/v1beta1-fields"


BUILD_RUN_DELETION_ANNOTATION = "build.shipwright.io/build-run-deletion"


# The deletion annotation lives in metadata but converts together with spec.retention, so it
# travels inside the spec under this key, which can never be a real field name.
DELETION_KEY = "@build-run-deletion"


STEP_FIELDS = (
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "env",
    "resources",
    "volumeMounts",
    "imagePullPolicy",
    "securityContext",
)


SCHEDULING_FIELDS = ("nodeSelector", "tolerations", "schedulerName", "runtimeClassName")


DOCKERFILE_PARAM = "dockerfile"


BUILDER_IMAGE_PARAM = "builder-image"


class ConversionError(ValueError):
    """The object cannot be converted; the message says why."""


Part = JSON


Meta = Mapping[str, Any]


Mapper = Callable[[Part, Meta], Part]


@dataclass(frozen=True)
class Group:
    """Top-level keys (of either version) that convert together."""

    name: str
    keys: frozenset[str]
    to_beta: Mapper
    to_alpha: Mapper


def as_object(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def secret_name(ref: Any) -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get("name"), str):
        name: str = ref["name"]
        return name
    return None


def without(d: Mapping[str, Any], *keys: str) -> JSON:
    return {k: v for k, v in d.items() if k not in keys}


def identity(part: Part, _meta: Meta) -> Part:
    return dict(part)


def drop_all(_part: Part, _meta: Meta) -> Part:
    return {}


def group(name: str, keys: tuple[str, ...], to_beta: Mapper, to_alpha: Mapper) -> Group:
    return Group(name, frozenset(keys), to_beta, to_alpha)


Stash = dict[str, Any]


def convert_section(
    section: JSON,
    groups: tuple[Group, ...],
    *,
    to_beta: bool,
    meta: Meta,
    restore: Mapping[str, Any],
) -> tuple[JSON, Stash]:
    """Convert one section (a spec or status) group by group.

    Returns the converted section and, per group, the source form that the target cannot
    express (to be stashed). `restore` holds target-version forms from an earlier conversion;
    one is used only when it still converts to exactly the current source form.
    """
    out: JSON = {}
    stash: Stash = {}
    grouped: set[str] = set()
    emitted: set[str] = set()

    def convert_group(group: Group) -> None:
        forward = group.to_beta if to_beta else group.to_alpha
        backward = group.to_alpha if to_beta else group.to_beta
        part = {k: section[k] for k in group.keys if k in section}
        saved = restore.get(group.name)
        if isinstance(saved, dict) and backward(saved, meta) == part:
            converted = saved
        else:
            converted = forward(part, meta)
            if backward(converted, meta) != part:
                stash[group.name] = part
        out.update(converted)

    for group in groups:
        grouped |= group.keys
    group_of = {key: group for group in groups for key in group.keys}
    # Keep the input's key order where possible: a group is emitted at its first key.
    for key, value in section.items():
        if key not in grouped:
            out[key] = value
        elif group_of[key].name not in emitted:
            emitted.add(group_of[key].name)
            convert_group(group_of[key])
    for group in groups:
        if group.name not in emitted:
            convert_group(group)
    return out, stash
