"""Every reason users read on a Build's `status.reason`, on a BuildRun's `Succeeded` condition
and in `status.failureDetails.reason`, with one line on when it happens.

The strings are part of the API: scripts, `kubectl wait` and dashboards match on them, and
they are Shipwright's, verbatim (https://shipwright.io/docs/build/build/ and
https://shipwright.io/docs/build/buildrun/ list upstream's). The few that are ours say so.
`reasons_table()` renders this enumeration as the table in docs/reasons.md; a test keeps the
two the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """A reason string and when it is set (`.doc`)."""

    doc: str
    area: str

    def __new__(cls, value: str, area: str, doc: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.area = area
        member.doc = doc
        return member

    # --- Build registration: status.reason of a Build ---------------------------------------
    SUCCEEDED = (
        "Succeeded",
        "Build, BuildRun",
        "A Build passed every validation (registered True); a BuildRun's build finished.",
    )
    SET_OWNER_REFERENCE_FAILED = (
        "SetOwnerReferenceFailed",
        "Build, BuildRun",
        "The owner reference that retention.atBuildDeletion asks for could not be set.",
    )
    REMOTE_REPOSITORY_UNREACHABLE = (
        "RemoteRepositoryUnreachable",
        "Build",
        "With build.shipwright.io/verify.repository, the source URL could not be reached or is not a valid URL.",
    )
    SPEC_OUTPUT_SECRET_REF_NOT_FOUND = (
        "SpecOutputSecretRefNotFound",
        "Build",
        "The output's pushSecret does not exist in the Build's namespace.",
    )
    SPEC_SOURCE_SECRET_REF_NOT_FOUND = (
        "SpecSourceSecretRefNotFound",
        "Build",
        "The source's cloneSecret (or pullSecret for OCI sources) does not exist.",
    )
    MULTIPLE_SECRET_REF_NOT_FOUND = (
        "MultipleSecretRefNotFound",
        "Build",
        "Two or more referenced Secrets do not exist; the message lists them.",
    )
    UNKNOWN_BUILD_STRATEGY_KIND = (
        "UnknownBuildStrategyKind",
        "Build",
        "strategy.kind is neither BuildStrategy nor ClusterBuildStrategy.",
    )
    BUILD_STRATEGY_NOT_FOUND = (
        "BuildStrategyNotFound",
        "Build, BuildRun",
        "The namespaced BuildStrategy named by the Build does not exist.",
    )
    CLUSTER_BUILD_STRATEGY_NOT_FOUND = (
        "ClusterBuildStrategyNotFound",
        "Build, BuildRun",
        "The ClusterBuildStrategy named by the Build does not exist.",
    )
    UNDEFINED_VOLUME = (
        "UndefinedVolume",
        "Build, BuildRun",
        "A volume override names a volume the strategy does not define.",
    )
    VOLUME_NOT_OVERRIDABLE = (
        "VolumeNotOverridable",
        "Build, BuildRun",
        "A volume override names a strategy volume that is not overridable.",
    )
    UNDEFINED_STEP_RESOURCE = (
        "UndefinedStepResource",
        "Build, BuildRun",
        "stepResources names a step the strategy does not have.",
    )
    OUTPUT_TIMESTAMP_NOT_SUPPORTED = (
        "OutputTimestampNotSupported",
        "Build",
        "output.timestamp is SourceTimestamp but the Build has no source.",
    )
    OUTPUT_TIMESTAMP_NOT_VALID = (
        "OutputTimestampNotValid",
        "Build",
        "output.timestamp is not Zero, SourceTimestamp, BuildTimestamp or a number.",
    )
    INVALID_PLATFORM = (
        "InvalidPlatform",
        "Build, BuildRun",
        "A requested build platform is not of the form os/arch.",
    )
    NODE_SELECTOR_PLATFORM_CONFLICT = (
        "NodeSelectorPlatformConflict",
        "Build, BuildRun",
        "The nodeSelector pins an OS or architecture that contradicts the requested platforms.",
    )
    BUILD_NAME_INVALID = (
        "BuildNameInvalid",
        "Build",
        "The Build's name is not a valid label value (63 characters at most).",
    )
    SPEC_ENV_NAME_CAN_NOT_BE_BLANK = (
        "SpecEnvNameCanNotBeBlank",
        "Build, BuildRun",
        "An env entry has no name.",
    )
    SPEC_ENV_NAME_FORBIDDEN = (
        "SpecEnvNameForbidden",
        "Build, BuildRun",
        "An env entry sets a name that changes how programs start (FORBIDDEN_ENV_VAR_NAMES).",
    )
    SPEC_ENV_ONLY_ONE_OF_VALUE_OR_VALUE_FROM = (
        "SpecEnvOnlyOneOfValueOrValueFromMustBeSpecified",
        "Build, BuildRun",
        "An env entry has both value and valueFrom.",
    )
    TRIGGER_NAME_CAN_NOT_BE_BLANK = (
        "TriggerNameCanNotBeBlank",
        "Build",
        "A trigger.when entry has no name.",
    )
    TRIGGER_INVALID_TYPE = (
        "TriggerInvalidType",
        "Build",
        "A trigger.when entry's type is not GitHub, Image or Pipeline.",
    )
    TRIGGER_INVALID_GITHUB_WEBHOOK = (
        "TriggerInvalidGitHubWebHook",
        "Build",
        "A GitHub trigger lacks github or github.events.",
    )
    TRIGGER_INVALID_IMAGE = (
        "TriggerInvalidImage",
        "Build",
        "An Image trigger lacks image or image.names.",
    )
    TRIGGER_INVALID_PIPELINE = (
        "TriggerInvalidPipeline",
        "Build",
        "A Pipeline trigger lacks objectRef or its status, or names both or neither of name and selector.",
    )
    NODE_SELECTOR_NOT_VALID = (
        "NodeSelectorNotValid",
        "Build, BuildRun",
        "A nodeSelector key or value is not a valid label key or value.",
    )
    TOLERATION_NOT_VALID = (
        "TolerationNotValid",
        "Build, BuildRun",
        "A toleration has an invalid key, operator, value or effect.",
    )
    SCHEDULER_NAME_NOT_VALID = (
        "SchedulerNameNotValid",
        "Build, BuildRun",
        "schedulerName is not a qualified name.",
    )
    RUNTIME_CLASS_NAME_NOT_VALID = (
        "RuntimeClassNameNotValid",
        "Build, BuildRun",
        "runtimeClassName is not a DNS-1123 subdomain.",
    )
    REFERENCE_NAME_INVALID = (
        "ReferenceNameInvalid",
        "Build, BuildRun",
        "Ours: a Secret or ConfigMap name that only the build Pod would use (env valueFrom, parameter values, volumes) is not a valid Kubernetes name.",
    )
    VOLUME_SOURCE_NOT_ALLOWED = (
        "VolumeSourceNotAllowed",
        "Build, BuildRun",
        "Ours: a volume override uses a node-level source (hostPath, nfs, ...) the operator does not allow (BUILDWRIGHT_EXTRA_VOLUME_SOURCES).",
    )

    # --- Parameters: Build and BuildRun ------------------------------------------------------
    RESTRICTED_PARAMETERS_IN_USE = (
        "RestrictedParametersInUse",
        "Build, BuildRun",
        "A paramValue sets one of the shp- parameters the system defines.",
    )
    UNDEFINED_PARAMETER = (
        "UndefinedParameter",
        "Build, BuildRun",
        "A paramValue names a parameter the strategy does not declare.",
    )
    WRONG_PARAMETER_VALUE_TYPE = (
        "WrongParameterValueType",
        "Build, BuildRun",
        "A single value is given for an array parameter, or values for a string one.",
    )
    MISSING_PARAMETER_VALUES = (
        "MissingParameterValues",
        "BuildRun",
        "A strategy parameter without default has no value from the Build or the BuildRun.",
    )
    INCONSISTENT_PARAMETER_VALUES = (
        "InconsistentParameterValues",
        "Build, BuildRun",
        "A parameter value sets more than one of value, configMapValue and secretValue.",
    )
    EMPTY_ARRAY_ITEM_PARAMETER_VALUES = (
        "EmptyArrayItemParameterValues",
        "Build, BuildRun",
        "An item of an array parameter value sets none of value, configMapValue and secretValue.",
    )
    INCOMPLETE_CONFIGMAP_VALUE_PARAMETER_VALUES = (
        "IncompleteConfigMapValueParameterValues",
        "Build, BuildRun",
        "A configMapValue lacks its name or key.",
    )
    INCOMPLETE_SECRET_VALUE_PARAMETER_VALUES = (
        "IncompleteSecretValueParameterValues",
        "Build, BuildRun",
        "A secretValue lacks its name or key.",
    )

    # --- BuildRun: the Succeeded condition ---------------------------------------------------
    PENDING = (
        "Pending",
        "BuildRun",
        "Unknown: the build Pod exists but a step has not started (scheduling, image pull, a waiting container).",
    )
    RUNNING = ("Running", "BuildRun", "Unknown: the build Pod's steps are running.")
    FAILED = (
        "Failed",
        "BuildRun",
        "False: a step exited non-zero; failureDetails names the step and, where it reported one, the cause.",
    )
    STEP_OUT_OF_MEMORY = (
        "StepOutOfMemory",
        "BuildRun",
        "False: the failed step was killed for using more memory than its limit.",
    )
    POD_EVICTED = ("PodEvicted", "BuildRun", "False: the node evicted the build Pod.")
    VULNERABILITIES_FOUND = (
        "VulnerabilitiesFound",
        "BuildRun",
        "False: the image scan found vulnerabilities and output.vulnerabilityScan says to fail on them.",
    )
    BUILDRUN_TIMEOUT = (
        "BuildRunTimeout",
        "BuildRun",
        "False: the BuildRun ran longer than its timeout (BuildRun, else Build, else 10 minutes).",
    )
    BUILDRUN_CANCELED = (
        "BuildRunCanceled",
        "BuildRun",
        "Unknown while the Pod is being stopped, then False: spec.state was set to BuildRunCanceled.",
    )
    BUILDRUN_NAME_INVALID = (
        "BuildRunNameInvalid",
        "BuildRun",
        "False: the BuildRun's name is not a valid label value.",
    )
    BUILDRUN_NO_REF_OR_SPEC = (
        "BuildRunNoRefOrSpec",
        "BuildRun",
        "False: the BuildRun names no Build and embeds no build spec.",
    )
    BUILDRUN_AMBIGUOUS_BUILD = (
        "BuildRunAmbiguousBuild",
        "BuildRun",
        "False: the BuildRun both names a Build and embeds a build spec.",
    )
    BUILDRUN_BUILD_FIELD_OVERRIDE_FORBIDDEN = (
        "BuildRunBuildFieldOverrideForbidden",
        "BuildRun",
        "False: the BuildRun overrides a Build field while embedding a build spec, where only a named Build may be overridden.",
    )
    BUILD_NOT_FOUND = (
        "BuildNotFound",
        "BuildRun",
        "False: the named Build does not exist (a BuildRun waits a short while for it first).",
    )
    BUILD_REGISTRATION_FAILED = (
        "BuildRegistrationFailed",
        "BuildRun",
        "False: the named Build is not registered, or the embedded build spec fails validation.",
    )
    SERVICE_ACCOUNT_NOT_FOUND = (
        "ServiceAccountNotFound",
        "BuildRun",
        "False: the service account the BuildRun names does not exist.",
    )
    UNKNOWN_STRATEGY_KIND = (
        "UnknownStrategyKind",
        "BuildRun",
        "False: the strategy kind is neither BuildStrategy nor ClusterBuildStrategy.",
    )
    TASKRUN_GENERATION_FAILED = (
        "TaskRunGenerationFailed",
        "BuildRun",
        "False: the build Pod could not be generated from the strategy (env conflicts, volume mounts, a step without command, a bad timestamp); the message names the phase.",
    )
    POD_CREATION_FAILED = (
        "PodCreationFailed",
        "BuildRun",
        "Ours: False: the apiserver refused the build Pod (admission, quota that will not change, an invalid field); the message is its answer.",
    )
    VOLUME_DOES_NOT_EXIST = (
        "VolumeDoesNotExist",
        "BuildRun",
        "False: a Secret or ConfigMap a Pod volume needs does not exist.",
    )
    TASKRUN_IS_MISSING = (
        "TaskRunIsMissing",
        "BuildRun",
        "False: the build Pod was deleted before it finished.",
    )
    EXCEEDED_NODE_RESOURCES = (
        "ExceededNodeResources",
        "BuildRun",
        "False: the build Pod cannot fit on any node.",
    )
    PULL_IMAGE_FAILED = (
        "PullImageFailed",
        "BuildRun",
        "Unknown: a step's image cannot be pulled (ErrImagePull, ImagePullBackOff, InvalidImageName).",
    )
    CREATE_CONTAINER_CONFIG_ERROR = (
        "CreateContainerConfigError",
        "BuildRun",
        "False: the kubelet cannot create a step container from its configuration (a missing key, a bad mount).",
    )

    # --- failureDetails.reason of a failed source step --------------------------------------
    GIT_AUTH_INVALID_USER_OR_PASS = (
        "GitAuthInvalidUserOrPass",
        "failureDetails",
        "The Git server refused the clone secret's username or password.",
    )
    GIT_AUTH_INVALID_KEY = (
        "GitAuthInvalidKey",
        "failureDetails",
        "The Git server refused the clone secret's SSH key.",
    )
    GIT_REVISION_NOT_FOUND = (
        "GitRevisionNotFound",
        "failureDetails",
        "The revision (branch, tag or commit) does not exist in the repository.",
    )
    GIT_REMOTE_REPOSITORY_NOT_FOUND = (
        "GitRemoteRepositoryNotFound",
        "failureDetails",
        "The repository does not exist.",
    )
    GIT_REMOTE_REPOSITORY_PRIVATE = (
        "GitRemoteRepositoryPrivate",
        "failureDetails",
        "The repository needs credentials and the Build gives none.",
    )
    GIT_BASIC_AUTH_INCOMPLETE = (
        "GitBasicAuthIncomplete",
        "failureDetails",
        "The basic-auth clone secret lacks its username or password.",
    )
    GIT_SSH_AUTH_UNEXPECTED = (
        "GitSSHAuthUnexpected",
        "failureDetails",
        "An SSH key secret is given for an http(s) URL.",
    )
    GIT_SSH_AUTH_EXPECTED = (
        "GitSSHAuthExpected",
        "failureDetails",
        "An SSH URL is given with a basic-auth secret, or none.",
    )
    AUTH_UNEXPECTED_HTTP = (
        "AuthUnexpectedHTTP",
        "failureDetails",
        "Credentials are given for a plain http URL, where they would travel unencrypted.",
    )
    GIT_ERROR = ("GitError", "failureDetails", "Any other failure of git; the message is git's.")


ALL_VALIDATIONS_SUCCEEDED = "all validations succeeded"
"""The message of a registered Build."""


@dataclass(frozen=True)
class Failure:
    """A decision that something is wrong: the reason users see and a message telling them
    what to change."""

    reason: str
    message: str


def reasons_table() -> str:
    """docs/reasons.md: one row per reason, in the order above."""
    lines = [
        "# Reasons",
        "",
        "Every reason buildwright sets, where it appears and when. Generated from",
        "`operator/buildwright/core/reasons.py` (`make generated`); a test fails when they differ.",
        "Build: `status.reason` of a Build. BuildRun: `reason` of its `Succeeded` condition.",
        "failureDetails: `status.failureDetails.reason` of a BuildRun whose source step failed.",
        "",
        "| reason | on | when |",
        "|---|---|---|",
    ]
    lines += [f"| `{reason.value}` | {reason.area} | {reason.doc} |" for reason in Reason]
    return "\n".join(lines) + "\n"
