"""Build registration: the validators in upstream's order, stopping at the first that sets
a reason (`validate_build`), over facts the shell has already read (`BuildFacts`: which
referenced Secrets exist, the strategy, the result of probing the repository).

Upstream behaviour kept on purpose, because users and scripts observe it:
- the validators run in a fixed order and registration stops after the first that failed;
  *inside* the strategy, output, env, triggers, nodeSelector and tolerations validators every
  check runs and the last failure found wins;
- a source whose `type` does not match its fields does not stop a Build from registering.

One deliberate difference: for an embedded `build.spec`, upstream requeues forever when the
env or the source type is invalid (those validators return errors instead of setting a
reason); `validate_embedded_build` fails the BuildRun with `BuildRegistrationFailed` and the
validation message instead.
"""

from __future__ import annotations

from buildwright.api.v1beta1 import (
    Build,
)
from buildwright.core import references
from buildwright.core.labels import (
    label_value_errors,
)
from buildwright.core.reasons import Failure, Reason
from buildwright.core.validation.common import (
    REGISTERED,
    BuildFacts,
    BuildRegistration,
    Check,
    first_failure,
)
from buildwright.core.validation.env import env_failure, forbidden_env_names
from buildwright.core.validation.output import validate_output
from buildwright.core.validation.scheduling import (
    validate_node_selector,
    validate_runtime_class_name,
    validate_scheduler_name,
    validate_tolerations,
)
from buildwright.core.validation.source import validate_secrets, validate_source_url
from buildwright.core.validation.strategy import validate_strategy
from buildwright.core.validation.triggers import validate_triggers


def validate_build_name(name: str) -> Failure | None:
    """The name must be usable as the build.shipwright.io/name label value."""
    errors = label_value_errors(name)
    if errors:
        return Failure(Reason.BUILD_NAME_INVALID, ", ".join(errors))
    return None


def validate_build(build: Build, facts: BuildFacts) -> BuildRegistration:
    """Registration of a Build: the validations in upstream's order, stopping at the first
    that fails. (The first of upstream's, ownerReferences and SetOwnerReferenceFailed, is
    the shell's.)"""
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
    failure = first_failure(check() for check in checks)
    if failure is None:
        return REGISTERED
    return BuildRegistration(False, failure.reason, failure.message)


