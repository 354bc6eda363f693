"""Build registration and BuildRun preflight checks (spec §2.6, §3.1, §3.4, §7.1, §7.6, §7.7).

Everything here is a pure decision over objects the kopf shell has already read. The shell
gathers the facts (which referenced Secrets exist, the strategy object, the result of probing
the Git repository) into `BuildFacts` and writes back what these functions return.

Upstream quirks kept on purpose, because users and scripts observe them:
- Build registration runs its validators in a fixed order and stops after the first validator
  that set a reason; *inside* the strategy, output, env, triggers, nodeSelector and tolerations
  validators every check runs and the last failure found wins.
- BuildRun-level checks (overrides, tolerations, nodeSelector…) stop at the first failure and
  word toleration key/value errors differently from the Build-level ones.
- An explicitly empty `output.timestamp` passes Build validation (it fails later, when the Pod
  is rendered); only an absent field means "no timestamp".
- A source whose `type` does not match its fields does not stop a Build from registering.

Deliberate improvement: for an embedded `build.spec`, upstream requeues forever when the env
or the source type is invalid (those validators return errors instead of setting a reason).
`validate_embedded_build` instead fails the BuildRun with `BuildRegistrationFailed` and the
validation message.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from buildwright.api.base import EnvVar, Toleration, Volume
from buildwright.api.v1beta1 import (
    Build,
    BuildRun,
    BuildRunSpec,
    BuildSpec,
    BuildStrategy,
    ClusterBuildStrategy,
    ImagePlatform,
    StepResourceOverride,
    StrategyVolume,
    Trigger,
)
from buildwright.core import preflight, reasons, references
from buildwright.core.formats import go_quote
from buildwright.core.labels import (
    dns1123_subdomain_errors,
    label_value_errors,
    qualified_name_errors,
)
from buildwright.core.parameters import merge_param_values, validate_parameters
from buildwright.core.reasons import Failure, Reason

AnyStrategy = BuildStrategy | ClusterBuildStrategy
#: A validator bound to its inputs; lists of these run lazily, in order.
Check = Callable[[], Failure | None]

NAMESPACED_STRATEGY_KIND = preflight.BUILD_STRATEGY
CLUSTER_STRATEGY_KIND = preflight.CLUSTER_BUILD_STRATEGY

VERIFY_REPOSITORY_ANNOTATION = "build.shipwright.io/verify.repository"

#: What the shell puts into `BuildFacts.repository_probe` when the anonymous probe of an
#: http(s) repository was answered with "authentication required" (private or non-existent
#: repository). Any other non-None value is taken as the raw error text of the probe.
PROBE_AUTH_REQUIRED = "authentication required"

#: Default of `FORBIDDEN_ENV_VAR_NAMES` (§7.7); an entry ending in `*` is a prefix.
DEFAULT_FORBIDDEN_ENV_NAMES: tuple[str, ...] = (
    "LD_*",
    "BASH_FUNC_*",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "LD_DEBUG",
    "LD_PROFILE",
    "BASH_ENV",
    "ENV",
    "CDPATH",
    "PYTHONSTARTUP",
    "PERL5OPT",
    "PERLLIB",
    "PERL5LIB",
    "RUBYOPT",
    "NODE_OPTIONS",
)

LABEL_OS = "kubernetes.io/os"
LABEL_ARCH = "kubernetes.io/arch"


# ---------------------------------------------------------------------------------------------
# Inputs and outputs


@dataclass(frozen=True)
class ForbiddenEnvNames:
    """Environment variable names users may not set: exact names and name prefixes."""

    names: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> ForbiddenEnvNames:
        """From list entries; `X*` forbids every name starting with `X`, blanks are skipped."""
        names: set[str] = set()
        prefixes: list[str] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if entry.endswith("*"):
                prefixes.append(entry[:-1])
            else:
                names.add(entry)
        return cls(frozenset(names), tuple(prefixes))

    @classmethod
    def from_setting(cls, setting: str | None) -> ForbiddenEnvNames:
        """From the comma-separated `FORBIDDEN_ENV_VAR_NAMES` value; unset/empty = default."""
        if not setting:
            return DEFAULT_FORBIDDEN_ENV
        return cls.parse(setting.split(","))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name in self.names or any(name.startswith(p) for p in self.prefixes)


DEFAULT_FORBIDDEN_ENV = ForbiddenEnvNames.parse(DEFAULT_FORBIDDEN_ENV_NAMES)


#: How callers name the forbidden env list: parsed, as raw `FORBIDDEN_ENV_VAR_NAMES` entries,
#: or None for the default.
ForbiddenEnvSetting = ForbiddenEnvNames | Sequence[str] | None


def forbidden_env_names(setting: ForbiddenEnvSetting) -> ForbiddenEnvNames:
    """The forbidden-name list a setting stands for (None: the default of §7.7)."""
    if setting is None:
        return DEFAULT_FORBIDDEN_ENV
    if isinstance(setting, ForbiddenEnvNames):
        return setting
    if isinstance(setting, str):
        return ForbiddenEnvNames.from_setting(setting)
    return ForbiddenEnvNames.parse(setting)


@dataclass(frozen=True)
class BuildFacts:
    """What the shell found out about the world a Build refers to, plus configuration."""

    #: Names of the Secrets from `referenced_secrets()` that exist in the Build's namespace.
    existing_secrets: frozenset[str] = frozenset()
    #: The strategy named by `spec.strategy` (kind per `strategy_kind()`), None if not found.
    strategy: AnyStrategy | None = None
    #: None when the repository was not probed or the probe succeeded; `PROBE_AUTH_REQUIRED`
    #: or the probe's error text otherwise (see `repository_to_probe()`).
    repository_probe: str | None = None
    #: Env names users may not set (`FORBIDDEN_ENV_VAR_NAMES`); None means the default.
    forbidden_env: ForbiddenEnvSetting = None
    #: Volume sources allowed in overrides beyond `SAFE_VOLUME_SOURCES` (an operator setting).
    extra_volume_sources: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BuildRegistration:
    """The outcome of Build validation, as written to the Build's status."""

    registered: bool
    reason: str
    message: str

    def to_status(self) -> dict[str, str]:
        """The Build `status` fields (`registered` is the string "True"/"False")."""
        return {
            "registered": "True" if self.registered else "False",
            "reason": self.reason,
            "message": self.message,
        }


