#!/usr/bin/env python3
"""How reliable is the rehearsal? Run the full local rehearsal N times from nothing and count the passes.

    .venv/bin/python bench/rehearsals.py [-n 10] [--scale 0.1] [--work-dir /tmp/rehearsals]
                                         [--db-port 55489] [--api-port 18089] [--k8s-port 16489]

Each run is ``bench/freeze_window.py`` (rehearsal_clean, then rehearsal/playbooks/rehearsal.yml with the live write
load, the cutover, the new app writing on carbot_v2, the rollback drill and the cutover again, then rehearsal_clean)
on its own ports and work directory, so that it collides with no other rehearsal or Molecule run. Every run uses
another seed (``--seed`` + run number): other data, other dirty rows. For each run it prints pass or FAILED with
the failed task and its message (from the run's Ansible log), then ``passes/N``. A figure, not a test: the exit
status is 0 when every run passed, 1 otherwise.
"""

import argparse
import os
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(REPO, ".venv", "bin", "python")


def failure(log_path):
    """(task, message) of the first failed task in an Ansible log that did not go on (no '...ignoring')."""
    try:
        with open(log_path, errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return "?", "no log at %s" % log_path
    task = "?"
    for i, line in enumerate(lines):
        m = re.match(r"^TASK \[(.*)\]", line)
        if m:
            task = m.group(1)
        if line.startswith(("fatal:", "failed:")):
            following = lines[i + 1:i + 8]
            if any("...ignoring" in f for f in following):
                continue
            text = " ".join([line] + following)
            msg = re.search(r"msg[\"']?:\s*(.*)", text)
            return task, (msg.group(1) if msg else text)[:400]
    return task, "no failed task in the log (see %s)" % log_path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=10)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work-dir", default="/tmp/rehearsals")
    parser.add_argument("--db-port", type=int, default=55489)
    parser.add_argument("--api-port", type=int, default=18089)
    parser.add_argument("--k8s-port", type=int, default=16489)
    args = parser.parse_args()
    passes = 0
    for run in range(1, args.runs + 1):
        work = os.path.join(os.path.abspath(args.work_dir), "run-%02d" % run)
        os.makedirs(work, exist_ok=True)
        t0 = time.monotonic()
        out = subprocess.run(
            [PYTHON, os.path.join(REPO, "bench", "freeze_window.py"), "--scale", str(args.scale),
             "--seed", str(args.seed + run), "--work-dir", work, "--db-port", str(args.db_port),
             "--api-port", str(args.api_port), "--k8s-port", str(args.k8s_port)],
            cwd=REPO, capture_output=True, text=True)
        took = time.monotonic() - t0
        with open(os.path.join(work, "freeze_window.out"), "w") as handle:
            handle.write(out.stdout + out.stderr)
        if out.returncode == 0:
            passes += 1
            print("run %2d (seed %d): pass in %.0f s" % (run, args.seed + run, took), flush=True)
        else:
            task, msg = failure(os.path.join(work, "rehearsal.log"))
            print("run %2d (seed %d): FAILED in %.0f s at %r: %s" % (run, args.seed + run, took, task, msg),
                  flush=True)
    print("%d/%d rehearsals passed (scale %s)" % (passes, args.runs, args.scale))
    return 0 if passes == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
