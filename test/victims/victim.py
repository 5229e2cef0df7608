#!/usr/bin/env python3
"""Python victim for the timeskew tests: CPython reads clocks through glibc (so
the vDSO), like the C victim, but inside an interpreter. Protocol as in
victim.c, reduced to: now, exit <code>, EOF."""
import os
import sys
import time


def reply(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    reply(f"ready {os.getpid()}")
    for raw in sys.stdin:
        line = raw.strip()
        if line == "now":
            reply(
                f"realtime={time.time_ns()} monotonic={time.monotonic_ns()}"
                f" time={int(time.time()) * 1_000_000_000}"
            )
        elif line.startswith("exit "):
            try:
                code = int(line[5:])
            except ValueError:
                reply(f"error bad exit code: {line}")
                continue
            # os._exit: no interpreter teardown to race with the test's exit check.
            os._exit(code)
        else:
            reply(f"error unknown command: {line}")
    sys.exit(0)


if __name__ == "__main__":
    main()