REGISTERED = BuildRegistration(True, Reason.SUCCEEDED, reasons.ALL_VALIDATIONS_SUCCEEDED)


# ---------------------------------------------------------------------------------------------
# Helpers


def _last(failures: Iterable[Failure | None]) -> Failure | None:
    """The last failure of checks that all run (upstream overwrites the status each time)."""
    found: Failure | None = None
    for failure in failures:
        if failure is not None:
            found = failure
    return found


def _first(failures: Iterable[Failure | None]) -> Failure | None:
    """The first failure; later checks are not evaluated (the iterable is lazy)."""
    for failure in failures:
        if failure is not None:
            return failure
    return None


def parse_strategy(body: Mapping[str, Any]) -> AnyStrategy:
    """A strategy object as read from the API (v1beta1), typed by its `kind`."""
    if body.get("kind") == CLUSTER_STRATEGY_KIND:
        return ClusterBuildStrategy.model_validate(body)
    return BuildStrategy.model_validate(body)


def strategy_kind(spec: BuildSpec) -> str:
    """The kind of strategy to look up; absent means a namespaced BuildStrategy."""
    return preflight.strategy_kind(spec.strategy.kind)


def source_secret(spec: BuildSpec) -> str | None:
    """The Secret the source step uses: the clone secret of a Git source, the pull secret of
    an OCI artifact, none for a Local source. The source's `type` decides, not which fields
    are set. An empty name is returned as it is: it names no Secret that can exist."""
    source = spec.source
    if source is None:
        return None
    if source.type == "Git":
        return source.git.clone_secret if source.git else None
    if source.type == "OCI":
        return source.oci_artifact.pull_secret if source.oci_artifact else None
    return None


def referenced_secrets(spec: BuildSpec) -> set[str]:
    """Secrets whose existence decides registration: the shell checks and watches these.

    Empty names are left out: no Secret can have one, so the validator reports them missing
    without a lookup.
    """
    names = {spec.output.push_secret, source_secret(spec)}
    return {name for name in names if name}


# ---------------------------------------------------------------------------------------------
# Build validators (§2.6), each returning the failure it would write to the status


def _classify_git_url(url: str) -> tuple[str, str | None]:
    """(protocol, parse error) of a Git URL the way go-git's endpoint parser sees it."""
    if re.match(r"[^:]+://", url):
        try:
            parsed = urllib.parse.urlsplit(url)
            _ = parsed.port  # raises for a non-numeric port, as Go's url.Parse does
        except ValueError as error:
            return "", f"parse {go_quote(url)}: {error}"
        return parsed.scheme.lower(), None
    if re.fullmatch(r"(?:[^@]+@)?[^:\s]+:[^\\].*", url, flags=re.DOTALL):
        return "ssh", None
    return "file", None


