"""Condition and registration reasons, exactly as Shipwright users read them (spec §2.6, §3.4).

The strings are part of the API: scripts and dashboards match on them. Keep them verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    """A decision that something is wrong: the reason users see and a message telling them
    what to change."""

    reason: str
    message: str


# --- Build registration (status.reason of a Build) -------------------------------------------
SUCCEEDED = "Succeeded"
ALL_VALIDATIONS_SUCCEEDED = "all validations succeeded"

SET_OWNER_REFERENCE_FAILED = "SetOwnerReferenceFailed"
REMOTE_REPOSITORY_UNREACHABLE = "RemoteRepositoryUnreachable"
SPEC_OUTPUT_SECRET_REF_NOT_FOUND = "SpecOutputSecretRefNotFound"
SPEC_SOURCE_SECRET_REF_NOT_FOUND = "SpecSourceSecretRefNotFound"
MULTIPLE_SECRET_REF_NOT_FOUND = "MultipleSecretRefNotFound"
UNKNOWN_BUILD_STRATEGY_KIND = "UnknownBuildStrategyKind"
BUILD_STRATEGY_NOT_FOUND = "BuildStrategyNotFound"
CLUSTER_BUILD_STRATEGY_NOT_FOUND = "ClusterBuildStrategyNotFound"
UNDEFINED_VOLUME = "UndefinedVolume"
VOLUME_NOT_OVERRIDABLE = "VolumeNotOverridable"
UNDEFINED_STEP_RESOURCE = "UndefinedStepResource"
OUTPUT_TIMESTAMP_NOT_SUPPORTED = "OutputTimestampNotSupported"
OUTPUT_TIMESTAMP_NOT_VALID = "OutputTimestampNotValid"
INVALID_PLATFORM = "InvalidPlatform"
NODE_SELECTOR_PLATFORM_CONFLICT = "NodeSelectorPlatformConflict"
BUILD_NAME_INVALID = "BuildNameInvalid"
SPEC_ENV_NAME_CAN_NOT_BE_BLANK = "SpecEnvNameCanNotBeBlank"
SPEC_ENV_NAME_FORBIDDEN = "SpecEnvNameForbidden"
SPEC_ENV_ONLY_ONE_OF_VALUE_OR_VALUE_FROM = "SpecEnvOnlyOneOfValueOrValueFromMustBeSpecified"
TRIGGER_NAME_CAN_NOT_BE_BLANK = "TriggerNameCanNotBeBlank"
TRIGGER_INVALID_TYPE = "TriggerInvalidType"
TRIGGER_INVALID_GITHUB_WEBHOOK = "TriggerInvalidGitHubWebHook"
TRIGGER_INVALID_IMAGE = "TriggerInvalidImage"
TRIGGER_INVALID_PIPELINE = "TriggerInvalidPipeline"
NODE_SELECTOR_NOT_VALID = "NodeSelectorNotValid"
TOLERATION_NOT_VALID = "TolerationNotValid"
SCHEDULER_NAME_NOT_VALID = "SchedulerNameNotValid"
RUNTIME_CLASS_NAME_NOT_VALID = "RuntimeClassNameNotValid"
# Ours (no upstream equivalent): a Secret/ConfigMap name that only the build Pod would use
# (env valueFrom, paramValues, volume sources) is not a valid Kubernetes name.
REFERENCE_NAME_INVALID = "ReferenceNameInvalid"
# Ours: a volume override uses a node-level source (hostPath, nfs, ...) the operator does
# not allow (BUILDWRIGHT_EXTRA_VOLUME_SOURCES).
VOLUME_SOURCE_NOT_ALLOWED = "VolumeSourceNotAllowed"

# --- Parameters (Build and BuildRun) ---------------------------------------------------------
RESTRICTED_PARAMETERS_IN_USE = "RestrictedParametersInUse"
UNDEFINED_PARAMETER = "UndefinedParameter"
WRONG_PARAMETER_VALUE_TYPE = "WrongParameterValueType"
MISSING_PARAMETER_VALUES = "MissingParameterValues"
INCONSISTENT_PARAMETER_VALUES = "InconsistentParameterValues"
EMPTY_ARRAY_ITEM_PARAMETER_VALUES = "EmptyArrayItemParameterValues"
INCOMPLETE_CONFIGMAP_VALUE_PARAMETER_VALUES = "IncompleteConfigMapValueParameterValues"
INCOMPLETE_SECRET_VALUE_PARAMETER_VALUES = "IncompleteSecretValueParameterValues"

# --- BuildRun Succeeded condition ------------------------------------------------------------
PENDING = "Pending"
RUNNING = "Running"
STARTED = "Started"
FAILED = "Failed"
STEP_OUT_OF_MEMORY = "StepOutOfMemory"
POD_EVICTED = "PodEvicted"
VULNERABILITIES_FOUND = "VulnerabilitiesFound"
BUILDRUN_TIMEOUT = "BuildRunTimeout"
BUILDRUN_CANCELED = "BuildRunCanceled"
BUILDRUN_NAME_INVALID = "BuildRunNameInvalid"
BUILDRUN_NO_REF_OR_SPEC = "BuildRunNoRefOrSpec"
BUILDRUN_AMBIGUOUS_BUILD = "BuildRunAmbiguousBuild"
BUILDRUN_BUILD_FIELD_OVERRIDE_FORBIDDEN = "BuildRunBuildFieldOverrideForbidden"
BUILD_NOT_FOUND = "BuildNotFound"
BUILD_REGISTRATION_FAILED = "BuildRegistrationFailed"
SERVICE_ACCOUNT_NOT_FOUND = "ServiceAccountNotFound"
UNKNOWN_STRATEGY_KIND = "UnknownStrategyKind"
TASKRUN_GENERATION_FAILED = "TaskRunGenerationFailed"
POD_CREATION_FAILED = "PodCreationFailed"
VOLUME_DOES_NOT_EXIST = "VolumeDoesNotExist"
TASKRUN_IS_MISSING = "TaskRunIsMissing"
EXCEEDED_NODE_RESOURCES = "ExceededNodeResources"
PULL_IMAGE_FAILED = "PullImageFailed"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"

# --- Git source step (failureDetails.reason) --------------------------------------------------
GIT_AUTH_INVALID_USER_OR_PASS = "GitAuthInvalidUserOrPass"
GIT_AUTH_INVALID_KEY = "GitAuthInvalidKey"
GIT_REVISION_NOT_FOUND = "GitRevisionNotFound"
GIT_REMOTE_REPOSITORY_NOT_FOUND = "GitRemoteRepositoryNotFound"
GIT_REMOTE_REPOSITORY_PRIVATE = "GitRemoteRepositoryPrivate"
GIT_BASIC_AUTH_INCOMPLETE = "GitBasicAuthIncomplete"
GIT_SSH_AUTH_UNEXPECTED = "GitSSHAuthUnexpected"
GIT_SSH_AUTH_EXPECTED = "GitSSHAuthExpected"
AUTH_UNEXPECTED_HTTP = "AuthUnexpectedHTTP"
GIT_ERROR = "GitError"
