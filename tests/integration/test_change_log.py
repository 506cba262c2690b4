"""The final sync check inside the write freeze reads only what changed since the full validation before it.

The sync functions log every key they write (the change log in the mapping schema); a clean full validation
(sync_check with checksums) prunes what its snapshot covered; the ``changes`` check compares only the keys logged
since. So its cost follows the writes, not the tables, and it still names a key and column that differ.
"""

import pytest
from conftest import run_module_process
from test_sync import build_migrated, module_params

LOG = "carbot_migration.carbot_sync_changes"


def check(db, **args):
    params = {k: v for k, v in module_params(db).items() if k != "lock_timeout_ms"}
    return run_module_process("sync_check", dict(params, **args))


@pytest.fixture(scope="module")
def logged(make_database):
    db = make_database("changelog")
    build_migrated(db)
    # writes before the full validation: covered by it, pruned after it
    db.query("UPDATE public.customers SET phone = 'before' WHERE id IN "
             "(SELECT id FROM public.customers ORDER BY id LIMIT 5)")
    assert db.scalar("SELECT count(*) FROM %s" % LOG) >= 5
    full = check(db)
    assert full["ok"] is True and full["change_log_pruned"] >= 5, full
    assert db.scalar("SELECT count(*) FROM %s" % LOG) == 0
    return db


def test_the_changes_check_reads_only_the_keys_written_since(logged):
    db = logged
    db.query("UPDATE public.customers SET phone = 'after' WHERE id IN "
             "(SELECT id FROM public.customers ORDER BY id DESC LIMIT 3)")
    db.query("UPDATE public.leads SET status = 'converted' WHERE id = "
             "(SELECT id FROM public.leads ORDER BY id LIMIT 1)")
    result = check(db, checks=["changes"])
    assert result["ok"] is True, result["msg"]
    changes = result["validation"]["checks"]["changes"]
    assert changes["tables"]["customers"]["keys"] == 3 and changes["tables"]["leads"]["keys"] == 1
    # what the check read is what was written, not the size of the tables
    logged_keys = db.scalar("SELECT count(DISTINCT (target_table, key)) FROM %s" % LOG)
    assert changes["keys_checked"] == logged_keys
    assert changes["keys_checked"] < db.scalar("SELECT count(*) FROM carbot_v2.customers") / 10


def test_a_logged_key_that_differs_is_named_with_its_column(logged):
    db = logged
    key = str(db.scalar("SELECT id FROM public.customers ORDER BY id DESC LIMIT 1"))
    db.query("UPDATE public.customers SET city = 'Halle' WHERE id = %s", (key,))
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # behind the triggers' back
        cur.execute("UPDATE carbot_v2.customers SET city = 'Hamburg' WHERE id = %s", (key,))
    conn.close()
    result = check(db, checks=["changes"], fail_on_problem=False)
    assert result["ok"] is False
    assert "customers: 1 different: %s (city: data)" % key in result["msg"], result["msg"]
    repaired = check(db, checks=["changes"], repair=True)
    assert repaired["ok"] is True, repaired["msg"]
    assert db.scalar("SELECT city FROM carbot_v2.customers WHERE id = %s", (key,)) == "Halle"


def test_a_write_the_full_validation_did_not_see_stays_in_the_log(logged):
    db = logged
    writer = db.connect(autocommit=False)
    with writer.cursor() as cur:
        cur.execute("UPDATE public.customers SET phone = 'in flight' WHERE id = "
                    "(SELECT id FROM public.customers ORDER BY id LIMIT 1 OFFSET 40) RETURNING id")
        key = str(cur.fetchone()[0])
    full = check(db)  # its snapshot cannot see the uncommitted write
    assert full["ok"] is True, full["msg"]
    writer.commit()
    writer.close()
    assert db.scalar("SELECT count(*) FROM %s WHERE target_table = 'customers' AND key = %%s" % LOG, (key,)) == 1
