"""The progress record of a long job and the line the operator reads (module_utils/job_progress.py)."""

import json
import time

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import job_progress


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_line_says_phase_step_done_of_total_bytes_table_and_elapsed():
    record = {"job": "backup", "phase": "dump", "step": 2, "steps": 6, "done": 7, "total": 25, "unit": "tables",
              "bytes": 3 * 1024 * 1024 + 1, "current": "public.leads", "started": 100.0, "updated": 160.0}
    assert job_progress.format_line(record, now=172.0) == (
        "backup [2/6 dump]: 7 / 25 tables (28 %), 3.0 MiB written, at public.leads; elapsed 1m12s")


def test_line_without_counts_and_a_stale_record_says_so():
    record = {"job": "validation", "phase": "checksums", "started": 0.0, "updated": 10.0}
    assert job_progress.format_line(record, now=50.0) == "validation [checksums]; elapsed 50s (no news for 40s)"
    record.update(state="failed")
    assert job_progress.format_line(record, now=12.0).startswith("validation [checksums] (failed); elapsed 12s")


def test_writes_are_atomic_throttled_and_catch_up(tmp_path):
    path = tmp_path / "p.json"
    progress = job_progress.ProgressFile(str(path), "validation", min_interval=0.3)
    assert json.loads(path.read_text())["phase"] == "starting"
    progress.update(phase="counts", step=1, steps=6)  # a new phase: written at once
    progress.update(done=1, total=18, current="workshops")  # throttled ...
    assert job_progress.read(str(path)).get("current") is None
    time.sleep(1.0)  # ... and written by the flusher although nothing else happens (a long statement)
    got = job_progress.read(str(path))
    assert got["current"] == "workshops" and got["done"] == 1 and got["total"] == 18
    progress.update(phase="checksums", step=2)  # a new phase forgets the old phase's count
    got = job_progress.read(str(path))
    assert got["phase"] == "checksums" and "done" not in got and got["steps"] == 6
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_without_a_path_nothing_is_written_and_unknown_fields_are_refused(tmp_path):
    progress = job_progress.ProgressFile(None, "backup")
    progress.update(phase="dump", done=1)
    assert progress.writes == 0
    with pytest.raises(ValueError):
        progress.update(rows=3)


def test_an_unreadable_or_foreign_file_is_no_record(tmp_path):
    assert job_progress.read(str(tmp_path / "missing")) is None
    (tmp_path / "half").write_text('{"job": "bac')
    assert job_progress.read(str(tmp_path / "half")) is None
    (tmp_path / "other").write_text('{"started": 1}')
    assert job_progress.read(str(tmp_path / "other")) is None
