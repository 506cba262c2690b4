# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of a long module run (backup, validation) in a small JSON file, and the line an operator reads.

A module returns only when it ends; run ``async`` it writes what it is doing into ``progress_file``
(``ProgressFile``) and the action plugin ``carbot.migration.job_follow`` prints ``format_line`` of it every
few seconds until the job ends. The copy has its own, richer table (``migration_status``,
module_utils/copy_progress.py); this is the small common form:

``{"job": "backup", "phase": "dump", "step": 2, "steps": 5, "done": 7, "total": 25, "unit": "tables",
"current": "public.leads", "bytes": 123456, "started": <epoch>, "updated": <epoch>, "detail": "..."}``

Every field but ``job``, ``phase``, ``started`` and ``updated`` is optional. Writes are atomic (a temporary
file renamed over the old one), so a reader never sees half a record, and throttled (``min_interval``)
except when the phase changes; a throttled record is written by a small background thread within
``min_interval``, so the file always catches up with the last update, also when the job then sits in one long
statement (the table it waits for is the one the operator must see). A failure to write progress never
fails the job: progress is for the operator's eyes, the module's result is what counts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import queue
import subprocess
import threading
import time

from ansible.module_utils.basic import AnsibleModule

FIELDS = ("phase", "step", "steps", "done", "total", "unit", "current", "bytes", "detail", "state")


class ProgressFile:
    """Writes the progress record of one job; a no-op without a path."""

    def __init__(self, path, job, min_interval=0.5, clock=time.time):
        self.path = path
        self.job = job
        self.min_interval = min_interval
        self.clock = clock
        self.started = clock()
        self.record = {"job": job, "phase": "starting", "started": self.started, "updated": self.started}
        self._written = 0.0
        self.writes = 0
        self._lock = threading.Lock()
        self._dirty = False
        self._flusher = None
        if path:
            self._write()

    def update(self, force=False, **fields):
        """Merge ``fields`` into the record (``None`` removes a field) and write it, at most every
        ``min_interval`` seconds unless ``force`` or the phase changed (else within ``min_interval``)."""
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValueError("unknown progress fields: %s" % ", ".join(sorted(unknown)))
        with self._lock:  # the flusher thread writes the same record
            if "phase" in fields and fields["phase"] != self.record.get("phase"):
                force = True
                for key in ("done", "total", "unit", "current", "detail"):  # a new phase starts its own count
                    if key not in fields:
                        self.record.pop(key, None)
            for key, value in fields.items():
                if value is None:
                    self.record.pop(key, None)
                else:
                    self.record[key] = value
            now = self.clock()
            self.record["updated"] = now
            if not self.path:
                return
            if force or now - self._written >= self.min_interval:
                self._write()
            else:
                self._dirty = True
                if self._flusher is None:
                    self._flusher = threading.Thread(target=self._flush_later, name="progress-flush")
                    self._flusher.daemon = True
                    self._flusher.start()

    def _flush_later(self):
        """Write the last throttled record within min_interval (daemon thread: it never holds the job up)."""
        while True:
            time.sleep(max(self.min_interval, 0.05))
            with self._lock:
                if self._dirty:
                    self._write()

    def finish(self, state):
        """The last record: ``state`` is ``done`` or ``failed`` (the follower stops on the job's end anyway)."""
        self.update(force=True, state=state)

    def _write(self):
        tmp = "%s.tmp%d" % (self.path, os.getpid())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(self.record, handle, sort_keys=True)
            os.rename(tmp, self.path)
            self._written = self.clock()
            self._dirty = False
            self.writes += 1
        except (OSError, TypeError, ValueError):  # progress is for the eyes; the job goes on
            try:
                os.unlink(tmp)
            except OSError:
                pass


