"""The forward sync where one target row depends on more than its own legacy row (no copy running).

* The advisory lock: two app transactions that change *different* legacy rows feeding the *same* carbot_v2 row
  (a workshop's name, and its owner user) run at once; the second must read the view only after the first
  committed, or the last upsert writes a projection that misses the other's change.
* The slug rule's dependency (sync.EXTRA_DEPENDENCIES): renaming or deleting workshop ``x`` frees the slug for
  its twin ``x-v2``, whose projection changes although its own legacy row did not.
"""

import threading
import time
import uuid

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import validation
from test_sync import build_migrated


@pytest.fixture(scope="module")
def migrated(make_database):
    db = make_database("syncdeps")
    build_migrated(db)
    return db


def assert_workshops_valid(db):
    conn = db.connect(autocommit=False)
    try:
        report = validation.Validator(conn, selected=["users", "organizations", "workshops"]).run(
            checks=("counts", "checksums"))
    finally:
        conn.close()
    assert report["failed"] is False, report["msg"]


def view_and_target(db, column, key):
    view = db.scalar("SELECT %s::text FROM carbot_migration.map_workshops WHERE _src_key = %%s" % column, (key,))
    target = db.scalar("SELECT %s::text FROM carbot_v2.workshops WHERE id = %%s" % column, (key,))
    return view, target


def test_two_transactions_on_one_target_row_apply_in_commit_order(migrated):
    """Workshop 'lock-v2' is fed by its own legacy row (name) and by its twin 'lock' (whether the slug is
    free). The first transaction renames 'lock-v2', the second renames its twin's slug; no foreign key or
    row lock orders them, only the sync's advisory lock on (workshops, key)."""
    db = migrated
    plain = new_workshop(db, "lock")
    suffixed = new_workshop(db, "lock-v2")
    assert view_and_target(db, "slug", suffixed) == ("lock-v2",) * 2
    first = db.connect(autocommit=False)
    waited = {}
    try:
        with first.cursor() as cur:
            # the app renames the v2 workshop: the sync upserts carbot_v2.workshops[suffixed], not committed yet
            cur.execute("UPDATE workshops SET name = 'Umbenannt im ersten' WHERE id = %s", (suffixed,))

        def second():
            conn = db.connect(autocommit=False)
            with conn.cursor() as cur:
                # another app transaction frees the slug 'lock': the sync re-projects the same workshop row
                cur.execute("UPDATE workshops SET slug = 'lock-frei' WHERE id = %s", (plain,))
            conn.commit()
            conn.close()
            waited["done"] = True

        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not waited.get("event"):
            rows = db.query("SELECT wait_event FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND query LIKE 'UPDATE workshops SET slug%%'")
            if rows:
                waited["event"] = rows[0][0]
            assert time.monotonic() < deadline and "done" not in waited, \
                "the second transaction never waited for the first: they do not share a row to prove anything"
            time.sleep(0.02)
        time.sleep(0.2)  # let the second transaction go as far as it can before the first commits
        first.commit()
    finally:
        first.close()
    thread.join(30)
    assert waited.get("done"), "the second transaction did not finish"
    name = view_and_target(db, "name", suffixed)
    slug = view_and_target(db, "slug", suffixed)
    assert name == ("Umbenannt im ersten",) * 2 and slug == ("lock",) * 2, (
        "carbot_v2.workshops %s holds name %r, slug %r where the view says %r, %r (the second transaction "
        "waited on lock event %s)" % (suffixed, name[1], slug[1], name[0], slug[0], waited.get("event")))
    assert_workshops_valid(db)


def new_workshop(db, slug):
    wid = str(uuid.uuid4())
    db.query("INSERT INTO workshops (id, name, slug, owner_email, business_type, is_active, created_at) "
             "VALUES (%s, %s, %s, %s, 'independent', true, now())", (wid, "Twin " + slug, slug, slug + "@twin.example"))
    return wid


def test_renaming_a_twin_frees_the_slug_of_its_v2_workshop(migrated):
    db = migrated
    plain = new_workshop(db, "twin-rename")
    suffixed = new_workshop(db, "twin-rename-v2")
    assert view_and_target(db, "slug", suffixed) == ("twin-rename-v2",) * 2
    db.query("UPDATE workshops SET slug = 'twin-renamed' WHERE id = %s", (plain,))
    view, target = view_and_target(db, "slug", suffixed)
    assert view == "twin-rename", view
    assert target == view, "after its twin's rename carbot_v2 keeps slug %r where the view says %r" % (target, view)
    assert_workshops_valid(db)


def test_taking_back_a_stripped_slug_gives_the_v2_workshop_its_suffix_again(migrated):
    """The workshop takes back the slug 'x' its twin 'x-v2' had been stripped to: the renamed workshop is upserted
    before the twin is re-projected; the slug is unique at commit (sql/v2/035_deferred_unique.sql), so the app's
    UPDATE goes through and both end as the view says (it failed on the unique slug before)."""
    db = migrated
    plain = new_workshop(db, "twin-back")
    suffixed = new_workshop(db, "twin-back-v2")
    db.query("UPDATE workshops SET slug = 'twin-away' WHERE id = %s", (plain,))
    assert view_and_target(db, "slug", suffixed) == ("twin-back",) * 2
    db.query("UPDATE workshops SET slug = 'twin-back' WHERE id = %s", (plain,))
    assert view_and_target(db, "slug", suffixed) == ("twin-back-v2",) * 2
    assert_workshops_valid(db)


def test_deleting_a_twin_frees_the_slug_of_its_v2_workshop(migrated):
    db = migrated
    plain = new_workshop(db, "twin-delete")
    suffixed = new_workshop(db, "twin-delete-v2")
    db.query("DELETE FROM workshops WHERE id = %s", (plain,))
    view, target = view_and_target(db, "slug", suffixed)
    assert view == "twin-delete", view
    assert target == view, "after its twin's delete carbot_v2 keeps slug %r where the view says %r" % (target, view)
    assert_workshops_valid(db)


def test_a_user_leaving_and_entering_the_quarantine_takes_its_memberships_along(migrated):
    """team_members.user_id is a required reference (docs/mapping.md): the sync moves a user's memberships to the
    quarantine with the user and brings them back with it (found through the declaration's references)."""
    db = migrated
    user, members = db.query(
        "SELECT m.user_id, count(*) FROM carbot_v2.team_members m JOIN users u ON u.id = m.user_id "
        "WHERE u.role = 'staff' GROUP BY m.user_id ORDER BY count(*) DESC, m.user_id LIMIT 1")[0]
    db.query("UPDATE users SET role = 'superuser' WHERE id = %s", (user,))
    assert db.scalar("SELECT count(*) FROM carbot_v2.team_members WHERE user_id = %s", (user,)) == 0
    moved = db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'team_members' "
                      "AND row_data->>'user_id' = %s AND reason = 'parent quarantined: user_id'", (str(user),))
    assert moved == members, (moved, members)
    db.query("UPDATE users SET role = 'staff' WHERE id = %s", (user,))
    back = db.scalar("SELECT count(*) FROM carbot_v2.team_members WHERE user_id = %s", (user,))
    left = db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'team_members' "
                     "AND row_data->>'user_id' = %s", (str(user),))
    assert (back, left) == (members, 0), (
        "user %s re-entered carbot_v2 but %d of its %d team memberships are back and %d still quarantined"
        % (user, back, members, left))
    conn = db.connect(autocommit=False)
    try:
        report = validation.Validator(conn, selected=["users", "team_members"]).run(checks=("counts", "checksums"))
    finally:
        conn.close()
    assert report["failed"] is False, report["msg"]
