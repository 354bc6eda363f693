"""shipwright.io/v1beta1: the canonical (storage) version of the four kinds.

Field names, optionality and enums follow the Shipwright API reference
(https://shipwright.io/docs/ref/api/build/). Fields
whose allowed values Shipwright checks in its controllers with a named reason (strategy kind,
trigger type, toleration operator, output timestamp) are plain strings here so that the
operator can report that reason instead of the apiserver rejecting the object.

Over 500 lines because it is the whole v1beta1 schema: one model per API type, each field
described for `kubectl explain`; the CRDs are generated from it.
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
    ResourceRequirements,
    Toleration,
    Volume,
)

API_VERSION = "shipwright.io/v1beta1"

# ---------------------------------------------------------------------------------------------
# Build


class GitSource(ApiModel):
    """A Git repository to clone."""

    url: str = Field(description="URL of the Git repository.")
    revision: str | None = Field(
        None, description="Branch, tag or commit SHA; absent means the remote default branch."
    )
    clone_secret: str | None = Field(
        None, description="Secret with basic-auth or ssh-auth credentials for the clone."
    )
    depth: int | None = Field(
        None, ge=0, description="Clone depth: 1 (default) is shallow, 0 the full history."
    )


class OCIArtifactSource(ApiModel):
    """Source code bundled in an OCI image."""

    image: str = Field(description="Image holding the source bundle.")
    prune: Literal["Never", "AfterPull"] | None = Field(
        None, description="Delete the bundle image after pulling it (`AfterPull`) or not."
    )
    pull_secret: str | None = Field(None, description="Secret used to pull the bundle image.")


class LocalSource(ApiModel):
    """Source code streamed from the user's machine (`shp build upload`)."""

    name: str | None = Field(None, description="Name of the local source.")
    timeout: str | None = Field(
        None, description="How long to wait for the upload.", json_schema_extra=DURATION
    )


class Source(ApiModel):
    """Where the source code comes from."""

    type: Literal["Git", "OCI", "Local"] = Field(description="Kind of source: Git, OCI or Local.")
    context_dir: str | None = Field(
        None, description="Subdirectory of the source used as the build context."
    )
    git: GitSource | None = Field(None, description="The Git source, for type Git.")
    oci_artifact: OCIArtifactSource | None = Field(
        None, description="The OCI artifact source, for type OCI."
    )
    local: LocalSource | None = Field(None, description="The local source, for type Local.")


class ObjectKeyRef(ApiModel):
    """A key of a ConfigMap or Secret in the BuildRun's namespace."""

    name: str = Field(description="Name of the ConfigMap or Secret.")
    key: str = Field(description="Key in the ConfigMap or Secret.")
    format: str | None = Field(
        None,
        description="Template in which ${CONFIGMAP_VALUE} or ${SECRET_VALUE} is replaced.",
    )


class SingleValue(ApiModel):
    """One value: literal, from a ConfigMap, or from a Secret (exactly one)."""

    value: str | None = Field(None, description="Literal value.")
    config_map_value: ObjectKeyRef | None = Field(None, description="Value from a ConfigMap key.")
    secret_value: ObjectKeyRef | None = Field(None, description="Value from a Secret key.")


class ParamValue(SingleValue):
    """A value for a strategy parameter: a single value, or `values` for array parameters."""

    name: str = Field(description="Name of the strategy parameter.")
    values: list[SingleValue] | None = Field(None, description="Items of an array parameter.")


class StepResourceOverride(ApiModel):
    """Resources for one strategy step, replacing the strategy's own."""

    name: str = Field(description="Name of the strategy step.")
    resources: ResourceRequirements = Field(description="Resource requirements of the step.")


class Strategy(ApiModel):
    """The build strategy to use."""

    name: str = Field(description="Name of the BuildStrategy or ClusterBuildStrategy.")
    kind: str | None = Field(
        None,
        description="BuildStrategy (the default) or ClusterBuildStrategy.",
    )
    step_resources: list[StepResourceOverride] | None = Field(
        None, description="Per-step resource overrides."
    )


class VulnerabilityIgnoreOptions(ApiModel):
    """Vulnerabilities to leave out of the scan result."""

    id: list[str] | None = Field(None, description="CVE ids to ignore.")
    severity: Literal["low", "medium", "high"] | None = Field(
        None, description="Ignore this severity and below."
    )
    unfixed: bool | None = Field(None, description="Ignore vulnerabilities without a fix.")


