"""Run a command in this process and print its wall time, CPU time (its own and its worker
processes', user and system) and peak RSS as JSON on stderr. Used by bench/run.py so each step
is timed as an officer runs it: one command, a fresh process.

    python bench/measure.py validate returns/ ...          # the derbyxl CLI
    python bench/measure.py --datamaps import templates -m  # datamaps' CLI, for comparison
"""

import gc
import json
import resource
import sys
import time

if __name__ == "__main__":
    start = time.perf_counter()
    args = sys.argv[1:]
    if args[:1] == ["--datamaps"]:
        from datamaps.main import cli

        try:
            code = cli.main(args=args[1:], prog_name="datamaps", standalone_mode=False)
        except SystemExit as exc:
            code = exc.code
        code = code if isinstance(code, int) else 0
    else:
        # As an officer's install runs it: without hypothesis, a test dependency, which
        # pandera imports whenever it is installed (with the plugins installed beside it,
        # 0.4 s and 21 MB a command in the development venv; bench/README.md, eleventh
        # session). None in sys.modules makes that import fail, as when it is not installed.
        sys.modules.setdefault("hypothesis", None)
        from derbyxl.cli import main

        code = main(args)
    wall = time.perf_counter() - start
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    rss_mb = max(own.ru_maxrss, children.ru_maxrss) / 1024
    sys.stderr.write("\nBENCH " + json.dumps({"code": code, "wall": wall, "cpu": cpu, "rss_mb": rss_mb}) + "\n")
    # Measured: its objects are left to the system rather than walked once more by the
    # garbage collector as Python shuts down (0.25 s a command with pandera loaded).
    gc.freeze()
    sys.exit(0)
