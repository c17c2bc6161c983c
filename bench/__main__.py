"""`python -m bench`: the benchmark runner, plus the `compare` and `report` subcommands.

python -m bench [runner options]             same as python -m bench.run_parallel_benchmark
python -m bench compare A.json B.json        side-by-side table with B/A ratios
python -m bench report FILES... --out DIR    PNG charts and a markdown summary
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence

from bench.arg_parser import HELP_HINT, write_error

PROG = "python -m bench"
SUBCOMMANDS = ("compare", "report")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-") and args[0] not in SUBCOMMANDS:
        # The runner takes no positional arguments: a word first is a misspelt subcommand.
        close = difflib.get_close_matches(args[0], SUBCOMMANDS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return write_error(PROG, f"unknown subcommand {args[0]}{hint} {HELP_HINT}")
    if args and args[0] == "compare":
        from bench.output.compare import main as compare_main

        return compare_main(args[1:])
    if args and args[0] == "report":
        from bench.output.report import main as report_main

        return report_main(args[1:])
    from bench.run_parallel_benchmark import main as run_main

    return run_main(args, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
