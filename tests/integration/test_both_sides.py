"""Both app versions writing the same rows at once: old pods on the legacy schema, new pods on carbot_v2, with both
sync directions live (what an online cutover's rolling deploy and a rollback in online mode do).

Updates of the same customers and leads from both sides, deletes racing updates, inserts with default ids from
both. Afterwards the two schemas are equal (validation: counts and checksums of every table) and every write that
committed is there: the last committed write of a row wins (commit order). A deadlock between the two directions
is possible (each side locks its own row first, its trigger then the other side's); PostgreSQL aborts one of the
two transactions with a retryable error, which the writers here retry, as an app does. The test counts them.
"""

import random
import threading

import psycopg2
import pytest
from test_sync import assert_valid, build_migrated, cut_over

ROUNDS = 150
RETRYABLE = (psycopg2.errors.DeadlockDetected, psycopg2.errors.SerializationFailure)


@pytest.fixture(scope="module")
def both(make_database):
    db = make_database("bothsides")
    plan = build_migrated(db, scale=0.01)
    cut_over(db, plan)  # reverse sync and shared id sequences, as the cutover does
    return db


def _run(db, side, keys, stats, seed, journal):
    try:
        _writes(db, side, keys, stats, seed, journal)
    except Exception as exc:  # noqa: BLE001 - the test asserts that no writer died
        stats[side]["error"] = "%s: %s" % (type(exc).__name__, exc)


def _writes(db, side, keys, stats, seed, journal):
    rng = random.Random(seed)
    conn = db.connect()
    cur = conn.cursor()
    schema = "carbot_v2" if side == "new" else "public"
    try:
        for i in range(ROUNDS):
            table, key = rng.choice(keys)
            op = rng.random()
            for _attempt in range(10):
                try:
                    cur.execute("BEGIN")
                    if table == "customers" and op < 0.7:
                        value = "%s-%d" % (side, i)
                        cur.execute("UPDATE %s.customers SET phone = %%s WHERE id = %%s" % schema, (value, key))
                        if cur.rowcount:
                            journal.append((side, "customers", key, value))
                    elif table == "customers":
                        cur.execute("DELETE FROM %s.customers WHERE id = %%s" % schema, (key,))
                    elif side == "new":
                        cur.execute("UPDATE carbot_v2.leads SET status = %s, lead_score = %s WHERE id = %s",
                                    (rng.choice(["contacted", "won", "lost"]), rng.randint(0, 100), key))
                    else:
                        cur.execute("UPDATE public.leads SET status = %s, lead_score = %s WHERE id = %s",
                                    (rng.choice(["contacted", "converted", "neu"]), rng.randint(0, 100), key))
                    if rng.random() < 0.2:  # an insert with a default id on this side
                        if side == "new":
                            cur.execute("INSERT INTO carbot_v2.consent_log (workshop_id, client_key, consent_type, "
                                        "granted, created_at) SELECT workshop_id, 'both-new', consent_type, true, "
                                        "now() FROM carbot_v2.consent_log ORDER BY id LIMIT 1")
                        else:
                            cur.execute("INSERT INTO public.consent_log (workshop_id, kunde_id, consent_type, "
                                        "granted, created_at) SELECT workshop_id, 'both-old', consent_type, true, "
                                        "now() FROM public.consent_log ORDER BY id LIMIT 1")
                    cur.execute("COMMIT")
                    stats[side]["committed"] += 1
                    break
                except RETRYABLE:
                    cur.execute("ROLLBACK")
                    stats[side]["retried"] += 1
                    if journal and journal[-1][0] == side and journal[-1][1] == "customers":
                        journal.pop()
            else:
                stats[side]["gave_up"] += 1
    finally:
        conn.close()


def test_both_versions_writing_the_same_rows_end_equal(both):
    db = both
    customers = [("customers", str(r[0])) for r in db.query(
        "SELECT c.id FROM carbot_v2.customers c ORDER BY c.id LIMIT 6")]
    leads = [("leads", str(r[0])) for r in db.query("SELECT id FROM carbot_v2.leads ORDER BY id LIMIT 6")]
    keys = customers + leads
    before_ids = db.scalar("SELECT count(*) FROM public.consent_log")
    stats = {s: {"committed": 0, "retried": 0, "gave_up": 0} for s in ("new", "old")}
    journal = []
    threads = [threading.Thread(target=_run, args=(db, side, keys, stats, seed, journal))
               for side, seed in (("new", 1), ("old", 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("both sides:", stats)
    assert "error" not in stats["new"] and "error" not in stats["old"], stats
    assert stats["new"]["committed"] == stats["old"]["committed"] == ROUNDS, stats
    # the retryable aborts are a small share of the writes even on these 12 hottest possible rows
    assert stats["new"]["retried"] + stats["old"]["retried"] < 0.2 * 2 * ROUNDS, stats
    assert_valid(db)
    # every insert of both sides is on both sides, with ids that never collided
    new_rows = db.scalar("SELECT count(*) FROM carbot_v2.consent_log WHERE client_key IN ('both-new', 'both-old')")
    old_rows = db.scalar("SELECT count(*) FROM public.consent_log WHERE kunde_id IN ('both-new', 'both-old')")
    assert new_rows == old_rows == db.scalar("SELECT count(*) FROM public.consent_log") - before_ids > 0
    # the last committed phone of every surviving customer is what both schemas hold
    for _table, key in customers:
        legacy = db.query("SELECT phone FROM public.customers WHERE id = %s", (key,))
        target = db.query("SELECT phone FROM carbot_v2.customers WHERE id = %s", (key,))
        assert legacy == target
