"""The pure part of the conversion webhook: a `ConversionReview` in, its answer out.

The apiserver posts a `ConversionReview` (apiextensions.k8s.io/v1) to `/convert` whenever an
object is read or written in a version other than the stored one (v1beta1). Any input produces
an answer, never an exception: an exception would reach users as an opaque "conversion webhook
failed" on every `kubectl get`. The conversion of each object is `buildwright.api.conversion`.
"""

from __future__ import annotations

from typing import Any

from buildwright.api.conversion import ConversionError, convert

REVIEW_API_VERSION = "apiextensions.k8s.io/v1"


def _review(uid: str, result: dict[str, Any], converted: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": REVIEW_API_VERSION,
        "kind": "ConversionReview",
        "response": {"uid": uid, "convertedObjects": converted, "result": result},
    }


def failed_review(uid: str, message: str) -> dict[str, Any]:
    """A ConversionReview response reporting `message` as the failure."""
    return _review(uid, {"status": "Failure", "message": message}, [])


def _describe(obj: Any, index: int) -> str:
    if not isinstance(obj, dict):
        return f"object {index}"
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    name = "/".join(str(p) for p in (metadata.get("namespace"), metadata.get("name")) if p)
    return f"object {index} ({obj.get('kind')} {name or '<unnamed>'})"


def handle_review(review: Any) -> dict[str, Any]:
    """Answer a ConversionReview v1: convert every object or report why not.

    Pure and total: a malformed review, a missing uid/objects, an unknown desiredAPIVersion,
    an unknown kind or an object that cannot convert all give `result.status: Failure` with
    a message naming the problem (and the object), never an exception.
    """
    if not isinstance(review, dict):
        return failed_review("", "malformed ConversionReview: the body is not a JSON object")
    request = review.get("request")
    uid = request.get("uid") if isinstance(request, dict) else None
    uid_text = uid if isinstance(uid, str) else ""
    if review.get("kind") not in (None, "ConversionReview"):
        return failed_review(uid_text, f"expected kind ConversionReview, got {review['kind']!r}")
    if review.get("apiVersion") not in (None, REVIEW_API_VERSION):
        return failed_review(
            uid_text,
            f"unsupported ConversionReview apiVersion {review['apiVersion']!r}; "
            f"only {REVIEW_API_VERSION} is served",
        )
    if not isinstance(request, dict):
        return failed_review("", "malformed ConversionReview: missing request")
    if not isinstance(uid, str) or not uid:
        return failed_review("", "malformed ConversionReview: missing request.uid")
    desired = request.get("desiredAPIVersion")
    if not isinstance(desired, str) or not desired:
        return failed_review(uid, "malformed ConversionReview: missing request.desiredAPIVersion")
    objects = request.get("objects")
    if not isinstance(objects, list):
        return failed_review(uid, "malformed ConversionReview: request.objects must be a list")

    converted: list[dict[str, Any]] = []
    for index, obj in enumerate(objects):
        try:
            converted.append(convert(obj, desired))
        except ConversionError as error:
            return failed_review(uid, f"{_describe(obj, index)}: {error}")
        except Exception as error:  # a bug must not take the webhook down with it
            return failed_review(
                uid,
                f"{_describe(obj, index)}: internal error while converting to {desired}: "
                f"{type(error).__name__}: {error}",
            )
    return _review(uid, {"status": "Success"}, converted)
