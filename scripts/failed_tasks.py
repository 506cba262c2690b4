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
FAILED = re.compile(r"^(fatal|failed): \[|^\[ERROR\]: ")
IGNORED = re.compile(r"^\.\.\.ignoring")
MAX_LINE = 600
MAX_LINES = 25


def failed_blocks(lines):
    """Yield (task header, block lines) for each failure that was not ignored: the ``fatal:``/``failed:`` line or
    ansible-core's ``[ERROR]:`` line, the lines after it, and the last task header before it. A failure whose
    message holds a nested run's output (its own TASK lines) is still found: the search is by line, not by block."""
    header = "(no task header before it)"
    taken = -1
    for number, line in enumerate(lines):
        if TASK.match(line):
            header = line
            continue
        if number <= taken or not FAILED.match(line):
            continue
        after = lines[number + 1:number + 1 + MAX_LINES]
        if any(IGNORED.match(next_line) for next_line in after[:4]):
            continue
        block = [line]
        for next_line in after:
            if TASK.match(next_line) or FAILED.match(next_line):
                break
            block.append(next_line)
        taken = number + len(block) - 1
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
        shown = [line for line in block if line.strip()]
        for line in shown:
            print(line if len(line) <= MAX_LINE else line[:MAX_LINE] + " [...]")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
