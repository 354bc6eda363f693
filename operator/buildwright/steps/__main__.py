"""``buildwright-step <subcommand> [args…]``: the programs that run inside a build Pod.

One console script for all in-Pod steps keeps the step image to a single entry point. Each
subcommand's module is imported only when chosen, so a step pays only for what it runs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS = {
    "git-source": "clone a Git repository into the source workspace",
    "bundle": "unpack an OCI artifact into the source workspace",
    "waiter": "wait for a local source upload ('start'), or end the wait ('done')",
    "image-processing": "push, mutate and scan the output image",
    "results": "report result files through the termination message",
}


def usage() -> str:
    lines = ["usage: buildwright-step <subcommand> [args...]", "", "subcommands:"]
    lines += [f"  {name:<17} {text}" for name, text in SUBCOMMANDS.items()]
    lines.append("")
    lines.append("Run 'buildwright-step <subcommand> --help' for its arguments.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not args or args[0] not in SUBCOMMANDS:
        if args:
            print(f"buildwright-step: unknown subcommand {args[0]!r}", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    command, rest = args[0], args[1:]
    result: int | None
    if command == "git-source":
        from buildwright.steps import git_source

        result = git_source.main(rest)
    elif command == "bundle":
        from buildwright.steps import bundle

        result = bundle.main(rest)
    elif command == "waiter":
        from buildwright.steps import waiter

        result = waiter.main(rest)
    elif command == "results":
        from buildwright.steps import results

        result = results.main(rest)
    else:
        # Written separately; looked up by name so this dispatcher does not depend on it.
        image_processing = importlib.import_module("buildwright.steps.image_processing")
        result = image_processing.main(rest)
    return result or 0


if __name__ == "__main__":
    sys.exit(main())
