"""The online cutover's overlap, as the database sees it: old pods as the app role on the legacy schema and new pods
as the new version's role on carbot_v2 (carbot.migration.version_role), both through unqualified names, writing the
SAME rows at the same time with both sync directions live (issue 17).

Builds on test_both_sides.py (which writes with schema-qualified names as the migration role): here the writers
are the two real application roles, each resolving its schema through the server-side search_path only, and the
test proves the conflict rule of docs/online_cutover.md:

* updates of the same customer and lead from both sides: both schemas end with the value of the transaction that
  committed last (each writer notes, inside its transaction after its write, clock_timestamp(); the write holds
  the row on both sides until it commits, so for one key these stamps are in commit order);
* a delete on one side racing updates on the other: a row whose delete committed is gone on both sides;
* inserts with default ids from both sides: every one on both sides, no id collision;
* afterwards validation (counts, checksums, integrity of every table; the same check proves both directions, the
  reverse projection being the inverse of the forward one) is clean, and the only errors that reached a writer are
  PostgreSQL's retryable deadlock/serialization aborts, retried as an app does, at a small rate.
"""

import random
import threading
import time

import psycopg2
import pytest
from conftest import make_app_role, run_module_process
from test_sync import assert_valid, build_migrated, cut_over, module_params

ROUNDS = 120
WRITERS_PER_SIDE = 2
RETRYABLE = (psycopg2.errors.DeadlockDetected, psycopg2.errors.SerializationFailure)
OLD_PASSWORD = "overlap-old-password"  # throwaway roles on a loopback test cluster, not secrets
NEW_PASSWORD = "overlap-new-password"


@pytest.fixture(scope="module")
def overlap(make_database):
    db = make_database("overlap")
    plan = build_migrated(db, scale=0.01)
    cut_over(db, plan)  # reverse sync and shared id sequences, as the cutover's preflight does
    db.old_role = make_app_role(db, OLD_PASSWORD, sequences="USAGE, SELECT, UPDATE")
    db.new_role = db.old_role + "_v2"
    params = dict(module_params(db), ssl_mode="disable")
    params.pop("lock_timeout_ms", None)
    granted = run_module_process("app_privileges", dict(params, app_role=db.old_role))
    assert granted.get("failed") is not True, granted
    role = run_module_process("version_role", dict(params, app_role=db.old_role, role=db.new_role,
                                                   password=NEW_PASSWORD))
    assert role.get("failed") is not True, role
    assert role["verification"]["resolved_schema"] == "carbot_v2", role
    return db


def _connect(db, side):
    user, password = (db.new_role, NEW_PASSWORD) if side == "new" else (db.old_role, OLD_PASSWORD)
    conn = psycopg2.connect(host=db.host, port=db.port, dbname=db.dbname, user=user, password=password,
                            application_name="overlap %s" % side)
    conn.autocommit = True
    return conn


def _writer(db, side, seed, keys, stats, journal, lock):
    rng = random.Random(seed)
    conn = _connect(db, side)
    cur = conn.cursor()
    mine = {"committed": 0, "retried": 0, "gave_up": 0, "errors": []}
    try:
        cur.execute("SELECT current_setting('search_path')")
        mine["search_path"] = cur.fetchone()[0]
        for i in range(ROUNDS):
            kind = rng.random()
            for _attempt in range(20):
                notes = []
                try:
                    cur.execute("BEGIN")
                    if kind < 0.45:  # the same customers from both sides
                        key = rng.choice(keys["customers"])
                        value = "%s-%d-%d" % (side, seed, i)
                        cur.execute("UPDATE customers SET phone = %s WHERE id = %s RETURNING clock_timestamp()",
                                    (value, key))
                        row = cur.fetchone()
                        if row:
                            notes.append(("phone", key, value, row[0]))
                    elif kind < 0.75:  # the same leads from both sides (each side's own status vocabulary)
                        key = rng.choice(keys["leads"])
                        status = rng.choice(["contacted", "won", "lost"] if side == "new"
                                            else ["contacted", "converted", "neu"])
                        cur.execute("UPDATE leads SET status = %s, lead_score = %s WHERE id = %s",
                                    (status, rng.randint(0, 100), key))
                    elif kind < 0.85:  # a delete on this side racing the other side's updates of the same row
                        key = keys["doomed_" + side].pop() if keys["doomed_" + side] else None
                        if key is not None:
                            cur.execute("DELETE FROM customers WHERE id = %s RETURNING clock_timestamp()", (key,))
                            row = cur.fetchone()
                            notes.append(("delete", key, None, row[0] if row else None))
                    if kind >= 0.85 or rng.random() < 0.2:  # an insert with a default id on this side
                        tag = "overlap-%s" % side
                        if side == "new":
                            cur.execute("INSERT INTO consent_log (workshop_id, client_key, consent_type, granted, "
                                        "created_at) SELECT workshop_id, %s, consent_type, true, now() "
                                        "FROM consent_log ORDER BY id LIMIT 1 RETURNING id", (tag,))
                        else:
                            cur.execute("INSERT INTO consent_log (workshop_id, kunde_id, consent_type, granted, "
                                        "created_at) SELECT workshop_id, %s, consent_type, true, now() "
                                        "FROM consent_log ORDER BY id LIMIT 1 RETURNING id", (tag,))
                        notes.append(("insert", str(cur.fetchone()[0]), tag, None))
                    cur.execute("COMMIT")
                    mine["committed"] += 1
                    with lock:
                        journal.extend((side,) + n for n in notes)
                    break
                except RETRYABLE:
                    cur.execute("ROLLBACK")
                    mine["retried"] += 1
                    for n in notes:  # a delete that did not commit goes back to the pool
                        if n[0] == "delete":
                            keys["doomed_" + side].append(n[1])
                except psycopg2.Error as exc:
                    cur.execute("ROLLBACK")
                    mine["errors"].append("%s: %s" % (type(exc).__name__, str(exc).splitlines()[0]))
                    break
            else:
                mine["gave_up"] += 1
    finally:
        conn.close()
        with lock:
            for name in ("committed", "retried", "gave_up"):
                stats[side][name] += mine[name]
            stats[side]["errors"] += mine["errors"]
            stats[side]["search_path"] = mine.get("search_path")


