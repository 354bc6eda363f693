"""An offline checker of objects against a structural CRD schema.

It applies the rules the apiserver applies with strict field validation (the kubectl default):
types, required fields, enums, bounds, int-or-string, and unknown fields are errors unless the
schema node preserves unknown fields. The integration tier repeats the important cases against
the real apiserver; this makes the same checks run in milliseconds for every example object.
"""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def structural_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Every violation of `schema` by `value`, each naming the offending field path."""
    errors: list[str] = []
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str) or isinstance(value, bool):
            errors.append(f"{path}: must be an integer or a string")
        return errors
    expected = schema.get("type")
    if expected:
        ok = isinstance(value, _TYPES[expected]) and not (
            expected in ("integer", "number") and isinstance(value, bool)
        )
        if not ok:
            return [f"{path}: expected {expected}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: unsupported value {value!r}, must be one of {schema['enum']}")
    if "minimum" in schema and isinstance(value, int) and value < schema["minimum"]:
        errors.append(f"{path}: must be >= {schema['minimum']}")
    if "maximum" in schema and isinstance(value, int) and value > schema["maximum"]:
        errors.append(f"{path}: must be <= {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}.{name}: Required value")
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if child == "metadata":
                continue  # ObjectMeta is validated by the apiserver itself, not the CRD schema
            if key in properties:
                errors.extend(structural_errors(item, properties[key], child))
            elif "additionalProperties" in schema:
                errors.extend(structural_errors(item, schema["additionalProperties"], child))
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f'{child}: unknown field "{key}"')
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors.extend(structural_errors(item, schema["items"], f"{path}[{index}]"))
    return errors
