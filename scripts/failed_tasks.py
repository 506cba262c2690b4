#!/usr/bin/env python3
"""Print the tasks that failed (and were not ignored or rescued) in an ansible-playbook or Molecule log.

CI keeps only the tail of what `make test` prints; the Molecule recap there says that a scenario failed but
not which task or why. `make molecule` runs this on a failed scenario's log so that the tail names them.

Usage: failed_tasks.py LOG [--max N]
"""
import argparse
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TASK = re.compile(r"^(TASK|RUNNING HANDLER) \[")
PLAY = re.compile(r"^PLAY (\[|RECAP)")
FAILED = re.compile(r"^(fatal|failed): \[")
IGNORED = re.compile(r"^\.\.\.ignoring")
MAX_LINE = 600
MAX_LINES = 40


def failed_blocks(lines):
    """Yield (task header, block lines) for each task block with a failure that was not ignored."""
    header, block = None, []

    def verdict():
        failed = any(FAILED.match(line) for line in block)
        ignored = any(IGNORED.match(line) for line in block)
        return failed and not ignored

    for line in lines:
        if TASK.match(line) or PLAY.match(line):
            if header is not None and verdict():
                yield header, block
            header, block = (line, []) if TASK.match(line) else (None, [])
            continue
        if header is not None:
            block.append(line)
    if header is not None and verdict():
        yield header, block


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--max", type=int, default=3, help="print at most the last N failed tasks (default 3)")
    args = parser.parse_args(argv)
    with open(args.log, encoding="utf-8", errors="replace") as handle:
        lines = [ANSI.sub("", line.rstrip("\n")) for line in handle]
    blocks = list(failed_blocks(lines))
    if not blocks:
        print(f"no failed task found in {args.log}")
        return 0
    print(f"{len(blocks)} failed task(s) in {args.log}; the last {min(len(blocks), args.max)}:")
    for header, block in blocks[-args.max:]:
        print(header)
        shown = [line for line in block if line.strip()][:MAX_LINES]
        for line in shown:
            print(line if len(line) <= MAX_LINE else line[:MAX_LINE] + " [...]")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
