"""scripts/failed_tasks.py names the task that failed a Molecule run, not the ones ignored or the tasks that passed."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("failed_tasks", ROOT / "scripts" / "failed_tasks.py")
failed_tasks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(failed_tasks)

LOG = """\
PLAY [The night] ***************************************************************

TASK [carbot.migration.cutover : Read maintenance mode] ************************
ok: [carbot_db]

TASK [Probe that may fail] *****************************************************
\x1b[0;31mfatal: [carbot_db]: FAILED! => {"changed": false, "msg": "expected"}\x1b[0m
\x1b[0;36m...ignoring\x1b[0m

TASK [carbot.migration.sync_triggers : Final sync and completeness check] ******
fatal: [carbot_db]: FAILED! => {"changed": false, "msg": "3 keys differ in customers"}

PLAY RECAP *********************************************************************
carbot_db                  : ok=1    changed=0    unreachable=0    failed=1
"""


def test_names_the_failed_task_and_not_the_ignored_one(tmp_path, capsys):
    log = tmp_path / "scenario.log"
    log.write_text(LOG, encoding="utf-8")
    failed_tasks.main([str(log)])
    out = capsys.readouterr().out
    assert "1 failed task(s)" in out
    assert "TASK [carbot.migration.sync_triggers : Final sync and completeness check]" in out
    assert "3 keys differ in customers" in out
    assert "Probe that may fail" not in out
    assert "Read maintenance mode" not in out
    assert "\x1b[" not in out


def test_a_loop_item_that_failed_counts(tmp_path, capsys):
    log = tmp_path / "loop.log"
    log.write_text(
        "TASK [Each legacy row says what the new app wrote] ***\n"
        "ok: [carbot_db] => (item=a)\n"
        "failed: [carbot_db] (item=b) => {\"msg\": \"customers -> [], expected b\"}\n"
        "PLAY RECAP ***\n",
        encoding="utf-8",
    )
    failed_tasks.main([str(log)])
    out = capsys.readouterr().out
    assert "Each legacy row says what the new app wrote" in out
    assert "expected b" in out


def test_says_so_when_nothing_failed(tmp_path, capsys):
    log = tmp_path / "ok.log"
    log.write_text("TASK [x] ***\nok: [carbot_db]\nPLAY RECAP ***\n", encoding="utf-8")
    failed_tasks.main([str(log)])
    assert "no failed task found" in capsys.readouterr().out