def probe_unreachable_message(
    host: str, port: int | None, *, no_such_host: bool, refused: bool, detail: str
) -> str:
    """What `repository_probe` holds when the probe found no server: the words of Go's
    resolver and dialer, which upstream reports (`lookup <host>: no such host`, `connect:
    connection refused`) and users search for, then the system's own words and what to check."""
    address = f"{host}:{port}" if port else host
    if no_such_host:
        return f"lookup {host}: no such host ({detail}); check the host name in the source URL"
    if refused:
        return (
            f"dial tcp {address}: connect: connection refused; check the host and port in"
            " the source URL and that the Git server is running"
        )
    return f"dial tcp {address}: {detail}; check the source URL and the network to its host"


@dataclass(frozen=True)
class ProbePolicy:
    """Whether and where the operator may probe repositories (`verify.repository`): the
    probe is a request the operator makes to a URL a Build author wrote."""

    #: False: never probe (the annotation is then accepted without a check).
    enabled: bool = True
    #: When set, only these hosts (lower case, without port) are probed.
    allowed_hosts: frozenset[str] | None = None


def probe_url(url: str, policy: ProbePolicy = ProbePolicy()) -> str | None:
    """The smart-HTTP ref advertisement URL of `url`, rebuilt from its parsed parts, or None
    when it must not be probed.

    Only http and https; userinfo, query and fragment are dropped (a `#` must not cut off
    the appended path, credentials in the URL must not be sent), and the host must be in the
    policy's allow-list when it has one.
    """
    if not policy.enabled:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    if policy.allowed_hosts is not None and host.lower() not in policy.allowed_hosts:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{netloc}{path}/info/refs?service=git-upload-pack"


def repository_to_probe(build: Build) -> str | None:
    """The http(s) URL the shell must probe anonymously (ls-remote style), or None.

    Only for `type: Git` without `cloneSecret` and annotation verify.repository = "true".
    What is requested is `probe_url` of it.
    """
    spec = build.spec
    if spec.source is None or spec.source.type != "Git" or spec.source.git is None:
        return None
    git = spec.source.git
    if git.clone_secret is not None:
        return None
    annotations = build.metadata.get("annotations") or {}
    if annotations.get(VERIFY_REPOSITORY_ANNOTATION) != "true":
        return None
    protocol, error = _classify_git_url(git.url)
    if error is None and protocol in ("http", "https"):
        return git.url
    return None


def validate_source_url(build: Build, repository_probe: str | None) -> Failure | None:
    """#2 sourceurl: the verify.repository annotation and, if "true", the repository."""
    spec = build.spec
    if spec.source is None or spec.source.type != "Git" or spec.source.git is None:
        return None
    git = spec.source.git
    if git.clone_secret is not None:
        return None
    annotations = build.metadata.get("annotations") or {}
    setting = annotations.get(VERIFY_REPOSITORY_ANNOTATION, "")
    if setting in ("", "false"):
        return None
    if setting != "true":
        return Failure(
            Reason.REMOTE_REPOSITORY_UNREACHABLE,
            f"the annotation {VERIFY_REPOSITORY_ANNOTATION} was not properly defined,"
            " supported values are true or false",
        )
    protocol, error = _classify_git_url(git.url)
    if error is not None:
        return Failure(Reason.REMOTE_REPOSITORY_UNREACHABLE, error)
    if protocol in ("http", "https"):
        if repository_probe is None:
            return None
        if repository_probe == PROBE_AUTH_REQUIRED:
            return Failure(Reason.REMOTE_REPOSITORY_UNREACHABLE, "remote repository unreachable")
        return Failure(Reason.REMOTE_REPOSITORY_UNREACHABLE, repository_probe)
    if protocol == "file":
        return Failure(Reason.REMOTE_REPOSITORY_UNREACHABLE, "invalid source url")
    if protocol == "ssh":
        return Failure(
            Reason.REMOTE_REPOSITORY_UNREACHABLE, "the source url requires authentication"
        )
    return None


def validate_secrets(spec: BuildSpec, existing_secrets: frozenset[str]) -> Failure | None:
    """#3 secrets: push and source secret exist (a shared name counts as the source's)."""
    wanted: dict[str, str] = {}
    if spec.output.push_secret is not None:
        wanted[spec.output.push_secret] = Reason.SPEC_OUTPUT_SECRET_REF_NOT_FOUND
    source = source_secret(spec)
    if source is not None:
        wanted[source] = Reason.SPEC_SOURCE_SECRET_REF_NOT_FOUND
    missing = sorted(name for name in wanted if not name or name not in existing_secrets)
    if len(missing) > 1:
        return Failure(
            Reason.MULTIPLE_SECRET_REF_NOT_FOUND, "missing secrets are " + ",".join(missing)
        )
    if missing:
        return Failure(wanted[missing[0]], f"referenced secret {missing[0]} not found")
    return None


