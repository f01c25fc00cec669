"""Run one command and record its wall time, CPU time and peak RSS.

Usage: python -S -I rusage_launcher.py RESULT_FILE COMMAND [ARG ...]

Why not measure straight from bench.py: Linux keeps, as a process's peak RSS, the
larger of its own and that of the memory image it replaced at exec.  A child that
subprocess starts from bench.py (vfork + exec) therefore inherits bench.py's whole
peak RSS (20+ MiB) as a floor, hiding what curl or wget really use.  This launcher
is a bare interpreter (-S -I: no site, a few MiB) that fork()s a copy of itself,
execs COMMAND in the copy, and reaps it with os.wait4: the floor drops to the few
MiB of anonymous memory the copy starts with (bench.py measures it and prints it).

RESULT_FILE gets one line: ``exit_code wall_s user_s sys_s max_rss_kib``, with CPU
times and RSS covering COMMAND and the children it waited for.  The launcher exits
with COMMAND's exit code (127 when it could not be executed).
"""

import os
import sys
import time


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    result_file, argv = sys.argv[1], sys.argv[2:]
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            print(f"cannot run {argv[0]}: {exc}", file=sys.stderr)
        os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    with open(result_file, "w") as fh:
        fh.write(f"{code} {wall:.6f} {usage.ru_utime:.6f} {usage.ru_stime:.6f} {usage.ru_maxrss}\n")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
