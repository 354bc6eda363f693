"""Shared pieces of the API models: the camelCase base model and the open core types.

Every model is strict (`extra="forbid"`) because the CRD schemas generated from them are
structural: a misspelled field must be rejected, not silently pruned. Embedded Kubernetes core
types whose full schemas would bloat the CRDs (EnvVar.valueFrom, VolumeSource, container
securityContext, resource quantities) are kept open with `x-kubernetes-preserve-unknown-fields`;
the apiserver validates them again when the build Pod is created.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

PRESERVE_UNKNOWN: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}
DURATION: dict[str, Any] = {"format": "duration"}


class ApiModel(BaseModel):
    """Base of all models: snake_case in Python, camelCase on the wire."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as the Kubernetes API holds it: camelCase keys, unset fields absent."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class OpenModel(ApiModel):
    """A model that keeps fields it does not know (core types we only partly describe)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=PRESERVE_UNKNOWN)


class EnvVar(ApiModel):
    """A corev1.EnvVar: a literal `value` or a `valueFrom` source."""

    name: str = Field(description="Name of the environment variable.")
    value: str | None = Field(None, description="Literal value; `$(VAR)` references expand.")
    value_from: dict[str, Any] | None = Field(
        None,
        description="Source for the value (configMapKeyRef, secretKeyRef, fieldRef, …).",
        json_schema_extra=PRESERVE_UNKNOWN,
    )


class Toleration(ApiModel):
    """A corev1.Toleration; validation accepts only key, operator, value, effect NoSchedule."""

    key: str | None = Field(None, description="Taint key the toleration applies to.")
    operator: str | None = Field(None, description="`Exists` or `Equal`.")
    value: str | None = Field(None, description="Taint value to match with `Equal`.")
    effect: str | None = Field(None, description="Taint effect; only `NoSchedule` is supported.")
    toleration_seconds: int | None = Field(None, description="Not supported; rejected.")


class ResourceRequirements(ApiModel):
    """A corev1.ResourceRequirements: quantities per resource name."""

    limits: dict[str, int | str] | None = Field(None, description="Maximum resources allowed.")
    requests: dict[str, int | str] | None = Field(None, description="Minimum resources required.")
    claims: list[dict[str, Any]] | None = Field(None, description="Dynamic resource claims.")


class Volume(OpenModel):
    """A named volume: `name` plus any inline corev1 VolumeSource (emptyDir, secret, …)."""

    name: str = Field(description="Name of the volume; must match a strategy volume.")


class Condition(ApiModel):
    """A status condition (only type `Succeeded` is used on BuildRuns)."""

    type: str = Field(description="Type of the condition; `Succeeded`.")
    status: str = Field(description="`True`, `False` or `Unknown`.")
    last_transition_time: str = Field(description="When the status last changed (RFC 3339).")
    reason: str = Field(description="One-word CamelCase reason.")
    message: str = Field(description="Human-readable details.")
