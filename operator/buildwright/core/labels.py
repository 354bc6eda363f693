"""Kubernetes name and label checks with Kubernetes' own error texts.

Shipwright joins these texts (`, `) into Build status messages and BuildRun condition
messages (BuildNameInvalid, NodeSelectorNotValid, TolerationNotValid, …), so users compare
them with what they know from kubectl. The texts follow k8s.io/apimachinery v0.36, the
version upstream Shipwright builds with: label keys/values and qualified names report lengths
in "bytes", DNS-1123 subdomains (runtimeClassName) still in "characters".

Lengths are measured in UTF-8 bytes, like Go's `len(string)`.
"""

from __future__ import annotations

import re

_LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY_ERR = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_KEY_MAX = 63
_LABEL_KEY_RE = re.compile(_LABEL_KEY_FMT)

_LABEL_VALUE_FMT = f"({_LABEL_KEY_FMT})?"
_LABEL_VALUE_ERR = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)
LABEL_VALUE_MAX = 63
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_ERR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
DNS1123_SUBDOMAIN_MAX = 253
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)


def _byte_len(value: str) -> int:
    return len(value.encode("utf-8"))


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    # Kubernetes puts ", " after every example and " or " between them, which yields the
    # double space users see ("'MyName',  or 'my.name'"); reproduced on purpose.
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    listed = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {listed}regex used for validation is '{fmt}')"


def _max_len_error(length: int, unit: str) -> str:
    return f"must be no more than {length} {unit}"


def _subdomain_errors(value: str, unit: str) -> list[str]:
    errors: list[str] = []
    if _byte_len(value) > DNS1123_SUBDOMAIN_MAX:
        errors.append(_max_len_error(DNS1123_SUBDOMAIN_MAX, unit))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errors.append(_regex_error(_DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errors


def dns1123_subdomain_errors(value: str) -> list[str]:
    """Why `value` is not a DNS-1123 subdomain (e.g. a RuntimeClass name); empty if it is."""
    return _subdomain_errors(value, "characters")


def qualified_name_errors(value: str) -> list[str]:
    """Why `value` is not a qualified name (label key: `[prefix/]name`); empty if it is."""
    errors: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend("prefix part " + msg for msg in _subdomain_errors(prefix, "bytes"))
    else:
        return [
            "a valid label key "
            + _regex_error(_LABEL_KEY_ERR, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errors.append("name part must be non-empty")
    elif _byte_len(name) > _LABEL_KEY_MAX:
        errors.append("name part " + _max_len_error(_LABEL_KEY_MAX, "bytes"))
    if not _LABEL_KEY_RE.fullmatch(name):
        errors.append(
            "name part "
            + _regex_error(_LABEL_KEY_ERR, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
        )
    return errors


def label_value_errors(value: str) -> list[str]:
    """Why `value` is not a valid label value (the empty string is valid); empty if it is."""
    errors: list[str] = []
    if _byte_len(value) > LABEL_VALUE_MAX:
        errors.append(_max_len_error(LABEL_VALUE_MAX, "bytes"))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errors.append(
            _regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return errors


def is_valid_label_value(value: str) -> bool:
    """True when `value` may be used as a label value."""
    return not label_value_errors(value)


def is_qualified_name(value: str) -> bool:
    """True when `value` may be used as a label key."""
    return not qualified_name_errors(value)


def is_dns1123_subdomain(value: str) -> bool:
    """True when `value` is a DNS-1123 subdomain."""
    return not dns1123_subdomain_errors(value)
