"""The argument parser of every bench command: errors in one line, with the closest option.

argparse prints its whole usage (tens of lines for the runner) before the error, and leaves a
misspelt option at "unrecognized arguments". Here an error is one line on stderr, and an
unknown option is named with the closest known one (difflib, as the library does for its own
settings). Abbreviations are off: an option has one spelling, so `--num-message` is reported
as a near miss of `--num-messages` instead of being taken for it (wrappers such as the
container entrypoint look for whole option names, and would miss an abbreviated one).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

HELP_HINT = "(--help lists the options)"
# A negative number is a value, not an option (argparse's own rule when no option looks like one).
_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")


class BenchArgumentParser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """argparse's parse_args, after a check of the option names: a misspelt option is
        reported as such, before argparse would complain about a required one it hides."""
        given = list(sys.argv[1:] if args is None else args)
        unknown = self.unknown_options(given)
        if unknown:
            self.error(self.unknown_message(unknown))
        return super().parse_args(given, namespace)

    def unknown_options(self, args: Sequence[str]) -> list[str]:
        """The option names in `args` (`--name` or `--name=value`) this parser does not know;
        what follows `--`, and negative numbers (values), are not options."""
        known = set(self.option_names())
        words = args[: args.index("--")] if "--" in args else args
        names = [arg.split("=", 1)[0] for arg in words if arg.startswith("-") and arg != "-"]
        return [name for name in names if name not in known and not _NUMBER.match(name)]

    def unknown_message(self, unknown: Sequence[str]) -> str:
        """The error about `unknown` options, with the closest known option of each."""
        known = self.option_names()
        named: list[tuple[str, str | None]] = []
        for name in unknown:
            matches = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            named.append((name, matches[0] if matches else None))
        if len(named) == 1:
            name, close = named[0]
            hint = f"; did you mean {close}?" if close else ""
            return f"unknown option {name}{hint} {HELP_HINT}"
        listed = ", ".join(f"{name} ({close}?)" if close else name for name, close in named)
        return f"unknown options {listed} {HELP_HINT}"

    def option_names(self) -> list[str]:
        """Every option string of this parser and of its subcommands' parsers."""
        names: list[str] = []
        for action in self._actions:  # argparse keeps no public list of its actions
            names.extend(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    names.extend(sub.option_names() if isinstance(sub, BenchArgumentParser) else [])
        return sorted(set(names))

    def error(self, message: str) -> NoReturn:
        """One line on stderr and exit status 2 (argparse's), without the usage."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def write_error(prog: str, message: str) -> int:
    """The same one-line error for a command that checks its arguments itself; returns 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2
