"""The copy/sync races, made to happen on purpose: the app writes while a copy batch is in flight.

A copy batch reads the mapping view under one snapshot and inserts what it read. If the application
changes a row after that snapshot and its sync trigger runs before the batch commits, the trigger cannot
see the batch's uncommitted rows and the batch inserts what is no longer true:

* a GDPR erasure deletes a customer: the trigger re-syncs the customer's appointments that are already in
  carbot_v2, but the batch's appointments keep pointing at the deleted customer (a dangling customer_id;
  the scale-1.0 rehearsal failed on this when it validated the foreign keys);
* an appointment becomes invalid (quarantined): the trigger puts it into the quarantine, and the batch
  inserts the old, valid version into carbot_v2 as well.

Each test holds a lock on one legacy row, so the batch stops there after it took its snapshot, makes the
application's change in that gap, releases the lock and lets the batch finish. Then the foreign keys are
validated and the whole of carbot_v2 is compared with the mapping of the legacy tables (counts, checksums,
integrity): the copy engine must have noticed the change and started the batch again.
"""

import pathlib
import threading
import time

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, mapping, sync, validation

REPO = pathlib.Path(__file__).resolve().parents[2]
COPY_APP = "carbot.migration copy appointments"
LATER = ("appointments", "appointment_services")


def params(db, **extra):
    return dict({"login_host": db.host, "login_port": db.port, "login_db": db.dbname, "login_user": db.user,
                 "login_password": db.password, "lock_timeout_ms": 0}, **extra)


@pytest.fixture
def half_copied(make_database):
    """Legacy data, carbot_v2, forward triggers, and every table copied except the appointments."""
    from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data
    db = make_database("race")
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute((REPO / "sql" / "legacy" / "schema.sql").read_text())
    conn.commit()
    legacy_data.generate(conn, (REPO / "sql" / "legacy" / "generate.sql").read_text(), 7, 0.005, "public")
    mapping.apply_all(conn, str(REPO / "sql"))
    conn.commit()
    plan = sync.Plan(conn)
    conn.close()
    sync.install(params(db, lock_timeout_ms=3000), plan, sync.FORWARD)
    others = [t["target"] for t in mapping.TABLES if t["target"] not in LATER]
    result = copy_engine.CopyEngine(params(db), selected=others, workers=2).run()
    assert result["failed"] == [], result
    assert db.scalar("SELECT count(*) FROM carbot_v2.appointments") == 0
    return db