# The volume sources a Build or BuildRun may put in place of a strategy volume: those the
# Pod Security Standard "restricted" allows. The others reach into the node (hostPath, and
# the network or block devices the kubelet mounts: nfs, iscsi, rbd, ...) or run code on it
# (gitRepo); an operator setting (`BUILDWRIGHT_EXTRA_VOLUME_SOURCES`) may add some.
SAFE_VOLUME_SOURCES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
})  # fmt: skip


def volume_source_failure(volume: Volume, extra_sources: frozenset[str]) -> Failure | None:
    """VolumeSourceNotAllowed when an override uses a source outside the allowed ones."""
    sources = sorted(k for k in volume.model_dump(by_alias=True, exclude_none=True) if k != "name")
    refused = [s for s in sources if s not in SAFE_VOLUME_SOURCES | extra_sources]
    if not refused:
        return None
    return Failure(
        Reason.VOLUME_SOURCE_NOT_ALLOWED,
        f"Volume {go_quote(volume.name)} uses {', '.join(refused)}, which Builds and BuildRuns"
        f" may not use; allowed: {', '.join(sorted(SAFE_VOLUME_SOURCES | extra_sources))}",
    )


def volumes_failure(
    strategy_volumes: Sequence[StrategyVolume] | None,
    volumes: Sequence[Volume] | None,
    extra_sources: frozenset[str] = frozenset(),
) -> Failure | None:
    """Volumes may only replace strategy volumes marked `overridable: true`, and only with
    the allowed sources (first failure)."""
    by_name = {volume.name: volume for volume in strategy_volumes or ()}
    for volume in volumes or ():
        declared = by_name.get(volume.name)
        if declared is None:
            return Failure(
                Reason.UNDEFINED_VOLUME,
                f"Volume {go_quote(volume.name)} is not defined in the Strategy",
            )
        if not declared.overridable:
            return Failure(
                Reason.VOLUME_NOT_OVERRIDABLE,
                f"Volume {go_quote(volume.name)} is not overridable in the Strategy",
            )
        refused = volume_source_failure(volume, extra_sources)
        if refused is not None:
            return refused
    return None


def step_resources_failure(
    strategy: AnyStrategy, overrides: Sequence[StepResourceOverride] | None
) -> Failure | None:
    """Every stepResources entry must name a strategy step (first failure)."""
    steps = {step.name for step in strategy.spec.steps}
    for override in overrides or ():
        if override.name not in steps:
            return Failure(
                Reason.UNDEFINED_STEP_RESOURCE,
                f"stepResources references step {go_quote(override.name)}"
                " which does not exist in the build strategy",
            )
    return None


def validate_strategy(
    spec: BuildSpec,
    namespace: str,
    strategy: AnyStrategy | None,
    extra_volume_sources: frozenset[str] = frozenset(),
) -> Failure | None:
    """#4 strategy: kind, existence, then parameters, volumes, step resources (last wins)."""
    kind = strategy_kind(spec)
    name = spec.strategy.name
    if kind not in (NAMESPACED_STRATEGY_KIND, CLUSTER_STRATEGY_KIND):
        return Failure(
            Reason.UNKNOWN_BUILD_STRATEGY_KIND,
            f"unknown strategy kind {kind} used, must be one of"
            f" {NAMESPACED_STRATEGY_KIND}, or {CLUSTER_STRATEGY_KIND}",
        )
    if not name:
        return preflight.strategy_not_found(kind, name)
    if strategy is None:
        if kind == NAMESPACED_STRATEGY_KIND:
            return Failure(
                Reason.BUILD_STRATEGY_NOT_FOUND,
                f"buildStrategy {name} does not exist in namespace {namespace}",
            )
        return Failure(
            Reason.CLUSTER_BUILD_STRATEGY_NOT_FOUND, f"clusterBuildStrategy {name} does not exist"
        )
    return _last(
        [
            validate_parameters(strategy.spec.parameters, spec.param_values, check_missing=False),
            volumes_failure(strategy.spec.volumes, spec.volumes, extra_volume_sources),
            step_resources_failure(strategy, spec.strategy.step_resources),
        ]
    )