class VulnerabilityScanOptions(ApiModel):
    """Scan the output image for vulnerabilities."""

    enabled: bool = Field(False, description="Scan the image after building it.")
    fail_on_finding: bool = Field(False, description="Fail the BuildRun when any is found.")
    ignore: VulnerabilityIgnoreOptions | None = Field(None, description="What to ignore.")


class ImagePlatform(ApiModel):
    """One target platform of a multi-arch build."""

    os: str = Field(description="Operating system, e.g. linux.")
    arch: str = Field(description="CPU architecture, e.g. amd64.")


class Image(ApiModel):
    """The output image."""

    image: str = Field(description="Image reference the build pushes to.")
    insecure: bool | None = Field(None, description="Allow an insecure (plain HTTP) registry.")
    push_secret: str | None = Field(
        None, description="kubernetes.io/dockerconfigjson Secret with push credentials."
    )
    annotations: dict[str, str] | None = Field(None, description="OCI manifest annotations.")
    labels: dict[str, str] | None = Field(None, description="Image configuration labels.")
    timestamp: str | None = Field(
        None,
        description="Image timestamp: Zero, SourceTimestamp, BuildTimestamp or epoch seconds.",
    )
    vulnerability_scan: VulnerabilityScanOptions | None = Field(
        None, description="Vulnerability scan settings."
    )
    platforms: list[ImagePlatform] | None = Field(
        None,
        description="Target platforms of a multi-arch build.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["os", "arch"],
        },
    )


class BuildRetention(ApiModel):
    """How long BuildRuns of this Build are kept."""

    failed_limit: int | None = Field(None, ge=1, le=10000, description="Failed runs to keep.")
    succeeded_limit: int | None = Field(
        None, ge=1, le=10000, description="Succeeded runs to keep."
    )
    ttl_after_failed: str | None = Field(
        None, description="Delete failed runs after this long.", json_schema_extra=DURATION
    )
    ttl_after_succeeded: str | None = Field(
        None, description="Delete succeeded runs after this long.", json_schema_extra=DURATION
    )
    at_build_deletion: bool | None = Field(
        None, description="Delete the BuildRuns when the Build is deleted."
    )


class GitHubTrigger(ApiModel):
    """GitHub webhook trigger settings."""

    events: list[str] | None = Field(None, description="Push and/or PullRequest.")
    branches: list[str] | None = Field(None, description="Branches to react to.")


class ImageTrigger(ApiModel):
    """Image update trigger settings."""

    names: list[str] | None = Field(None, description="Images to watch.")


class ObjectRefTrigger(ApiModel):
    """Tekton Pipeline trigger settings."""

    name: str | None = Field(None, description="Name of the object.")
    status: list[str] | None = Field(None, description="Statuses to react to.")
    selector: dict[str, str] | None = Field(None, description="Label selector of the objects.")


class TriggerWhen(ApiModel):
    """One condition that triggers a BuildRun (used by Shipwright Triggers)."""

    name: str = Field(description="Name of the condition.")
    type: str = Field(description="GitHub, Image or Pipeline.")
    github: GitHubTrigger | None = Field(None, description="For type GitHub.")
    image: ImageTrigger | None = Field(None, description="For type Image.")
    object_ref: ObjectRefTrigger | None = Field(None, description="For type Pipeline.")


class Trigger(ApiModel):
    """Conditions that trigger new BuildRuns."""

    when: list[TriggerWhen] | None = Field(None, description="Trigger conditions.")
    trigger_secret: str | None = Field(None, description="Secret for webhook validation.")


class BuildSpec(ApiModel):
    """The desired state of a Build."""

    source: Source | None = Field(None, description="Source code location.")
    trigger: Trigger | None = Field(None, description="Triggers for new BuildRuns.")
    strategy: Strategy = Field(description="Build strategy to use.")
    param_values: list[ParamValue] | None = Field(None, description="Strategy parameter values.")
    output: Image = Field(description="Output image.")
    timeout: str | None = Field(
        None, description="Maximum duration of a BuildRun.", json_schema_extra=DURATION
    )
    env: list[EnvVar] | None = Field(None, description="Environment added to strategy steps.")
    retention: BuildRetention | None = Field(None, description="Retention of BuildRuns.")
    volumes: list[Volume] | None = Field(
        None, description="Overrides of overridable strategy volumes."
    )
    node_selector: dict[str, str] | None = Field(None, description="Node selector of the Pod.")
    tolerations: list[Toleration] | None = Field(None, description="Tolerations of the Pod.")
    scheduler_name: str | None = Field(None, description="Scheduler of the Pod.")
    runtime_class_name: str | None = Field(None, description="RuntimeClass of the Pod.")


