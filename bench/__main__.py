"""`python -m bench`: the benchmark runner, plus the `compare` and `report` subcommands.

python -m bench [runner options]             same as python -m bench.run_parallel_benchmark
python -m bench compare A.json B.json        side-by-side table with B/A ratios
python -m bench report FILES... --out DIR    PNG charts and a markdown summary
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "compare":
        from bench.output.compare import main as compare_main

        return compare_main(args[1:])
    if args and args[0] == "report":
        from bench.output.report import main as report_main

        return report_main(args[1:])
    from bench.run_parallel_benchmark import main as run_main

    return run_main(args, prog="python -m bench")


if __name__ == "__main__":
    sys.exit(main())