def source_mismatch(spec: BuildSpec) -> str | None:
    """#5 source: the error text when `source.type` does not match the fields set.

    At Build level this sets no reason (the Build still registers, as upstream).
    """
    source = spec.source
    if source is None:
        return None
    present = {
        "Git": source.git is not None,
        "OCI": source.oci_artifact is not None,
        "Local": source.local is not None,
    }
    if not present[source.type] or any(on for kind, on in present.items() if kind != source.type):
        return "type does not match the source"
    return None


def _is_int64(text: str) -> bool:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return False
    return -(2**63) <= int(text) < 2**63


_PLATFORM_VALUE = re.compile(r"[a-z0-9]{1,64}")


def validate_platforms(
    platforms: Sequence[ImagePlatform] | None, node_selector: Mapping[str, str] | None
) -> Failure | None:
    """Multi-arch preflight for a non-empty platform list (first failure).

    Rules (upstream main): os and arch both set; each `[a-z0-9]{1,64}` (the form Nodes carry
    in their kubernetes.io/os and kubernetes.io/arch labels); no os/arch pair twice; and the
    nodeSelector must not pin kubernetes.io/os or kubernetes.io/arch itself, since the
    controller schedules per platform. An empty or absent list means "no multi-arch".
    """
    if not platforms:
        return None
    seen: set[str] = set()
    for index, platform in enumerate(platforms):
        where = f"spec.output.platforms[{index}]"
        if not platform.os or not platform.arch:
            return Failure(Reason.INVALID_PLATFORM, f"{where} must specify both os and arch")
        for field, value, label in (
            ("os", platform.os, LABEL_OS),
            ("arch", platform.arch, LABEL_ARCH),
        ):
            if not _PLATFORM_VALUE.fullmatch(value):
                return Failure(
                    Reason.INVALID_PLATFORM,
                    f"{where}.{field} {go_quote(value)}: invalid; use the value your Nodes have"
                    f" for label {go_quote(label)}",
                )
        key = f"{platform.os}/{platform.arch}"
        if key in seen:
            return Failure(Reason.INVALID_PLATFORM, f"{where} is a duplicate of {key}")
        seen.add(key)
    for label in (LABEL_OS, LABEL_ARCH):
        if label in (node_selector or {}):
            return Failure(
                Reason.NODE_SELECTOR_PLATFORM_CONFLICT,
                f"nodeSelector must not contain {go_quote(label)} when spec.output.platforms"
                " is set; the build controller manages os/arch scheduling",
            )
    return None


def validate_output(spec: BuildSpec) -> Failure | None:
    """#6 output: timestamp value, then platforms (a platform failure overwrites)."""
    timestamp_failure: Failure | None = None
    timestamp = spec.output.timestamp
    source = spec.source
    empty_source = source is None or (
        source.git is None and source.oci_artifact is None and source.local is None
    )
    if timestamp in (None, "", "Zero", "BuildTimestamp"):
        pass
    elif timestamp == "SourceTimestamp":
        if empty_source:
            timestamp_failure = Failure(
                Reason.OUTPUT_TIMESTAMP_NOT_SUPPORTED,
                "cannot use SourceTimestamp output image setting with an empty build source",
            )
    elif not _is_int64(timestamp):
        timestamp_failure = Failure(
            Reason.OUTPUT_TIMESTAMP_NOT_VALID,
            "output timestamp value is invalid, must be Zero, SourceTimestamp, BuildTimestamp,"
            " or number",
        )
    return _last([timestamp_failure, validate_platforms(spec.output.platforms, spec.node_selector)])


def validate_build_name(name: str) -> Failure | None:
    """#7 buildname: the name must be usable as the build.shipwright.io/name label value."""
    errors = label_value_errors(name)
    if errors:
        return Failure(Reason.BUILD_NAME_INVALID, ", ".join(errors))
    return None


def env_failure(
    env: Sequence[EnvVar] | None, forbidden: ForbiddenEnvNames = DEFAULT_FORBIDDEN_ENV
) -> Failure | None:
    """#8 env: blank name, forbidden name, value with valueFrom; the last failure wins."""
    failures: list[Failure] = []
    for var in env or ():
        if not var.name:
            failures.append(
                Failure(
                    Reason.SPEC_ENV_NAME_CAN_NOT_BE_BLANK,
                    "name for environment variable must not be blank",
                )
            )
        if var.name in forbidden:
            failures.append(forbidden_env_failure(var.name))
        if var.value and var.value_from is not None:
            failures.append(
                Failure(
                    Reason.SPEC_ENV_ONLY_ONE_OF_VALUE_OR_VALUE_FROM,
                    "only one of value or valueFrom must be specified",
                )
            )
    return _last(failures)


