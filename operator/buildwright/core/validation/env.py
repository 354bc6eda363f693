"""Environment variables of Builds and BuildRuns: names present, value or valueFrom, and the
names that change how programs start (FORBIDDEN_ENV_VAR_NAMES, a trailing `*` a prefix),
which are refused."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from buildwright.api.base import EnvVar
from buildwright.core.formats import go_quote
from buildwright.core.reasons import Failure, Reason
from buildwright.core.validation.common import last_failure

#: Default of `FORBIDDEN_ENV_VAR_NAMES`; an entry ending in `*` is a prefix.
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
    """The forbidden-name list a setting stands for (None: the default)."""
    if setting is None:
        return DEFAULT_FORBIDDEN_ENV
    if isinstance(setting, ForbiddenEnvNames):
        return setting
    if isinstance(setting, str):
        return ForbiddenEnvNames.from_setting(setting)
    return ForbiddenEnvNames.parse(setting)


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
    return last_failure(failures)


def forbidden_env_failure(name: str) -> Failure:
    """SpecEnvNameForbidden for one variable name."""
    return Failure(
        Reason.SPEC_ENV_NAME_FORBIDDEN,
        f"environment variable {go_quote(name)} is forbidden for security reasons",
    )
