"""prepare.yml copies the chat sessions right after it installs the forward sync (issue 14, "triggers that stay cheap").

Until carbot_v2 has a conversation's session, the sync of a new chat message reads the session's exact aggregate from
the legacy messages: a scan of the whole legacy chat_messages (it has no index on the conversation) inside the app's
write, for the first new message of every conversation, old or new, from prepare.yml until migrate.yml's copy reached
chat_sessions (hours, if the two steps are run on different days). With the sessions copied, a message widens its
session (an index lookup) or, in a new conversation, creates it from itself. The scans are counted in
pg_stat_user_tables, read after the writing session ended (its counters are flushed at its exit).
"""

import datetime
import re

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, sync
from test_dry_runs import Night
from test_sync import build_migrated, module_params


def seq_scans(db):
    return db.scalar("SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'public.chat_messages'::regclass")


def new_message(db, conversation, created_at):
    """One chat message as the app writes it, on its own connection (closed: its table counters are flushed)."""
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
                    "VALUES (%s, %s, 'user', 'Hallo', %s)", (conversation[0], conversation[1], created_at))
    conn.close()


def scans_for_one_message(db, conversation, created_at):
    before = seq_scans(db)
    new_message(db, conversation, created_at)
    return seq_scans(db) - before


@pytest.fixture
def synced_nothing_copied(make_database):
    """prepare.yml's state before this change: the mapping and the forward sync, nothing copied."""
    db = make_database("sessions")
    sync.install(module_params(db), build_migrated(db, install=False, seed=3), sync.FORWARD)
    return db


def conversations_of_mapped_workshops(db, n):
    return db.query(
        "SELECT DISTINCT ON (m.workshop_id, m.kunde_id) m.workshop_id, m.kunde_id FROM public.chat_messages m "
        "WHERE m.kunde_id IS NOT NULL AND EXISTS (SELECT 1 FROM carbot_migration.map_workshops w "
        "WHERE w._src_key = m.workshop_id AND w._quarantine_reason IS NULL) ORDER BY m.workshop_id, m.kunde_id "
        "LIMIT %s", (n,))


def test_without_the_sessions_a_conversations_first_message_scans_the_legacy_messages(synced_nothing_copied):
    db = synced_nothing_copied
    before_copy, after_copy = conversations_of_mapped_workshops(db, 2)
    at = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    # the hazard prepare.yml closes: nothing copied yet, the first new message of every conversation, old or new,
    # re-aggregates it from the legacy messages (then its session exists and later messages widen it)
    assert scans_for_one_message(db, before_copy, at) >= 1
    assert scans_for_one_message(db, (before_copy[0], "web-new-before-copy"), at) >= 1
    assert scans_for_one_message(db, before_copy, at + datetime.timedelta(minutes=1)) == 0
    # what prepare.yml copies (tests/unit/test_prepare_copy.py: the sessions and the tables they depend on)
    result = copy_engine.CopyEngine(module_params(db), selected=["organizations", "users", "workshops",
                                                                  "chat_sessions"]).run()
    assert result["failed"] == [] and result["tables"]["chat_sessions"]["copied"] > 0, result
    later = at + datetime.timedelta(hours=1)
    # with the sessions copied (what prepare.yml now does), no first message scans
    assert scans_for_one_message(db, after_copy, later) == 0
    new_conversation = (after_copy[0], "web-new-after-copy")
    assert scans_for_one_message(db, new_conversation, later) == 0
    # and the sessions are what the exact aggregate says (the view, read now)
    for conv in (before_copy, after_copy, new_conversation):
        have = db.query("SELECT started_at, last_message_at FROM carbot_v2.chat_sessions WHERE workshop_id = %s "
                        "AND client_key = %s", conv)
        view = db.query("SELECT started_at, last_message_at FROM carbot_migration.map_chat_sessions "
                        "WHERE workshop_id = %s AND client_key = %s", conv)
        assert have == view and len(have) == 1, (conv, have, view)
    assert db.scalar("SELECT last_message_at FROM carbot_v2.chat_sessions WHERE workshop_id = %s "
                     "AND client_key = %s", new_conversation) == later


@pytest.mark.slow
def test_prepare_yml_leaves_the_sessions_copied_and_a_rerun_changes_nothing(make_database, tmp_path):
    night = Night(make_database("prepare_sessions"), tmp_path)
    for playbook in ("legacy_data.yml", "prepare.yml"):
        done = night.play(playbook)
        assert done.returncode == 0, "%s\n%s\n%s" % (playbook, done.stdout[-4000:], done.stderr[-2000:])
    db = night.db
    assert db.query("SELECT state::text FROM carbot_v2.migration_status WHERE target_table = 'chat_sessions'") == \
        [("copied",)]
    assert db.scalar("SELECT count(*) FROM carbot_v2.chat_sessions") == \
        db.scalar("SELECT count(*) FROM carbot_migration.map_chat_sessions") > 0
    # nothing else was copied: that is migrate.yml's
    assert db.scalar("SELECT count(*) FROM carbot_v2.customers") == 0
    again = night.play("prepare.yml")
    assert again.returncode == 0, again.stdout[-4000:]
    recap = again.stdout.split("PLAY RECAP", 1)[1]
    assert re.search(r"changed=0\b", recap), recap