def forbidden_env_failure(name: str) -> Failure:
    """SpecEnvNameForbidden for one variable name."""
    return Failure(
        Reason.SPEC_ENV_NAME_FORBIDDEN,
        f"environment variable {go_quote(name)} is forbidden for security reasons",
    )


def validate_triggers(trigger: Trigger | None) -> Failure | None:
    """#9 triggers: every `when` entry is complete for its type; the last failure wins."""
    failures: list[Failure] = []
    for when in (trigger.when if trigger else None) or ():
        name = go_quote(when.name)
        if not when.name:
            failures.append(
                Failure(
                    Reason.TRIGGER_NAME_CAN_NOT_BE_BLANK,
                    "name is not set on when trigger condition",
                )
            )
        if when.type == "GitHub":
            reason = Reason.TRIGGER_INVALID_GITHUB_WEBHOOK
            if when.github is None:
                failures.append(Failure(reason, f"{name} is missing required attribute `.github`"))
            elif not when.github.events:
                failures.append(
                    Failure(reason, f"{name} is missing required attribute `.github.events`")
                )
        elif when.type == "Image":
            reason = Reason.TRIGGER_INVALID_IMAGE
            if when.image is None:
                failures.append(Failure(reason, f"{name} is missing required attribute `.image`"))
            elif not when.image.names:
                failures.append(
                    Failure(reason, f"{name} is missing required attribute `.image.names`")
                )
        elif when.type == "Pipeline":
            reason = Reason.TRIGGER_INVALID_PIPELINE
            ref = when.object_ref
            if ref is None:
                failures.append(
                    Failure(reason, f"{name} is missing required attribute `.objectRef`")
                )
            else:
                if not ref.status:
                    failures.append(
                        Failure(reason, f"{name} is missing required attribute `.objectRef.status`")
                    )
                if not ref.name and not ref.selector:
                    failures.append(
                        Failure(
                            reason,
                            f"{name} is missing required attributes `.objectRef.name`"
                            " or `.objectRef.selector`",
                        )
                    )
                if ref.name and ref.selector:
                    failures.append(
                        Failure(
                            reason,
                            f"{name} contains `.objectRef.name` and `.objectRef.selector`,"
                            " must be only one",
                        )
                    )
        else:
            failures.append(
                Failure(
                    Reason.TRIGGER_INVALID_TYPE,
                    f"{name} contains an invalid type {go_quote(when.type)}",
                )
            )
    return _last(failures)


def _node_selector_failures(node_selector: Mapping[str, str] | None) -> list[Failure]:
    failures: list[Failure] = []
    for key, value in (node_selector or {}).items():
        key_errors = qualified_name_errors(key)
        if key_errors:
            failures.append(
                Failure(
                    Reason.NODE_SELECTOR_NOT_VALID,
                    "Node selector key not valid: " + ", ".join(key_errors),
                )
            )
        value_errors = label_value_errors(value)
        if value_errors:
            failures.append(
                Failure(
                    Reason.NODE_SELECTOR_NOT_VALID,
                    "Node selector value not valid: " + ", ".join(value_errors),
                )
            )
    return failures


def validate_node_selector(node_selector: Mapping[str, str] | None) -> Failure | None:
    """#10 nodeSelector (Build): keys qualified names, values label values; last wins."""
    return _last(_node_selector_failures(node_selector))


_OPERATOR_MESSAGE = "Toleration operator not valid. Must be one of: 'Exists', 'Equal'"
_EFFECT_MESSAGE = "Only the 'NoSchedule' toleration effect is supported."
_SECONDS_MESSAGE = "Specifying TolerationSeconds is not supported."


def _toleration_failures(toleration: Toleration, *, buildrun: bool) -> list[Failure]:
    # Build-level messages are the bare Kubernetes texts; BuildRun-level ones name the field.
    failures: list[str] = []
    key_errors = qualified_name_errors(toleration.key or "")
    if key_errors:
        prefix = "Toleration key not valid: " if buildrun else ""
        failures.append(prefix + ", ".join(key_errors))
    if toleration.operator not in ("Exists", "Equal"):
        failures.append(_OPERATOR_MESSAGE)
    value_errors = label_value_errors(toleration.value or "")
    if value_errors:
        prefix = "Toleration value not valid: " if buildrun else ""
        failures.append(prefix + ", ".join(value_errors))
    if toleration.effect not in (None, "", "NoSchedule"):
        failures.append(_EFFECT_MESSAGE)
    if toleration.toleration_seconds is not None:
        failures.append(_SECONDS_MESSAGE)
    return [Failure(Reason.TOLERATION_NOT_VALID, message) for message in failures]