def test_old_and_new_pods_writing_the_same_rows_end_equal(overlap):
    db = overlap
    customers = [str(r[0]) for r in db.query("SELECT id FROM carbot_v2.customers ORDER BY id LIMIT 14")]
    leads = [str(r[0]) for r in db.query("SELECT id FROM carbot_v2.leads ORDER BY id LIMIT 6")]
    keys = {"customers": customers[:6], "leads": leads,
            # rows one side deletes while the other side keeps updating them (they are in 'customers' too)
            "doomed_old": customers[6:10], "doomed_new": customers[10:14]}
    keys["customers"] = customers[:6] + customers[6:14]
    stats = {s: {"committed": 0, "retried": 0, "gave_up": 0, "errors": []} for s in ("old", "new")}
    journal, lock = [], threading.Lock()
    threads = [threading.Thread(target=_writer, args=(db, side, seed, keys, stats, journal, lock))
               for side in ("old", "new") for seed in range(WRITERS_PER_SIDE * (side == "new"),
                                                             WRITERS_PER_SIDE * (1 + (side == "new")))]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    total = sum(s["committed"] for s in stats.values())
    retried = sum(s["retried"] for s in stats.values())
    print("overlap: %d writers, %d transactions in %.1f s, %d retryable aborts (%.1f %%): %s" % (
        len(threads), total, seconds, retried, 100.0 * retried / max(total, 1), stats))

    # each side resolved its own schema through its role's server-side search_path
    assert stats["old"]["search_path"] == '"$user", public', stats
    assert stats["new"]["search_path"] == "carbot_v2, public", stats
    # nothing but retryable aborts reached a writer, every transaction committed in the end
    assert stats["old"]["errors"] == [] and stats["new"]["errors"] == [], stats
    assert stats["old"]["gave_up"] == stats["new"]["gave_up"] == 0, stats
    assert total == ROUNDS * len(threads), stats
    assert retried < 0.2 * total, stats

    # both schemas equal: counts, checksums and integrity of every table
    assert_valid(db)

    # the rule: the last committed write of a row wins on both sides; a committed delete stays a delete
    deleted = {key for _side, op, key, _v, _at in journal if op == "delete" and _at is not None}
    last = {}
    for side, op, key, value, at in journal:
        if op == "phone" and (key not in last or at > last[key][0]):
            last[key] = (at, value, side)
    for key in keys["customers"]:
        legacy = db.query("SELECT phone FROM public.customers WHERE id = %s", (key,))
        target = db.query("SELECT phone FROM carbot_v2.customers WHERE id = %s", (key,))
        if key in deleted:
            assert legacy == target == [], (key, legacy, target)
            continue
        assert legacy == target, (key, legacy, target)
        if key in last:
            assert target[0][0] == last[key][1], (key, target, last[key])
    assert deleted, "no delete committed: the race was not exercised"
    assert {side for side, op, *_ in journal if op == "phone"} == {"old", "new"}

    # every insert of both sides is on both sides, under the id it got
    inserted = {(key, tag) for _side, op, key, tag, _at in journal if op == "insert"}
    legacy = set(db.query("SELECT id::text, kunde_id FROM public.consent_log WHERE kunde_id LIKE 'overlap-%%'"))
    target = set(db.query("SELECT id::text, client_key FROM carbot_v2.consent_log WHERE client_key LIKE 'overlap-%%'"))
    assert inserted and legacy == target == inserted, (len(inserted), len(legacy), len(target))