class TriggeredRun(ApiModel):
    """The BuildRun a trigger started last (buildwright's addition to the status)."""

    name: str | None = Field(None, description="Name of the BuildRun.")
    trigger: str | None = Field(None, description="The trigger.when[].name that matched.")
    cause: str | None = Field(None, description="What happened: the push or the new digest.")
    time: str | None = Field(None, description="When the BuildRun was created.")


class ImageDigest(ApiModel):
    """The digest last seen of an image an Image trigger watches."""

    image: str = Field(description="The watched image reference.")
    digest: str | None = Field(None, description="Its digest; empty while it does not exist.")
    changes: int | None = Field(None, description="How many changes of it started a BuildRun.")


class BuildStatus(ApiModel):
    """The outcome of the Build's validation."""

    registered: str | None = Field(None, description="True when the Build is valid.")
    reason: str | None = Field(None, description="Why the Build is (not) registered.")
    message: str | None = Field(None, description="Details of the reason.")
    last_triggered_run: TriggeredRun | None = Field(
        None, description="The BuildRun spec.trigger started last."
    )
    image_digests: list[ImageDigest] | None = Field(
        None, description="Digests last seen of the images Image triggers watch."
    )


class Build(ApiModel):
    """A Build: what to build (source), how (strategy) and where to push (output)."""

    api_version: str = API_VERSION
    kind: Literal["Build"] = "Build"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: BuildSpec
    status: BuildStatus | None = None


# ---------------------------------------------------------------------------------------------
# BuildRun


class ReferencedBuild(ApiModel):
    """The Build to run: a name or an embedded spec."""

    name: str | None = Field(None, description="Name of a Build in the same namespace.")
    spec: BuildSpec | None = Field(None, description="An embedded Build spec (one-off build).")


class BuildRunSource(ApiModel):
    """A source override; only type Local has an effect."""

    type: str = Field(description="Source type; Local.")
    local: LocalSource | None = Field(None, description="The local source.")


class BuildRunRetention(ApiModel):
    """How long this BuildRun is kept after it finished."""

    ttl_after_failed: str | None = Field(
        None, description="Delete after failing, after this long.", json_schema_extra=DURATION
    )
    ttl_after_succeeded: str | None = Field(
        None, description="Delete after succeeding, after this long.", json_schema_extra=DURATION
    )


class BuildRunSpec(ApiModel):
    """The desired state of a BuildRun."""

    build: ReferencedBuild = Field(description="The Build to run.")
    source: BuildRunSource | None = Field(None, description="Source override (Local only).")
    service_account: str | None = Field(
        None, description="Service account of the build Pod; `.generate` creates one."
    )
    timeout: str | None = Field(
        None, description="Maximum duration; overrides the Build's.", json_schema_extra=DURATION
    )
    param_values: list[ParamValue] | None = Field(
        None, description="Parameter values merged over the Build's."
    )
    output: Image | None = Field(None, description="Output overrides.")
    state: Literal["BuildRunCanceled"] | None = Field(
        None, description="Set to BuildRunCanceled to cancel the run."
    )
    env: list[EnvVar] | None = Field(None, description="Environment merged over the Build's.")
    retention: BuildRunRetention | None = Field(None, description="Retention of this run.")
    volumes: list[Volume] | None = Field(None, description="Overrides of strategy volumes.")
    step_resources: list[StepResourceOverride] | None = Field(
        None, description="Per-step resource overrides."
    )
    node_selector: dict[str, str] | None = Field(None, description="Node selector of the Pod.")
    tolerations: list[Toleration] | None = Field(None, description="Tolerations of the Pod.")
    scheduler_name: str | None = Field(None, description="Scheduler of the Pod.")
    runtime_class_name: str | None = Field(None, description="RuntimeClass of the Pod.")


class GitSourceResult(ApiModel):
    """What was cloned."""

    commit_sha: str | None = Field(None, description="SHA of the built commit.")
    commit_author: str | None = Field(None, description="Author of the built commit.")
    branch_name: str | None = Field(None, description="Branch cloned when no revision was set.")


class OCIArtifactSourceResult(ApiModel):
    """What was pulled."""

    digest: str | None = Field(None, description="Digest of the source bundle image.")


class SourceResult(ApiModel):
    """Results of the source step."""

    git: GitSourceResult | None = None
    oci_artifact: OCIArtifactSourceResult | None = None
    timestamp: str | None = Field(None, description="Timestamp of the source (RFC 3339).")


class Vulnerability(ApiModel):
    """A vulnerability found in the image."""

    id: str | None = None
    severity: Literal["critical", "high", "medium", "low", "unknown"] | None = None