def validate_tolerations(tolerations: Sequence[Toleration] | None) -> Failure | None:
    """#11 tolerations (Build): every check of every toleration runs; the last failure wins."""
    return _last(
        failure
        for toleration in tolerations or ()
        for failure in _toleration_failures(toleration, buildrun=False)
    )


def validate_scheduler_name(scheduler_name: str | None) -> Failure | None:
    """#12 schedulerName: a qualified name when set (an empty string is not)."""
    if scheduler_name is None:
        return None
    errors = qualified_name_errors(scheduler_name)
    if errors:
        return Failure(
            Reason.SCHEDULER_NAME_NOT_VALID, "Scheduler name not valid: " + ", ".join(errors)
        )
    return None


def validate_runtime_class_name(runtime_class_name: str | None) -> Failure | None:
    """#13 runtimeClassName: a DNS-1123 subdomain when set."""
    if runtime_class_name is None:
        return None
    errors = dns1123_subdomain_errors(runtime_class_name)
    if errors:
        return Failure(
            Reason.RUNTIME_CLASS_NAME_NOT_VALID,
            "RuntimeClassName not valid: " + ", ".join(errors),
        )
    return None


# ---------------------------------------------------------------------------------------------
# Build registration


def validate_build(build: Build, facts: BuildFacts) -> BuildRegistration:
    """Registration of a Build: validations #2–#13 of §2.6 in order, stopping at the first
    that fails. (#1, ownerReferences and SetOwnerReferenceFailed, is the shell's.)"""
    spec = build.spec
    namespace = str(build.metadata.get("namespace") or "")
    name = str(build.metadata.get("name") or "")
    checks: list[Check] = [
        lambda: validate_source_url(build, facts.repository_probe),
        lambda: validate_secrets(spec, facts.existing_secrets),
        lambda: validate_strategy(spec, namespace, facts.strategy, facts.extra_volume_sources),
        lambda: references.invalid_pod_reference(references.pod_references(spec)),
        # #5 source: a mismatch sets no reason upstream, so it cannot stop registration.
        lambda: validate_output(spec),
        lambda: validate_build_name(name),
        lambda: env_failure(spec.env, forbidden_env_names(facts.forbidden_env)),
        lambda: validate_triggers(spec.trigger),
        lambda: validate_node_selector(spec.node_selector),
        lambda: validate_tolerations(spec.tolerations),
        lambda: validate_scheduler_name(spec.scheduler_name),
        lambda: validate_runtime_class_name(spec.runtime_class_name),
    ]
    failure = _first(check() for check in checks)
    if failure is None:
        return REGISTERED
    return BuildRegistration(False, failure.reason, failure.message)


# ---------------------------------------------------------------------------------------------
# BuildRun preflight


def _override_forbidden(field: str) -> Failure:
    return Failure(
        Reason.BUILDRUN_BUILD_FIELD_OVERRIDE_FORBIDDEN,
        f"cannot use '{field}' override and 'buildSpec' simultaneously",
    )


def validate_buildrun_fields(spec: BuildRunSpec) -> Failure | None:
    """§3.1 field rules: exactly one of build.name / build.spec, no overrides with a spec."""
    build = spec.build
    # An empty name references nothing (and looking it up would list every Build).
    if build.spec is None and not build.name:
        return Failure(
            Reason.BUILDRUN_NO_REF_OR_SPEC,
            "no build referenced or specified, either 'buildRef' or 'buildSpec' has to be set",
        )
    if build.spec is None:
        return None
    if build.name:
        return Failure(
            Reason.BUILDRUN_AMBIGUOUS_BUILD,
            "fields 'buildRef' and 'buildSpec' are mutually exclusive",
        )
    if spec.output is not None:
        return _override_forbidden("output")
    if spec.param_values:
        return _override_forbidden("paramValues")
    if spec.env:
        return _override_forbidden("env")
    if spec.timeout is not None:
        return _override_forbidden("timeout")
    if build.spec.trigger is not None:
        return Failure(
            Reason.BUILDRUN_BUILD_FIELD_OVERRIDE_FORBIDDEN,
            "cannot use 'triggers' override in the 'BuildRun', only allowed in the 'Build'",
        )
    if spec.node_selector:
        return _override_forbidden("nodeSelector")
    if spec.tolerations:
        return _override_forbidden("tolerations")
    if spec.scheduler_name is not None:
        return _override_forbidden("schedulerName")
    if spec.runtime_class_name is not None:
        return _override_forbidden("runtimeClassName")
    if spec.step_resources:
        return _override_forbidden("stepResources")
    return None


