"""`spec.trigger.when[]`: each entry named and complete for its type (GitHub, Image,
Pipeline); the last failure wins."""

from __future__ import annotations

from buildwright.api.v1beta1 import (
    Trigger,
)
from buildwright.core.formats import go_quote
from buildwright.core.reasons import Failure, Reason
from buildwright.core.validation.common import last_failure


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
    return last_failure(failures)
