"""Run a command in this process and print its wall time and peak RSS as JSON on stderr.
Used by bench/run.py so each step is timed as an officer runs it: one command, a fresh process.

    python bench/measure.py validate returns/ ...          # the derbyxl CLI
    python bench/measure.py --datamaps import templates -m  # datamaps' CLI, for comparison
"""

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
        from derbyxl.cli import main

        code = main(args)
    wall = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    sys.stderr.write("\nBENCH " + json.dumps({"code": code, "wall": wall, "rss_mb": max(rss_mb, children_mb)}) + "\n")
    sys.exit(0)