def validate_buildrun_request(
    buildrun: BuildRun, *, forbidden_env: ForbiddenEnvSetting = None
) -> Failure | None:
    """§7.1 steps 1–2: name, field combinations, forbidden names in the BuildRun's env."""
    name_errors = label_value_errors(str(buildrun.metadata.get("name") or ""))
    if name_errors:
        return Failure(Reason.BUILDRUN_NAME_INVALID, ", ".join(name_errors))
    fields = validate_buildrun_fields(buildrun.spec)
    if fields is not None:
        return fields
    invalid = references.invalid_pod_reference(references.pod_references(buildrun.spec))
    if invalid is not None:
        return invalid
    forbidden = forbidden_env_names(forbidden_env)
    for var in buildrun.spec.env or ():
        if var.name in forbidden:
            return forbidden_env_failure(var.name)
    return None


def validate_embedded_build(
    spec: BuildSpec,
    facts: BuildFacts,
    *,
    namespace: str,
) -> Failure | None:
    """§7.1 step 4 for `build.spec`: BuildRegistrationFailed with the validation message.

    Runs secrets, strategy, source, env, nodeSelector, tolerations and schedulerName (the
    source-url check has nothing to do: a transient Build has no annotations; its empty name is
    a valid label value; output, triggers and runtimeClassName are not checked, as upstream).
    As upstream, every validator runs and a later failure overwrites an earlier one, except
    that a source mismatch or an env failure ends the run at once — upstream requeues there
    forever, we report it.
    """
    last: Failure | None = _last(
        [
            validate_secrets(spec, facts.existing_secrets),
            validate_strategy(spec, namespace, facts.strategy, facts.extra_volume_sources),
            references.invalid_pod_reference(references.pod_references(spec)),
        ]
    )
    mismatch = source_mismatch(spec)
    if mismatch is not None:
        return Failure(Reason.BUILD_REGISTRATION_FAILED, mismatch)
    env = env_failure(spec.env, forbidden_env_names(facts.forbidden_env))
    if env is not None:
        return Failure(Reason.BUILD_REGISTRATION_FAILED, env.message)
    last = _last(
        [
            last,
            validate_node_selector(spec.node_selector),
            validate_tolerations(spec.tolerations),
            validate_scheduler_name(spec.scheduler_name),
        ]
    )
    if last is None:
        return None
    return Failure(Reason.BUILD_REGISTRATION_FAILED, last.message)


def validate_buildrun_overrides(
    spec: BuildRunSpec, strategy: AnyStrategy, extra_volume_sources: frozenset[str] = frozenset()
) -> Failure | None:
    """§7.1 step 11: the BuildRun's own volumes, stepResources and scheduling fields.

    The first failure wins. Platforms are checked by `validate_buildrun_platforms`.
    """
    checks: list[Check] = [
        lambda: volumes_failure(strategy.spec.volumes, spec.volumes, extra_volume_sources),
        lambda: step_resources_failure(strategy, spec.step_resources),
        lambda: next(iter(_node_selector_failures(spec.node_selector)), None),
        lambda: _first(
            next(iter(_toleration_failures(toleration, buildrun=True)), None)
            for toleration in spec.tolerations or ()
        ),
        lambda: validate_scheduler_name(spec.scheduler_name),
        lambda: validate_runtime_class_name(spec.runtime_class_name),
    ]
    return _first(check() for check in checks)


def validate_buildrun_platforms(
    build_spec: BuildSpec, buildrun_spec: BuildRunSpec
) -> Failure | None:
    """Multi-arch preflight on the effective platforms (BuildRun's if non-empty, else the
    Build's) and the merged nodeSelector (BuildRun wins per key).

    Executor mode and node availability (ExecutorNotPipelineRun, NodePlatformNotFound) need
    cluster facts and stay with the shell.
    """
    platforms = build_spec.output.platforms
    if buildrun_spec.output is not None and buildrun_spec.output.platforms:
        platforms = buildrun_spec.output.platforms
    node_selector = {**(build_spec.node_selector or {}), **(buildrun_spec.node_selector or {})}
    return validate_platforms(platforms, node_selector)


def merged_parameter_failure(
    strategy: AnyStrategy, build_spec: BuildSpec, buildrun_spec: BuildRunSpec
) -> Failure | None:
    """§7.1 step 10: §2.8 on Build ∪ BuildRun paramValues (BuildRun wins by name), with
    missing required values flagged."""
    merged = merge_param_values(build_spec.param_values, buildrun_spec.param_values)
    return validate_parameters(strategy.spec.parameters, merged, check_missing=True)
