"""Run the derbyxl CLI in this process and print its wall time and peak RSS as JSON on stderr.
Used by bench/run.py so each step is timed as an officer runs it: one command, a fresh process."""

import json
import resource
import sys
import time

if __name__ == "__main__":
    start = time.perf_counter()
    from derbyxl.cli import main

    code = main(sys.argv[1:])
    wall = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stderr.write("\nBENCH " + json.dumps({"code": code, "wall": wall, "rss_mb": rss_mb}) + "\n")
    sys.exit(0)
