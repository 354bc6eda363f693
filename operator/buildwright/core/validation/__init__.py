"""Validation of Builds and BuildRuns, one module per concern (as upstream's `pkg/validate/`):
`build` (registration, in order), `buildrun` (before a Pod), `source`, `strategy`, `output`,
`env`, `triggers`, `scheduling`, and `common` for what they share. Every check is a pure
function returning a `Failure` (reason and message) or None; `docs/reasons.md` lists the
reasons."""

from buildwright.core.validation.build import validate_build, validate_build_name
from buildwright.core.validation.buildrun import (
    merged_parameter_failure,
    validate_buildrun_overrides,
    validate_buildrun_platforms,
    validate_buildrun_request,
    validate_embedded_build,
)
from buildwright.core.validation.common import (
    REGISTERED,
    BuildFacts,
    BuildRegistration,
    parse_strategy,
    referenced_secrets,
    source_secret,
    strategy_kind,
)
from buildwright.core.validation.env import (
    DEFAULT_FORBIDDEN_ENV,
    DEFAULT_FORBIDDEN_ENV_NAMES,
    ForbiddenEnvNames,
    forbidden_env_names,
)
from buildwright.core.validation.source import (
    PROBE_AUTH_REQUIRED,
    ProbePolicy,
    probe_unreachable_message,
    probe_url,
    repository_to_probe,
    source_mismatch,
)
from buildwright.core.validation.strategy import validate_strategy

__all__ = [
    "DEFAULT_FORBIDDEN_ENV",
    "DEFAULT_FORBIDDEN_ENV_NAMES",
    "PROBE_AUTH_REQUIRED",
    "REGISTERED",
    "BuildFacts",
    "BuildRegistration",
    "ForbiddenEnvNames",
    "ProbePolicy",
    "forbidden_env_names",
    "merged_parameter_failure",
    "parse_strategy",
    "probe_unreachable_message",
    "probe_url",
    "referenced_secrets",
    "repository_to_probe",
    "source_mismatch",
    "source_secret",
    "strategy_kind",
    "validate_build",
    "validate_build_name",
    "validate_buildrun_overrides",
    "validate_buildrun_platforms",
    "validate_buildrun_request",
    "validate_embedded_build",
    "validate_strategy",
]
