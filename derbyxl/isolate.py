"""Check one returned file in a fresh interpreter (``python -m derbyxl.isolate``, or its main()).

For a program that runs threads (a web server checking an upload), which must not fork:
:func:`derbyxl.validate.validate_file` starts this module as a child process rather than read the
file in its own process, so a reader that aborts on the file (python-calamine does on some
files) costs a finding, not the server. The child is a new interpreter started with the same
Python (no ``__main__`` of the caller is run again, unlike multiprocessing's spawn).

Standard input: a pickle of (path, workbook name, register, limits) from the parent, which is
trusted (the file itself is never unpickled). Standard output: the encoded stage result
(:func:`derbyxl.validate.encode_stage`).
"""

from __future__ import annotations

import pickle
import sys


def main() -> int:
    from derbyxl.validate import check_file, encode_stage

    path, name, register, limits = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(encode_stage(*check_file(path, name, register, limits)))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