class OutputResult(ApiModel):
    """What was pushed."""

    digest: str | None = Field(None, description="Digest of the pushed image.")
    size: int | None = Field(None, description="Compressed size of the pushed image in bytes.")
    vulnerabilities: list[Vulnerability] | None = None


class Location(ApiModel):
    """Where a failure happened."""

    pod: str | None = None
    container: str | None = None


class FailureDetails(ApiModel):
    """Why and where a BuildRun failed."""

    reason: str | None = None
    message: str | None = None
    location: Location | None = None


class Executor(ApiModel):
    """The object that executes the BuildRun (for buildwright: the build Pod)."""

    name: str = Field(description="Name of the executor.")
    kind: str = Field(description="Kind of the executor (Pod).")


class BuildRunStatus(ApiModel):
    """The observed state of a BuildRun."""

    conditions: list[Condition] | None = None
    start_time: str | None = None
    completion_time: str | None = None
    build_spec: BuildSpec | None = Field(None, description="Snapshot of the effective Build.")
    source: SourceResult | None = None
    output: OutputResult | None = None
    failure_details: FailureDetails | None = None
    executor: Executor | None = None
    task_run_name: str | None = Field(None, description="Deprecated: name of the executor.")


class BuildRun(ApiModel):
    """A BuildRun: one execution of a Build."""

    api_version: str = API_VERSION
    kind: Literal["BuildRun"] = "BuildRun"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: BuildRunSpec
    status: BuildRunStatus | None = None


# ---------------------------------------------------------------------------------------------
# BuildStrategy / ClusterBuildStrategy


class VolumeMount(ApiModel):
    """A corev1.VolumeMount of a strategy step."""

    name: str = Field(description="Name of a strategy volume.")
    mount_path: str = Field(description="Path in the container.")
    read_only: bool | None = None
    sub_path: str | None = None
    sub_path_expr: str | None = None
    mount_propagation: str | None = None
    recursive_read_only: str | None = None


class Step(ApiModel):
    """One container of the strategy, run in order."""

    name: str = Field(description="Name of the step; the container is step-<name>.")
    image: str | None = Field(None, description="Container image.")
    command: list[str] | None = None
    args: list[str] | None = None
    working_dir: str | None = None
    env: list[EnvVar] | None = None
    resources: ResourceRequirements | None = None
    volume_mounts: list[VolumeMount] | None = None
    image_pull_policy: str | None = None
    security_context: dict[str, Any] | None = Field(
        None, description="corev1.SecurityContext of the step.", json_schema_extra=PRESERVE_UNKNOWN
    )


class Parameter(ApiModel):
    """A parameter users set through paramValues."""

    name: str = Field(description="Name of the parameter.")
    description: str = Field(description="What the parameter does.")
    type: Literal["string", "array"] | None = Field(None, description="string (default) or array.")
    default: str | None = Field(None, description="Default of a string parameter.")
    defaults: list[str] | None = Field(None, description="Defaults of an array parameter.")


class StrategySecurityContext(ApiModel):
    """User and group the steps run as."""

    run_as_user: int = Field(description="UID of the steps.")
    run_as_group: int = Field(description="GID of the steps.")


class StrategyVolume(Volume):
    """A volume of the strategy; `overridable` ones may be replaced by Builds and BuildRuns."""

    overridable: bool | None = Field(None, description="May Builds override this volume.")
    description: str | None = Field(None, description="What the volume is for.")


class BuildStrategySpec(ApiModel):
    """The steps and parameters of a strategy."""

    steps: list[Step] = Field(
        description="Steps run in order.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    parameters: list[Parameter] | None = None
    security_context: StrategySecurityContext | None = None
    volumes: list[StrategyVolume] | None = None


class BuildStrategyStatus(ApiModel):
    """What the operator found in the strategy (upstream strategies have no status)."""

    conditions: list[Condition] | None = Field(
        None,
        description="ParametersPassedSafely False when a step pastes a parameter into a shell"
        " script.",
    )


class BuildStrategy(ApiModel):
    """A namespaced build strategy."""

    api_version: str = API_VERSION
    kind: Literal["BuildStrategy", "ClusterBuildStrategy"] = "BuildStrategy"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: BuildStrategySpec
    status: BuildStrategyStatus | None = None


class ClusterBuildStrategy(BuildStrategy):
    """A cluster-scoped build strategy."""

    kind: Literal["BuildStrategy", "ClusterBuildStrategy"] = "ClusterBuildStrategy"
