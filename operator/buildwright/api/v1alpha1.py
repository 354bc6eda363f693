"""shipwright.io/v1alpha1: the API printed in books and older docs.

Served next to v1beta1, converted to it by `conversion.py`, never stored. Only the shapes
that differ from v1beta1 are defined here; the rest is shared with the v1beta1 models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from buildwright.api.base import (
    DURATION,
    PRESERVE_UNKNOWN,
    ApiModel,
    Condition,
    EnvVar,
    OpenModel,
    Volume,
)
from buildwright.api.v1beta1 import (
    BuildStatus,
    FailureDetails,
    GitSourceResult,
    Location,
    OCIArtifactSourceResult,
    OutputResult,
    Parameter,
    ParamValue,
    StrategySecurityContext,
    StrategyVolume,
    TriggerWhen,
)

API_VERSION = "shipwright.io/v1alpha1"


class SecretRef(ApiModel):
    """A reference to a Secret by name."""

    name: str = Field(description="Name of the Secret.")


class BundleContainer(ApiModel):
    """Source code bundled in a container image."""

    image: str = Field(description="Image holding the source bundle.")
    prune: Literal["Never", "AfterPull"] | None = Field(None, description="Prune after pulling.")


class Source(ApiModel):
    """Where the source code comes from: a Git url or a bundle image."""

    url: str | None = Field(None, description="URL of the Git repository.")
    revision: str | None = Field(None, description="Branch, tag or commit SHA.")
    context_dir: str | None = Field(None, description="Subdirectory used as the build context.")
    credentials: SecretRef | None = Field(None, description="Secret for cloning or pulling.")
    bundle_container: BundleContainer | None = Field(None, description="Source bundle image.")


class BuildSource(ApiModel):
    """A deprecated additional source (`LocalCopy` or `HTTP`)."""

    name: str = Field(description="Name of the source.")
    type: str | None = Field(None, description="LocalCopy or HTTP.")
    url: str | None = Field(None, description="URL of an HTTP source.")
    timeout: str | None = Field(None, description="Upload timeout.", json_schema_extra=DURATION)


class Strategy(ApiModel):
    """The build strategy to use."""

    name: str = Field(description="Name of the strategy.")
    kind: str | None = Field(None, description="BuildStrategy (default) or ClusterBuildStrategy.")
    api_version: str | None = Field(None, description="API version of the strategy.")


class Builder(ApiModel):
    """Deprecated: the builder image of builder-based strategies."""

    image: str = Field(description="Builder image.")
    credentials: SecretRef | None = Field(None, description="Pull secret of the builder image.")


class Image(ApiModel):
    """The output image."""

    image: str = Field(description="Image reference the build pushes to.")
    insecure: bool | None = Field(None, description="Allow an insecure registry.")
    credentials: SecretRef | None = Field(None, description="Push secret.")
    annotations: dict[str, str] | None = Field(None, description="OCI manifest annotations.")
    labels: dict[str, str] | None = Field(None, description="Image configuration labels.")
    timestamp: str | None = Field(None, description="Image timestamp.")


class BuildRetention(ApiModel):
    """How long BuildRuns of this Build are kept."""

    failed_limit: int | None = Field(None, ge=1, description="Failed runs to keep.")
    succeeded_limit: int | None = Field(None, ge=1, description="Succeeded runs to keep.")
    ttl_after_failed: str | None = Field(None, json_schema_extra=DURATION)
    ttl_after_succeeded: str | None = Field(None, json_schema_extra=DURATION)


class BuildVolume(Volume):
    """A volume override with an optional description."""

    description: str | None = Field(None, description="What the volume is for.")


class Trigger(ApiModel):
    """Conditions that trigger new BuildRuns."""

    when: list[TriggerWhen] | None = None
    secret_ref: SecretRef | None = Field(None, description="Secret for webhook validation.")


class BuildSpec(ApiModel):
    """The desired state of a v1alpha1 Build."""

    source: Source = Field(description="Source code location.")
    sources: list[BuildSource] | None = Field(None, description="Deprecated extra sources.")
    trigger: Trigger | None = None
    strategy: Strategy = Field(description="Build strategy to use.")
    builder: Builder | None = Field(None, description="Deprecated builder image.")
    dockerfile: str | None = Field(None, description="Deprecated: path of the Dockerfile.")
    param_values: list[ParamValue] | None = None
    output: Image = Field(description="Output image.")
    timeout: str | None = Field(None, json_schema_extra=DURATION)
    env: list[EnvVar] | None = None
    retention: BuildRetention | None = None
    volumes: list[BuildVolume] | None = None


class Build(ApiModel):
    """A v1alpha1 Build."""

    api_version: str = API_VERSION
    kind: Literal["Build"] = "Build"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: BuildSpec
    status: BuildStatus | None = None


class BuildRef(ApiModel):
    """A reference to a Build."""

    name: str = Field(description="Name of the Build.")
    api_version: str | None = None


class ServiceAccount(ApiModel):
    """The service account of the build Pod."""

    name: str | None = None
    generate: bool | None = Field(None, description="Create a service account for this run.")


class BuildRunOutput(ApiModel):
    """Output overrides of a v1alpha1 BuildRun."""

    image: str = Field(description="Image reference the build pushes to.")
    credentials: SecretRef | None = None
    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    insecure: bool | None = None
    timestamp: str | None = None


class BuildRunRetention(ApiModel):
    """How long this BuildRun is kept after it finished."""

    ttl_after_failed: str | None = Field(None, json_schema_extra=DURATION)
    ttl_after_succeeded: str | None = Field(None, json_schema_extra=DURATION)


class BuildRunSpec(ApiModel):
    """The desired state of a v1alpha1 BuildRun."""

    build_ref: BuildRef | None = Field(None, description="The Build to run.")
    build_spec: BuildSpec | None = Field(None, description="An embedded Build spec.")
    sources: list[BuildSource] | None = None
    service_account: ServiceAccount | None = None
    timeout: str | None = Field(None, json_schema_extra=DURATION)
    param_values: list[ParamValue] | None = None
    output: BuildRunOutput | None = None
    state: Literal["BuildRunCanceled"] | None = None
    env: list[EnvVar] | None = None
    retention: BuildRunRetention | None = None
    volumes: list[BuildVolume] | None = None


class SourceResult(ApiModel):
    """Results of one source step."""

    name: str = Field(description="Name of the source; `default`.")
    git: GitSourceResult | None = None
    bundle: OCIArtifactSourceResult | None = None
    timestamp: str | None = None


class BuildRunStatus(ApiModel):
    """The observed state of a v1alpha1 BuildRun."""

    conditions: list[Condition] | None = None
    start_time: str | None = None
    completion_time: str | None = None
    build_spec: BuildSpec | None = None
    sources: list[SourceResult] | None = None
    output: OutputResult | None = None
    latest_task_run_ref: str | None = None
    failed_at: Location | None = None
    failure_details: FailureDetails | None = None


class BuildRun(ApiModel):
    """A v1alpha1 BuildRun."""

    api_version: str = API_VERSION
    kind: Literal["BuildRun"] = "BuildRun"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: BuildRunSpec
    status: BuildRunStatus | None = None


class Container(OpenModel):
    """A full corev1.Container; only the v1beta1 step fields reach the Pod."""

    name: str = Field(description="Name of the step.")


class BuildStrategySpec(ApiModel):
    """The steps and parameters of a v1alpha1 strategy."""

    build_steps: list[Container] | None = Field(None, description="Steps run in order.")
    parameters: list[Parameter] | None = None
    security_context: StrategySecurityContext | None = None
    volumes: list[StrategyVolume] | None = None


class BuildStrategy(ApiModel):
    """A v1alpha1 BuildStrategy or ClusterBuildStrategy."""

    api_version: str = API_VERSION
    kind: Literal["BuildStrategy", "ClusterBuildStrategy"] = "BuildStrategy"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: BuildStrategySpec
    status: dict[str, Any] | None = Field(None, json_schema_extra=PRESERVE_UNKNOWN)
