"""The steps of a BuildStrategy or ClusterBuildStrategy: `buildSteps` ⇄ `steps`, with the
legacy `$(build.*)` references rewritten to parameters and back."""

from __future__ import annotations

from typing import Any

from buildwright.api.conversion.common import (
    BUILDER_IMAGE_PARAM,
    DOCKERFILE_PARAM,
    JSON,
    STEP_FIELDS,
    Meta,
    Part,
    group,
)

LEGACY_TO_BETA = (
    ("$(params.DOCKERFILE)", "$(params.dockerfile)", DOCKERFILE_PARAM),
    ("$(build.dockerfile)", "$(params.dockerfile)", DOCKERFILE_PARAM),
    ("$(build.builder.image)", "$(params.builder-image)", BUILDER_IMAGE_PARAM),
)


BETA_TO_LEGACY = (
    ("$(params.dockerfile)", "$(params.DOCKERFILE)", DOCKERFILE_PARAM),
    ("$(params.builder-image)", "$(build.builder.image)", BUILDER_IMAGE_PARAM),
)


def rewrite_step(
    step: JSON, replacements: tuple[tuple[str, str, str], ...], used: set[str]
) -> JSON:
    """Rewrite placeholders in command, args and env values (never in image), noting use."""

    def rewrite(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        for old, new, param in replacements:
            if old in text:
                used.add(param)
                text = text.replace(old, new)
        return text

    out = dict(step)
    for field in ("command", "args"):
        if isinstance(step.get(field), list):
            out[field] = [rewrite(item) for item in step[field]]
    if isinstance(step.get("env"), list):
        out["env"] = [
            {**var, "value": rewrite(var["value"])}
            if isinstance(var, dict) and "value" in var
            else var
            for var in step["env"]
        ]
    return out


def steps_to_beta(part: Part, _meta: Meta) -> Part:
    out: JSON = {}
    used: set[str] = set()
    if "buildSteps" in part:
        steps = part["buildSteps"]
        if isinstance(steps, list):
            out["steps"] = [
                rewrite_step({k: s[k] for k in STEP_FIELDS if k in s}, LEGACY_TO_BETA, used)
                if isinstance(s, dict)
                else s
                for s in steps
            ]
        else:
            out["steps"] = steps
    params = part.get("parameters")
    if "parameters" in part:
        out["parameters"] = list(params) if isinstance(params, list) else params
    declared = {p.get("name") for p in params or [] if isinstance(p, dict)}
    synthesized: list[JSON] = []
    if DOCKERFILE_PARAM in used and DOCKERFILE_PARAM not in declared:
        synthesized.append(
            {
                "name": DOCKERFILE_PARAM,
                "description": "The Dockerfile to be built.",
                "type": "string",
                "default": "Dockerfile",
            }
        )
    if BUILDER_IMAGE_PARAM in used and BUILDER_IMAGE_PARAM not in declared:
        synthesized.append(
            {"name": BUILDER_IMAGE_PARAM, "description": "The builder image.", "type": "string"}
        )
    if synthesized:
        existing = out.get("parameters")
        out["parameters"] = (existing if isinstance(existing, list) else []) + synthesized
    return out


def is_migrated_param(param: Any) -> str | None:
    if not isinstance(param, dict) or param.get("type") != "string":
        return None
    if param.get("name") == DOCKERFILE_PARAM and param.get("default") == "Dockerfile":
        return DOCKERFILE_PARAM
    if param.get("name") == BUILDER_IMAGE_PARAM and "default" not in param:
        return BUILDER_IMAGE_PARAM
    return None


def steps_to_alpha(part: Part, _meta: Meta) -> Part:
    out: JSON = {}
    migrated: set[str] = set()
    params = part.get("parameters")
    if isinstance(params, list):
        kept = []
        for param in params:
            name = is_migrated_param(param)
            if name is None:
                kept.append(param)
            else:
                migrated.add(name)
        if kept or not migrated:
            out["parameters"] = kept
    elif "parameters" in part:
        out["parameters"] = params
    replacements = tuple(r for r in BETA_TO_LEGACY if r[2] in migrated)
    if "steps" in part:
        steps = part["steps"]
        if isinstance(steps, list):
            out["buildSteps"] = [
                rewrite_step(s, replacements, set()) if isinstance(s, dict) else s for s in steps
            ]
        else:
            out["buildSteps"] = steps
    return out


STRATEGY_SPEC_GROUPS = (
    group("steps", ("buildSteps", "steps", "parameters"), steps_to_beta, steps_to_alpha),
)