def copy_with_a_gap(db, change):
    """Copy the appointments in one batch that stops at a locked row; ``change()`` runs in that gap.

    Returns the copy's result. The lock is on the appointment at about a third of the key order, so the
    batch has taken its snapshot (and locked the rows before it) when ``change`` runs.
    """
    ids = [r[0] for r in db.query("SELECT id FROM appointments ORDER BY id")]
    holder = db.connect(autocommit=False)
    with holder.cursor() as cur:
        cur.execute("SELECT 1 FROM appointments WHERE id = %s FOR UPDATE", (ids[len(ids) // 3],))
    engine = copy_engine.CopyEngine(params(db), selected=["appointments"], workers=1, batch_size=100000,
                                    adaptive=False)
    box = {}
    worker = threading.Thread(target=lambda: box.update(result=engine.run()), daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not db.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                            "AND wait_event_type = 'Lock'", (COPY_APP,)):
            assert worker.is_alive() and time.monotonic() < deadline, "the copy batch never reached the lock"
            time.sleep(0.05)
        change(ids)
    finally:
        holder.rollback()
        holder.close()
    worker.join(120)
    assert not worker.is_alive(), "the copy did not finish"
    return box["result"]


def finish_and_validate(db):
    """Copy what is left, add and VALIDATE the foreign keys, compare everything with the mapping."""
    result = copy_engine.CopyEngine(params(db), workers=2).run()
    assert result["failed"] == [], result
    conn = db.connect(autocommit=False)
    mapping.add_foreign_keys(conn, "carbot_v2")
    conn.commit()
    mapping.validate_foreign_keys(conn, "carbot_v2")  # raises ForeignKeyViolation on a dangling reference
    conn.commit()
    report = validation.Validator(conn).run(checks=("counts", "checksums", "integrity"))
    conn.close()
    assert report["failed"] is False, report["msg"]


def copy_while_a_write_waits(db, statement, args, waits_on, what):
    """Copy the appointments in one batch that stops after its statement (its locks held, not committed);
    run the app's ``statement`` then, which must wait for the batch (``waits_on``: the wait event the
    write waits on, e.g. 'advisory', or None for any lock); let the batch commit and the write finish.

    Returns the copy's result. The stop is a test-only trigger on the batch's checkpoint update that waits
    for an advisory lock the test holds.
    """
    gate = db.connect(autocommit=True)
    with gate.cursor() as cur:
        cur.execute("CREATE FUNCTION public.race_gate() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN PERFORM pg_advisory_xact_lock_shared(4711); RETURN NEW; END $$")
        cur.execute("CREATE TRIGGER race_gate AFTER UPDATE ON carbot_v2.migration_status FOR EACH ROW "
                    "WHEN (NEW.last_key IS DISTINCT FROM OLD.last_key) EXECUTE FUNCTION public.race_gate()")
        cur.execute("SELECT pg_advisory_lock(4711)")
    engine = copy_engine.CopyEngine(params(db), selected=["appointments"], workers=1, batch_size=100000,
                                    adaptive=False)
    box, wrote = {}, {}
    worker = threading.Thread(target=lambda: box.update(result=engine.run()), daemon=True)
    worker.start()

    def write():
        db.query(statement, args)
        wrote["at"] = time.monotonic()

    writer = threading.Thread(target=write, daemon=True)
    # (the server sees the statement with its arguments filled in: match what comes before the first one)
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND wait_event_type = 'Lock'"
    if waits_on:
        waiting += " AND wait_event = %s"
    prefix = statement.split("%s")[0] + "%"
    try:
        deadline = time.monotonic() + 60
        while not db.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                            "AND wait_event_type = 'Lock' AND wait_event = 'advisory'", (COPY_APP,)):
            assert worker.is_alive() and time.monotonic() < deadline, "the batch never reached its checkpoint"
            time.sleep(0.05)
        writer.start()
        while not db.scalar(waiting, (prefix, waits_on) if waits_on else (prefix,)):
            assert writer.is_alive() and time.monotonic() < deadline, "%s did not wait for the batch" % what
            time.sleep(0.05)
    finally:
        with gate.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(4711)")
            cur.execute("DROP TRIGGER race_gate ON carbot_v2.migration_status")
        gate.close()
    worker.join(120)
    writer.join(60)
    assert "at" in wrote, "%s did not finish" % what
    assert box["result"]["failed"] == [], box
    return box["result"]


def test_customer_erased_while_its_appointment_is_being_copied(half_copied):
    db = half_copied
    # an appointment after the locked row whose customer is migrated
    victim = {}

    def erase(ids):
        later = [str(i) for i in ids[len(ids) // 3 + 1:]]
        row = db.query("SELECT a.id, a.customer_id FROM appointments a JOIN carbot_v2.customers c "
                       "ON c.id = a.customer_id WHERE a.id::text = ANY(%s) LIMIT 1", (later,))
        assert row, "the generated data has no appointment with a migrated customer"
        victim["appointment"], victim["customer"] = row[0]
        db.query("DELETE FROM vehicles WHERE customer_id = %s", (victim["customer"],))
        db.query("DELETE FROM customers WHERE id = %s", (victim["customer"],))
        assert db.scalar("SELECT count(*) FROM carbot_v2.customers WHERE id = %s", (victim["customer"],)) == 0

    result = copy_with_a_gap(db, erase)
    assert result["failed"] == [], result
    assert result["retries"] >= 1, "the batch was not started again after the erasure: %s" % result
    assert db.query("SELECT customer_id FROM carbot_v2.appointments WHERE id = %s",
                    (victim["appointment"],)) == [(None,)]
    finish_and_validate(db)


def test_appointment_quarantined_while_it_is_being_copied(half_copied):
    db = half_copied
    victim = {}

    def invalidate(ids):
        victim["appointment"] = ids[len(ids) // 3 + 1]
        # no appointment date: the mapping quarantines the row (sql/mapping/050_views_operations.sql)
        db.query("UPDATE appointments SET appointment_date = NULL WHERE id = %s", (victim["appointment"],))
        assert db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'appointments' "
                         "AND source_pk = %s::text", (victim["appointment"],)) == 1

    result = copy_with_a_gap(db, invalidate)
    assert result["failed"] == [], result
    assert result["retries"] >= 1, "the batch was not started again after the update: %s" % result
    assert db.scalar("SELECT count(*) FROM carbot_v2.appointments WHERE id = %s", (victim["appointment"],)) == 0
    assert db.scalar("SELECT reason FROM carbot_v2.migration_quarantine WHERE target_table = 'appointments' "
                     "AND source_pk = %s::text", (victim["appointment"],)) == "missing appointments.appointment_date"
    finish_and_validate(db)


def test_a_write_to_a_row_the_batch_holds_waits_for_the_batch(half_copied):
    """The other order: the batch locked the row first, so the app's update waits, then its trigger sees the
    copied row and moves it to the quarantine (the update must not slip through without a trace)."""
    db = half_copied
    victim = {}
    writer = {}

    def invalidate_early_row(ids):
        victim["appointment"] = ids[1]  # before the held row: the batch holds it already
        conn = db.connect(autocommit=True)

        def update():
            with conn.cursor() as cur:
                cur.execute("UPDATE appointments SET appointment_date = NULL WHERE id = %s", (victim["appointment"],))
            writer["done"] = time.monotonic()
            conn.close()

        writer["thread"] = threading.Thread(target=update, daemon=True)
        writer["thread"].start()
        deadline = time.monotonic() + 30
        while not db.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                            "AND wait_event_type = 'Lock' AND query LIKE 'UPDATE appointments%%'"):
            assert time.monotonic() < deadline, "the app's update did not wait for the batch"
            time.sleep(0.05)

    result = copy_with_a_gap(db, invalidate_early_row)
    writer["thread"].join(30)
    assert "done" in writer
    assert result["failed"] == [], result
    assert db.scalar("SELECT count(*) FROM carbot_v2.appointments WHERE id = %s", (victim["appointment"],)) == 0
    assert db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'appointments' "
                     "AND source_pk = %s::text", (victim["appointment"],)) == 1
    finish_and_validate(db)


def test_customer_erased_after_the_batch_locked_it(half_copied):
    """The batch is past its statement (the customer locked FOR KEY SHARE), not yet committed: the erasure's
    sync waits for it (FOR UPDATE before it re-syncs the children) and then sees the copied appointment."""
    db = half_copied
    appointment, customer = db.query("SELECT a.id, a.customer_id FROM appointments a JOIN carbot_v2.customers c "
                                     "ON c.id = a.customer_id ORDER BY a.id LIMIT 1")[0]
    # first the customer's vehicles and reviews (before the copy): then nothing but the customer's own
    # sync waits for the batch below
    db.query("DELETE FROM vehicles WHERE customer_id = %s", (customer,))
    db.query("DELETE FROM reviews WHERE customer_id = %s", (customer,))
    copy_while_a_write_waits(db, "DELETE FROM customers WHERE id = %s", (customer,), None, "the erasure")
    assert db.query("SELECT customer_id FROM carbot_v2.appointments WHERE id = %s", (appointment,)) == [(None,)]
    finish_and_validate(db)


def quarantined_workshop(db):
    """A workshop whose appointments lie after the held row; quarantined now (unknown business type)."""
    ids = [r[0] for r in db.query("SELECT id FROM appointments ORDER BY id")]
    later = [str(i) for i in ids[len(ids) // 3 + 1:]]
    workshop = db.scalar("SELECT a.workshop_id FROM appointments a JOIN carbot_v2.workshops w ON w.id = a.workshop_id "
                         "WHERE a.id::text = ANY(%s) GROUP BY a.workshop_id ORDER BY count(*) DESC LIMIT 1", (later,))
    db.query("UPDATE workshops SET business_type = 'Raumschiffwerft' WHERE id = %s", (workshop,))
    assert db.scalar("SELECT count(*) FROM carbot_v2.workshops WHERE id = %s", (workshop,)) == 0
    return workshop


def appointments_of(db, workshop):
    return (db.scalar("SELECT count(*) FROM carbot_v2.appointments WHERE workshop_id = %s", (workshop,)),
            db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'appointments' "
                      "AND reason = 'parent quarantined: workshop_id' AND row_data->>'workshop_id' = %s::text",
                      (workshop,)))


def test_parent_leaves_the_quarantine_while_its_children_are_copied(half_copied):
    """The batch read the workshop as quarantined and quarantines its appointments; the workshop is fixed
    (and its sync looked for children in the quarantine) before the batch committed: the batch starts over."""
    db = half_copied
    workshop = quarantined_workshop(db)

    def fix(ids):
        db.query("UPDATE workshops SET business_type = 'franchise' WHERE id = %s", (workshop,))
        assert db.scalar("SELECT count(*) FROM carbot_v2.workshops WHERE id = %s", (workshop,)) == 1

    result = copy_with_a_gap(db, fix)
    assert result["failed"] == [], result
    assert result["retries"] >= 1, "the batch was not started again after the parent came back: %s" % result
    migrated, quarantined = appointments_of(db, workshop)
    assert migrated > 0 and quarantined == 0, (migrated, quarantined)
    finish_and_validate(db)


def test_parent_leaves_the_quarantine_after_the_batch_quarantined_its_children(half_copied):
    """The other order: the batch holds the workshop's lock; the fix waits for it and then moves the
    appointments the batch quarantined into carbot_v2."""
    db = half_copied
    workshop = quarantined_workshop(db)
    result = copy_while_a_write_waits(db, "UPDATE workshops SET business_type = 'franchise' WHERE id = %s",
                                      (workshop,), "advisory", "the fix")
    assert result["retries"] == 0, result
    migrated, quarantined = appointments_of(db, workshop)
    assert migrated > 0 and quarantined == 0, (migrated, quarantined)
    finish_and_validate(db)