def run_streaming(argv, env, on_line, on_tick, tick=0.5):
    """Run a command, handing each line of its stderr to ``on_line`` as it comes and calling ``on_tick`` about
    every ``tick`` seconds while it runs; both are called in this thread. Returns (returncode, stderr lines,
    stdout lines).

    Why not ``AnsibleModule.run_command``: it returns only when the command ended, and the point here is to
    report what a long ``pg_dump --verbose`` / ``pg_restore --verbose`` is doing while it runs. Like
    module_utils/daemon.py, the process handling lives in module_utils. No shell, argv only; the caller passes
    secrets in ``env`` (a pgpass file), never in argv.
    """
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, out = queue.Queue(), []

    def pump(stream, sink):
        for line in iter(stream.readline, ""):
            sink(line.rstrip("\n"))
        stream.close()

    readers = [threading.Thread(target=pump, args=(proc.stderr, lines.put)),
               threading.Thread(target=pump, args=(proc.stdout, out.append))]
    for reader in readers:
        reader.daemon = True
        reader.start()
    seen = []

    def drain():
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                return
            seen.append(line)
            on_line(line)

    while proc.poll() is None:
        time.sleep(tick)
        drain()
        on_tick()
    for reader in readers:
        reader.join(timeout=10)
    drain()
    return proc.returncode, seen, out


def read(path):
    """The record in ``path``, or None when there is none (yet) or it cannot be read."""
    try:
        with open(path) as handle:
            return parse(handle.read())
    except OSError:
        return None


def parse(text):
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("job") else None


def duration(seconds):
    """``42s``, ``3m05s``, ``2h10m``; ``-`` for None. A negative duration (clocks of two hosts, an ETA already
    passed) shows as ``0s``. The one formatter of the progress lines (job_progress and copy_progress)."""
    if seconds is None:
        return "-"
    seconds = int(round(max(seconds, 0)))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    hours, rest = divmod(seconds, 3600)
    return "%dh%02dm" % (hours, rest // 60)


def size(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return "%.1f TiB" % n  # pragma: no cover - unreachable


def format_line(record, now=None):
    """One line: ``backup [2/5 dump]: 7 / 25 tables (28 %), 1.2 MiB written, at public.leads; elapsed 12s``."""
    now = time.time() if now is None else now
    phase = record.get("phase") or "-"
    if record.get("step") and record.get("steps"):
        phase = "%d/%d %s" % (record["step"], record["steps"], phase)
    parts = []
    done, total, unit = record.get("done"), record.get("total"), record.get("unit") or ""
    if done is not None and total:
        parts.append("%s / %s %s (%d %%)" % (done, total, unit, min(100, int(100.0 * done / total))))
    elif done is not None:
        parts.append("%s %s" % (done, unit))
    if record.get("bytes") is not None:
        parts.append("%s written" % size(record["bytes"]))
    if record.get("current"):
        parts.append("at %s" % record["current"])
    if record.get("detail"):
        parts.append(str(record["detail"]))
    started = record.get("started")
    elapsed = "elapsed %s" % duration(now - started) if isinstance(started, (int, float)) else ""
    quiet = now - record["updated"] if isinstance(record.get("updated"), (int, float)) else 0
    if quiet >= 30:  # a long statement: say that the job is alive but this record is old
        elapsed += " (no news for %s)" % duration(quiet)
    text = "%s [%s]" % (record.get("job") or "job", phase)
    if parts:
        text += ": " + ", ".join(parts)
    if record.get("state") in ("done", "failed") and record.get("state") != record.get("phase"):
        text += " (%s)" % record["state"]
    return text + ("; " + elapsed if elapsed else "")


def follow_argument_spec(poll_interval=10.0, **options):
    """Options of a follower of a background job (doc fragment carbot.migration.follow), and ``options``.
    Without ``options``: carbot.migration.job_follow's (the action plugin and its documentation module)."""
    spec = dict(
        jid=dict(type="str", required=True),
        poll_interval=dict(type="float", default=poll_interval),
        check_interval=dict(type="float", default=1.0),
        timeout=dict(type="int", default=43200),
        cleanup=dict(type="bool", default=True),
    )
    spec.update(options or dict(progress_file=dict(type="path"), label=dict(type="str", default="job")))
    return spec


def action_only(name, argument_spec):
    """main() of the documentation module of an action plugin (job_follow, copy_follow): run as a module file,
    it fails saying so."""
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=False)
    module.fail_json(msg="carbot.migration.%s runs as an action plugin on the controller; "
                         "call it as a task, not as a module file" % name)
