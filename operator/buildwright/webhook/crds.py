"""Pure decisions about the CRDs' conversion settings: which CRDs are ours, whether a CRD
already trusts a CA, and the patch that keeps trusting the previous CA during a rotation."""

from __future__ import annotations

import base64
import copy
from typing import Any

CRD_NAMES = (
    "builds.shipwright.io",
    "buildruns.shipwright.io",
    "buildstrategies.shipwright.io",
    "clusterbuildstrategies.shipwright.io",
)


def trusted_patch(crd: Any, patch: dict[str, Any], ca: bytes) -> dict[str, Any]:
    """`patch` with the CRD's present caBundle kept when that bundle already trusts `ca`: a
    restart (same certificate), or a replica starting after a rotation whose bundle still
    holds the previous CA too, then changes nothing."""
    try:
        current = crd["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"]
        bundle = base64.b64decode(current)
    except (KeyError, TypeError, ValueError):
        return patch
    if ca.strip() not in bundle:
        return patch
    kept = copy.deepcopy(patch)
    kept["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] = current
    return kept


def patch_would_change(target: Any, patch: Any) -> bool:
    """Whether applying JSON merge `patch` to `target` would change it.

    Used so that a restart with the same certificate (a Secret) writes nothing: each CRD
    update makes every apiserver rebuild the CRD's handlers.
    """
    if not isinstance(patch, dict):
        return bool(target != patch)
    if not isinstance(target, dict):
        return True
    for key, value in patch.items():
        if value is None:
            if key in target:
                return True
        elif key not in target or patch_would_change(target[key], value):
            return True
    return False


