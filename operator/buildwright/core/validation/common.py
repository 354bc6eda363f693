"""What the validators share: the facts the shell gathers for a Build, the registration
result, the two ways failures combine (the first wins, or the last), and the small readings
of a spec (strategy kind, source secret, referenced Secrets) several checks need."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from buildwright.api.v1beta1 import (
    BuildSpec,
    BuildStrategy,
    ClusterBuildStrategy,
)
from buildwright.core import preflight, reasons
from buildwright.core.reasons import Failure, Reason

if TYPE_CHECKING:  # env.py builds on these helpers; the dataclass only names the type
    from buildwright.core.validation.env import ForbiddenEnvSetting

AnyStrategy = BuildStrategy | ClusterBuildStrategy
#: A validator bound to its inputs; lists of these run lazily, in order.
Check = Callable[[], Failure | None]

NAMESPACED_STRATEGY_KIND = preflight.BUILD_STRATEGY
CLUSTER_STRATEGY_KIND = preflight.CLUSTER_BUILD_STRATEGY


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


def last_failure(failures: Iterable[Failure | None]) -> Failure | None:
    """The last failure of checks that all run (upstream overwrites the status each time)."""
    found: Failure | None = None
    for failure in failures:
        if failure is not None:
            found = failure
    return found


def first_failure(failures: Iterable[Failure | None]) -> Failure | None:
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
