"""users, workshops and chat_messages synced per statement (issue 14), against a real PostgreSQL and the real mapping.

Their trigger reads more of a row than its key (the chat session of a message's old and new conversation and time,
the organizations of an owner's old and new email, the case-duplicate users of an address, the '-v2' slug twin);
the statement trigger re-derives those from the whole transition tables. Each test writes many rows in one
statement and then compares carbot_v2 twice: with the mapping views (counts, checksums, integrity: ``assert_valid``)
and with an oracle that is not the mapping (the sessions recomputed from the legacy messages in the test, the
slugs, emails and organizations the test expects by hand). The first two tests fail on the row trigger (one call
per row); the others prove that the statement trigger ends where the row trigger did.
"""

import uuid

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import sync
from test_sync import assert_valid, build_migrated, cut_over, module_params

FORWARD_TABLES = ("users", "workshops", "chat_messages")


@pytest.fixture(scope="module")
def migrated(make_database):
    db = make_database("syncstmt")
    build_migrated(db)
    assert_valid(db)
    return db


def mapped_workshop(db, offset=0):
    return str(db.scalar("SELECT w.id FROM public.workshops w WHERE EXISTS (SELECT 1 FROM carbot_v2.workshops t "
                         "WHERE t.id = w.id) ORDER BY w.id OFFSET %s LIMIT 1", (offset,)))


def sessions_oracle(db, conversations):
    """{(workshop, kunde): (started_at, last_message_at)} as the legacy messages say (computed here, not by the
    view), for the conversations whose workshop is in carbot_v2; and the same read from carbot_v2.chat_sessions."""
    expected, actual = {}, {}
    for ws, kunde in conversations:
        rows = db.query("SELECT min(m.created_at), max(m.created_at), count(*) FROM public.chat_messages m "
                        "WHERE m.workshop_id = %s AND m.kunde_id = %s", (ws, kunde))
        lo, hi, n = rows[0]
        if n:
            expected[(ws, kunde)] = (lo, hi)
        got = db.query("SELECT started_at, last_message_at FROM carbot_v2.chat_sessions "
                       "WHERE workshop_id = %s AND client_key = %s", (ws, kunde))
        if got:
            actual[(ws, kunde)] = got[0]
    return expected, actual


def assert_sessions(db, conversations):
    expected, actual = sessions_oracle(db, conversations)
    assert actual == expected
    return expected


def function_calls(db, statement, args=None):
    """Run ``statement`` in a transaction with track_functions on: {function name: calls} of the sync functions."""
    conn = db.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL track_functions = 'all'")
            cur.execute(statement, args)
            cur.execute("SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE schemaname = 'carbot_migration'")
            calls = dict(cur.fetchall())
        conn.commit()
    finally:
        conn.close()
    return calls


def test_users_workshops_and_chat_messages_carry_statement_triggers_and_no_row_trigger(migrated):
    assert_statement_triggers_only(migrated)


def assert_statement_triggers_only(db):
    for table in FORWARD_TABLES:
        triggers = dict(db.query(
            "SELECT tgname, (tgtype & 1) = 1 FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname LIKE "
            "'carbot\\_sync\\_fwd%%'", ("public." + table,)))
        assert triggers == {"carbot_sync_fwd": False, "carbot_sync_fwd_upd": False, "carbot_sync_fwd_del": False,
                            "carbot_sync_fwd_truncate": False}, (table, triggers)
    assert db.scalar("SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n "
                     "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND t.tgname LIKE 'carbot\\_sync%%' "
                     "AND (t.tgtype & 1) = 1") == 0  # no row trigger left on any legacy table
    assert db.scalar("SELECT count(*) FROM pg_proc WHERE proname LIKE 'carbot\\_sync\\_trg\\_%%'") == 0


def test_a_multi_row_insert_of_messages_is_one_trigger_call(migrated):
    """1 trigger call for 40 messages in two conversations; the per-key function once per message, the session
    function at most twice per conversation (its first and last time)."""
    db = migrated
    ws = mapped_workshop(db)
    calls = function_calls(db, "INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
                               "SELECT %s, 'calls-' || (g %% 2), 'user', 'm' || g, '2025-03-01'::timestamptz "
                               "+ g * interval '1 minute' FROM generate_series(1, 40) g", (ws,))
    assert calls.get("carbot_sync_stmt_chat_messages") == 1, calls
    assert calls.get("carbot_sync_chat_messages") == 40, calls
    assert calls.get("carbot_sync_chat_sessions") == 4, calls
    assert "carbot_sync_trg_chat_messages" not in calls
    assert_sessions(db, [(ws, "calls-0"), (ws, "calls-1")])


def test_a_multi_row_insert_of_messages_widens_an_existing_session_and_starts_a_new_one(migrated):
    """One INSERT: messages before the existing session's first and after its last message, a NULL and an infinite
    time, and a new conversation whose messages arrive out of order (one with no time). Each session ends as the
    legacy messages say, as the row trigger's call per message left it."""
    db = migrated
    ws, kunde = db.query("SELECT s.workshop_id, s.client_key FROM carbot_v2.chat_sessions s "
                         "WHERE s.started_at < s.last_message_at ORDER BY s.id LIMIT 1")[0]
    ws = str(ws)
    before = assert_sessions(db, [(ws, kunde)])[(ws, kunde)]
    db.query("INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) VALUES "
             "(%(ws)s, %(k)s, 'user', 'frueh', %(lo)s::timestamptz - interval '1 day'), "
             "(%(ws)s, %(k)s, 'bot', 'spaet', %(hi)s::timestamptz + interval '1 day'), "
             "(%(ws)s, %(k)s, 'bot', 'ohne Zeit', NULL), "
             "(%(ws)s, 'neu-multi', 'bot', 'zweite', '2025-05-02'), "
             "(%(ws)s, 'neu-multi', 'user', 'ohne Zeit', NULL), "
             "(%(ws)s, 'neu-multi', 'user', 'erste', '2025-05-01'), "
             "(%(ws)s, 'neu-inf', 'user', 'unendlich', 'infinity'), "
             "(%(ws)s, 'neu-inf', 'user', 'minus unendlich', '-infinity'), "
             "(%(ws)s, 'neu-null', 'user', 'nie', NULL)",
             {"ws": ws, "k": kunde, "lo": before[0], "hi": before[1]})
    got = assert_sessions(db, [(ws, kunde), (ws, "neu-multi"), (ws, "neu-inf"), (ws, "neu-null")])
    assert got[(ws, kunde)][0] < before[0] and got[(ws, kunde)][1] > before[1]
    assert [str(v.date()) for v in got[(ws, "neu-multi")]] == ["2025-05-01", "2025-05-02"]
    assert got[(ws, "neu-null")] == (None, None)
    assert db.query("SELECT started_at::text, last_message_at::text FROM carbot_v2.chat_sessions "
                    "WHERE workshop_id = %s AND client_key = 'neu-inf'", (ws,)) == [("-infinity", "infinity")]
    assert_valid(db)


def test_a_multi_row_delete_of_a_customers_chat_removes_or_reaggregates_the_sessions(migrated):
    """A GDPR erasure deletes a customer's whole chat in one statement (its session goes); another DELETE takes the
    first and the last message of a conversation (its session shrinks to what is left)."""
    db = migrated
    ws = mapped_workshop(db, 1)
    db.query("INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
             "SELECT %s, k, 'user', 'm' || g, '2025-06-01'::timestamptz + g * interval '1 hour' "
             "FROM generate_series(1, 6) g, unnest(ARRAY['gdpr-weg', 'gdpr-rest']) k", (ws,))
    assert_sessions(db, [(ws, "gdpr-weg"), (ws, "gdpr-rest")])
    calls = function_calls(db, "DELETE FROM public.chat_messages WHERE kunde_id = 'gdpr-weg'")
    assert calls.get("carbot_sync_stmt_chat_messages") == 1 and calls.get("carbot_sync_chat_sessions") == 1, calls
    assert db.scalar("SELECT count(*) FROM carbot_v2.chat_sessions WHERE client_key = 'gdpr-weg'") == 0
    assert db.scalar("SELECT count(*) FROM carbot_v2.chat_messages m JOIN carbot_v2.chat_sessions s "
                     "ON s.id = m.session_id WHERE s.client_key = 'gdpr-weg'") == 0
    db.query("DELETE FROM public.chat_messages WHERE workshop_id = %s AND kunde_id = 'gdpr-rest' AND created_at IN "
             "(SELECT min(created_at) FROM public.chat_messages WHERE kunde_id = 'gdpr-rest' UNION "
             "SELECT max(created_at) FROM public.chat_messages WHERE kunde_id = 'gdpr-rest')", (ws,))
    got = assert_sessions(db, [(ws, "gdpr-weg"), (ws, "gdpr-rest")])
    assert [v.hour for v in got[(ws, "gdpr-rest")]] == [2, 5]
    assert_valid(db)


def test_an_update_moving_messages_between_conversations(migrated):
    """One UPDATE moves the first message of conversation A and another to the existing conversation B, one to a
    new conversation C, and re-times a message of B; a second UPDATE moves all of D's messages to E (D's session
    goes) and changes the key of one of them (both its conversations re-aggregated)."""
    db = migrated
    ws = mapped_workshop(db, 2)
    db.query("INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
             "SELECT %s, k, 'user', k || g, '2025-07-01'::timestamptz + g * interval '1 day' "
             "FROM generate_series(1, 4) g, unnest(ARRAY['mv-a', 'mv-b', 'mv-d', 'mv-e']) k", (ws,))
    ids = dict(((k, int(m[-1])), i) for i, k, m in db.query(
        "SELECT id, kunde_id, message FROM public.chat_messages WHERE workshop_id = %s AND kunde_id LIKE 'mv-%%'",
        (ws,)))
    convs = [(ws, "mv-" + c) for c in "abcde"]
    db.query("UPDATE public.chat_messages SET kunde_id = CASE WHEN id IN (%(a1)s, %(a3)s) THEN 'mv-b' "
             "WHEN id = %(a4)s THEN 'mv-c' ELSE kunde_id END, "
             "created_at = CASE WHEN id = %(b2)s THEN '2030-01-01' ELSE created_at END "
             "WHERE id IN (%(a1)s, %(a3)s, %(a4)s, %(b2)s)",
             {"a1": ids[("mv-a", 1)], "a3": ids[("mv-a", 3)], "a4": ids[("mv-a", 4)], "b2": ids[("mv-b", 2)]})
    got = assert_sessions(db, convs)
    assert [v.day for v in got[(ws, "mv-a")]] == [3, 3]  # only its second message (July 3) is left
    assert got[(ws, "mv-b")][1].year == 2030 and got[(ws, "mv-b")][0].day == 2
    assert (ws, "mv-c") in got
    new_id = db.scalar("SELECT max(id) + 1000 FROM public.chat_messages")
    db.query("UPDATE public.chat_messages SET kunde_id = 'mv-e', id = CASE WHEN id = %s THEN %s ELSE id END "
             "WHERE workshop_id = %s AND kunde_id = 'mv-d'", (ids[("mv-d", 1)], new_id, ws))
    got = assert_sessions(db, convs)
    assert (ws, "mv-d") not in got and db.scalar(
        "SELECT count(*) FROM carbot_v2.chat_sessions WHERE workshop_id = %s AND client_key = 'mv-d'", (ws,)) == 0
    assert db.scalar("SELECT count(*) FROM carbot_v2.chat_messages WHERE id = %s", (ids[("mv-d", 1)],)) == 0
    assert db.scalar("SELECT count(*) FROM carbot_v2.chat_messages WHERE id = %s", (new_id,)) == 1
    assert_valid(db)


def new_user(db, email, created_at, uid=None):
    uid = uid or str(uuid.uuid4())
    db.query("INSERT INTO public.users (id, email, full_name, role, created_at) VALUES (%s, %s, 'Statement Test', "
             "'owner', %s)", (uid, email, created_at))
    return uid


def target_user(db, uid):
    return db.query("SELECT email, legacy_raw->>'email_duplicate_of' FROM carbot_v2.users WHERE id = %s", (uid,))[0]


def organization_email_of(db, workshop):
    return db.scalar("SELECT o.email FROM carbot_v2.workshops w JOIN carbot_v2.organizations o "
                     "ON o.id = w.organization_id WHERE w.id = %s", (workshop,))


@pytest.mark.parametrize("taker_in_statement", [False, True], ids=["taker-a-dependent", "taker-in-the-statement"])
def test_a_multi_row_update_of_users_swaps_case_duplicates_and_moves_an_owners_workshops(migrated, taker_in_statement):
    """Users first (2020) and second (2021) share an address up to case: the first has it in carbot_v2, the second
    is its duplicate. One UPDATE of several users gives the first another address: the second now owns the address
    (a dependent of the statement, or in it, renamed), the first's workshop (no owner_email of its own: its
    organization is keyed by the owner's address) moves to the organization of the new address; a third user, in
    no statement, is the next duplicate. With the second in the statement, the statement's block meets carbot_v2's
    unique email (the rows are upserted in one statement, the taker may come first) and the row-by-row fallback,
    with its second try, ends in the same state."""
    db = migrated
    tag = uuid.uuid4().hex[:6]
    addr, moved = "swap-%s@example.de" % tag, "moved-%s@example.de" % tag
    first = new_user(db, addr, "2020-01-01")
    second = new_user(db, " " + addr.upper(), "2021-01-01")
    third = new_user(db, addr.capitalize(), "2022-01-01")
    bystander = new_user(db, "bystander-%s@example.de" % tag, "2020-01-01")
    ws = str(uuid.uuid4())
    db.query("INSERT INTO public.workshops (id, owner_id, name, slug, business_type, is_active, created_at) "
             "VALUES (%s, %s, 'Owner moves', %s, 'independent', true, now())", (ws, first, "owner-moves-" + tag))
    assert target_user(db, first) == (addr, None) and target_user(db, second) == (None, first)
    assert organization_email_of(db, ws) == addr
    written = [first, bystander] + ([second] if taker_in_statement else [])
    db.query("UPDATE public.users SET email = CASE WHEN id = %s THEN %s ELSE email END, full_name = 'Renamed' "
             "WHERE id = ANY(%s::uuid[])", (first, moved, written))
    assert target_user(db, first) == (moved, None)
    assert target_user(db, second) == (addr, None)
    assert target_user(db, third) == (None, second)
    assert organization_email_of(db, ws) == moved
    assert db.scalar("SELECT count(*) FROM carbot_v2.organizations WHERE email = %s", (addr,)) == 0
    assert db.scalar("SELECT count(*) FROM carbot_v2.users WHERE id = ANY(%s::uuid[]) AND full_name = 'Renamed'",
                     (written,)) == len(written)
    assert db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = 'users' "
                     "AND source_pk = ANY(%s)", ([first, second, third],)) == 0
    assert_valid(db)


def test_a_multi_row_update_of_200_users_is_one_trigger_call(migrated):
    db = migrated
    calls = function_calls(db, "UPDATE public.users SET last_login_at = now() WHERE id IN "
                               "(SELECT id FROM public.users ORDER BY id LIMIT 200)")
    assert calls.get("carbot_sync_stmt_users") == 1, calls
    assert "carbot_sync_trg_users" not in calls
    assert_valid(db)


def test_a_multi_row_slug_change_creates_and_removes_v2_twins(migrated):
    """One UPDATE renames workshop x away (its twin x-v2 loses its suffix in carbot_v2) and renames another workshop
    to y (the stripped twin y-v2 gets its suffix back); one DELETE removes z and z-v2's base z2 (both twins
    stripped)."""
    db = migrated
    tag = uuid.uuid4().hex[:6]

    def workshop(slug):
        wid = str(uuid.uuid4())
        db.query("INSERT INTO public.workshops (id, name, slug, owner_email, business_type, is_active, created_at) "
                 "VALUES (%s, %s, %s, %s, 'independent', true, now())",
                 (wid, "Twin " + slug, slug, slug + "@t.example"))
        return wid

    def slug(wid):
        return db.scalar("SELECT slug FROM carbot_v2.workshops WHERE id = %s", (wid,))

    x, x2 = workshop("x-" + tag), workshop("x-%s-v2" % tag)
    y2, other = workshop("y-%s-v2" % tag), workshop("other-" + tag)
    z, z2, zv, z2v = workshop("z-" + tag), workshop("z2-" + tag), workshop("z-%s-v2" % tag), workshop("z2-%s-v2" % tag)
    assert (slug(x2), slug(y2), slug(zv), slug(z2v)) == ("x-%s-v2" % tag, "y-" + tag, "z-%s-v2" % tag,
                                                         "z2-%s-v2" % tag)
    db.query("UPDATE public.workshops SET slug = CASE WHEN id = %s THEN %s ELSE %s END WHERE id IN (%s, %s)",
             (x, "x-away-" + tag, "y-" + tag, x, other))
    assert (slug(x), slug(x2), slug(other), slug(y2)) == ("x-away-" + tag, "x-" + tag, "y-" + tag, "y-%s-v2" % tag)
    db.query("DELETE FROM public.workshops WHERE id IN (%s, %s)", (z, z2))
    assert (slug(zv), slug(z2v)) == ("z-" + tag, "z2-" + tag)
    assert_valid(db)


def test_a_data_error_in_a_multi_row_statement_quarantines_only_that_row(migrated):
    """A carbot_v2 rule the mapping does not know breaks one message of a multi-row INSERT and one user of a
    multi-row UPDATE: the statement's block fails, the fallback syncs row by row; the one row is quarantined
    ('sync failed: ...', one WARNING), the others and the session are synced, the app's write goes through."""
    db = migrated
    ws = mapped_workshop(db, 3)
    db.query("ALTER TABLE carbot_v2.chat_messages ADD CONSTRAINT stmt_no_boom CHECK (message IS DISTINCT FROM 'BOOM') "
             "NOT VALID")
    db.query("ALTER TABLE carbot_v2.users ADD CONSTRAINT stmt_no_boom CHECK (full_name IS DISTINCT FROM 'BOOM') "
             "NOT VALID")
    try:
        conn = db.connect()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
                        "SELECT %s, 'boom-chat', 'user', CASE WHEN g = 3 THEN 'BOOM' ELSE 'ok' END, "
                        "'2025-08-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 5) g "
                        "RETURNING id, message", (ws,))
            boom = [i for i, m in cur.fetchall() if m == "BOOM"][0]
        assert sum("quarantined, the write goes through" in n for n in conn.notices) == 1, conn.notices
        assert db.scalar("SELECT count(*) FROM carbot_v2.chat_messages m JOIN carbot_v2.chat_sessions s "
                         "ON s.id = m.session_id WHERE s.workshop_id = %s AND s.client_key = 'boom-chat'", (ws,)) == 4
        reason = db.scalar("SELECT reason FROM carbot_v2.migration_quarantine WHERE target_table = 'chat_messages' "
                           "AND source_pk = %s", (str(boom),))
        assert reason.startswith("sync failed: ") and "stmt_no_boom" in reason, reason
        assert_sessions(db, [(ws, "boom-chat")])
        users = [str(r[0]) for r in db.query("SELECT u.id FROM public.users u JOIN carbot_v2.users t ON t.id = u.id "
                                             "ORDER BY u.id LIMIT 10")]
        del conn.notices[:]
        with conn.cursor() as cur:
            cur.execute("UPDATE public.users SET full_name = CASE WHEN id = %s THEN 'BOOM' ELSE 'Bulk Name' END "
                        "WHERE id = ANY(%s::uuid[])", (users[4], users))
        assert sum("quarantined, the write goes through" in n for n in conn.notices) == 1, conn.notices
        conn.close()
        assert db.scalar("SELECT count(*) FROM carbot_v2.users WHERE id = ANY(%s::uuid[]) AND full_name = "
                         "'Bulk Name'", (users,)) == 9
        assert db.scalar("SELECT reason FROM carbot_v2.migration_quarantine WHERE target_table = 'users' "
                         "AND source_pk = %s", (users[4],)).startswith("sync failed: ")
        db.query("UPDATE public.chat_messages SET message = 'fixed' WHERE id = %s", (boom,))
        db.query("UPDATE public.users SET full_name = 'Fixed' WHERE id = %s", (users[4],))
        assert db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE reason LIKE 'sync failed%%'") == 0
        assert_valid(db)
    finally:
        db.query("ALTER TABLE carbot_v2.chat_messages DROP CONSTRAINT stmt_no_boom")
        db.query("ALTER TABLE carbot_v2.users DROP CONSTRAINT stmt_no_boom")


def test_multi_row_writes_of_an_old_pod_while_the_reverse_sync_is_live(make_database):
    """After the switch (reverse triggers, the forward functions re-created with the loop marker and the id bumps) an
    old pod still writes to the legacy schema: a multi-row INSERT of messages reaches carbot_v2 with its session,
    the new app's next message (a default id) does not collide with those ids and goes back to the legacy schema, a
    multi-row DELETE and a bulk UPDATE of users reach carbot_v2; both sides agree with the views."""
    db = make_database("syncstmtrev")
    plan = build_migrated(db)
    cut_over(db, plan)
    ws = mapped_workshop(db)
    ids = [r[0] for r in db.query(
        "INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
        "SELECT %s, 'rev-multi', 'user', 'alt ' || g, '2025-09-01'::timestamptz + g * interval '1 minute' "
        "FROM generate_series(1, 5) g RETURNING id", (ws,))]
    assert db.scalar("SELECT count(*) FROM carbot_v2.chat_messages WHERE id = ANY(%s)", (ids,)) == 5
    assert_sessions(db, [(ws, "rev-multi")])
    new_id = db.scalar(
        "INSERT INTO carbot_v2.chat_messages (session_id, workshop_id, sender, message, created_at) "
        "SELECT id, workshop_id, 'bot', 'neue App', '2025-09-02' FROM carbot_v2.chat_sessions "
        "WHERE workshop_id = %s AND client_key = 'rev-multi' RETURNING id", (ws,))
    assert new_id > max(ids)
    assert db.scalar("SELECT kunde_id FROM public.chat_messages WHERE id = %s", (new_id,)) == "rev-multi"
    assert [v.day for v in assert_sessions(db, [(ws, "rev-multi")])[(ws, "rev-multi")]] == [1, 2]
    db.query("DELETE FROM public.chat_messages WHERE workshop_id = %s AND kunde_id = 'rev-multi'", (ws,))
    assert db.scalar("SELECT count(*) FROM carbot_v2.chat_sessions WHERE workshop_id = %s "
                     "AND client_key = 'rev-multi'", (ws,)) == 0
    # one transaction: the old pod's bulk UPDATE, then a write of the new app; the statement trigger clears its loop
    # marker at its end, so the new app's write still goes back to the legacy schema
    user = str(db.scalar("SELECT id FROM carbot_v2.users ORDER BY id DESC LIMIT 1"))
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("UPDATE public.users SET full_name = 'Alter Pod' WHERE id IN (SELECT id FROM public.users "
                    "ORDER BY id LIMIT 10)")
        cur.execute("UPDATE carbot_v2.users SET full_name = 'Neue App' WHERE id = %s", (user,))
    conn.commit()
    conn.close()
    assert db.scalar("SELECT count(*) FROM carbot_v2.users WHERE full_name = 'Alter Pod'") == 10
    assert db.scalar("SELECT full_name FROM public.users WHERE id = %s", (user,)) == "Neue App"
    assert_valid(db)


def test_an_installation_with_the_row_trigger_is_upgraded_under_lock_timeout(make_database):
    """An installation from before (users, workshops and chat_messages with the row trigger carbot_sync_fwd and its
    function carbot_sync_trg_<table>, as main installed them): status and the check mode say the three tables need
    work, install replaces the row trigger by the statement triggers in the same short transaction and drops the
    old function; a multi-row write is then synced once per statement."""
    db = make_database("syncstmtup")
    plan = build_migrated(db)
    for table in FORWARD_TABLES:
        db.query("DROP TRIGGER carbot_sync_fwd ON public.%s; DROP TRIGGER carbot_sync_fwd_upd ON public.%s; "
                 "DROP TRIGGER carbot_sync_fwd_del ON public.%s" % (table, table, table))  # names of the test
        db.query("CREATE FUNCTION carbot_migration.carbot_sync_trg_%s() RETURNS trigger LANGUAGE plpgsql AS "
                 "'BEGIN RETURN NULL; END'" % table)
        db.query("CREATE TRIGGER carbot_sync_fwd AFTER INSERT OR UPDATE OR DELETE ON public.%s FOR EACH ROW "
                 "EXECUTE FUNCTION carbot_migration.carbot_sync_trg_%s()" % (table, table))
    conn = db.connect()
    try:
        state = sync.status(conn)[sync.FORWARD]
        changes = sync.plan_changes(conn, plan, sync.FORWARD, "present")
    finally:
        conn.close()
    assert [t for t, rec in state.items() if not rec["enabled"]] == list(FORWARD_TABLES)
    assert changes["create"] == list(FORWARD_TABLES)
    result = sync.install(module_params(db), plan, sync.FORWARD)
    assert [t for t, rec in result["tables"].items() if rec["changed"]] == list(FORWARD_TABLES)
    conn = db.connect()
    try:
        assert all(rec["enabled"] for rec in sync.status(conn)[sync.FORWARD].values())
        assert sync.plan_changes(conn, plan, sync.FORWARD, "present")["create"] == []
    finally:
        conn.close()
    assert_statement_triggers_only(db)
    ws = mapped_workshop(db)
    calls = function_calls(db, "INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
                               "SELECT %s, 'upgraded', 'user', 'm' || g, '2025-10-01'::timestamptz "
                               "+ g * interval '1 minute' FROM generate_series(1, 10) g", (ws,))
    assert calls.get("carbot_sync_stmt_chat_messages") == 1, calls
    assert_sessions(db, [(ws, "upgraded")])
    assert_valid(db)


def warnings_of(db, statement, args=None):
    """Run ``statement`` (autocommit): the number of "quarantined, the write goes through" warnings it raised."""
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
        return sum("quarantined, the write goes through" in n for n in conn.notices)
    finally:
        conn.close()


def sync_failed(db, table, key):
    return db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE target_table = %s AND source_pk = %s "
                     "AND reason LIKE 'sync failed: %%'", (table, str(key)))


def test_the_row_by_row_fallback_of_every_event_runs(migrated):
    """plpgsql checks a statement only when it runs: every fallback branch of the three tables' statement triggers
    is made to run once by a carbot_v2 rule the mapping does not know (an UPDATE moving messages, a DELETE whose
    session breaks a rule, an INSERT and an UPDATE of workshops with their slug dependents, an INSERT of users with
    theirs, DELETEs of users and workshops whose dependent breaks the rule). Each time the failing row or dependent
    is quarantined ('sync failed', a WARNING each), the others are synced and the write goes through."""
    db = migrated
    ws = mapped_workshop(db, 4)
    rules = [("chat_messages", "message IS DISTINCT FROM 'BOOM'"),
             ("chat_sessions", "last_message_at IS DISTINCT FROM '2031-01-01 00:00+00'"),
             ("workshops", "phone IS DISTINCT FROM 'BOOM'"), ("users", "full_name IS DISTINCT FROM 'BOOM'")]
    for table, rule in rules:
        db.query("ALTER TABLE carbot_v2.%s ADD CONSTRAINT fallback_rule CHECK (%s) NOT VALID" % (table, rule))
    try:
        ids = [r[0] for r in db.query(
            "INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
            "SELECT %s, 'fb-a', 'user', 'm' || g, '2025-11-01'::timestamptz + g * interval '1 hour' "
            "FROM generate_series(1, 4) g RETURNING id", (ws,))]
        # UPDATE: three messages move to fb-b, one of them breaks the rule
        assert warnings_of(db, "UPDATE public.chat_messages SET kunde_id = 'fb-b', message = CASE WHEN id = %s "
                               "THEN 'BOOM' ELSE message END WHERE id = ANY(%s)", (ids[1], ids[1:])) == 1
        assert sync_failed(db, "chat_messages", ids[1]) == 1
        assert db.scalar("SELECT count(*) FROM carbot_v2.chat_messages m JOIN carbot_v2.chat_sessions s ON "
                         "s.id = m.session_id WHERE m.id = ANY(%s) AND s.client_key = 'fb-b'", (ids[2:],)) == 2
        assert_sessions(db, [(ws, "fb-a"), (ws, "fb-b")])
        db.query("UPDATE public.chat_messages SET message = 'fixed' WHERE id = %s", (ids[1],))
        # DELETE: the session left behind breaks its rule; the row trigger quarantined the deleted row then, too
        late = [r[0] for r in db.query(
            "INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) VALUES "
            "(%s, 'fb-c', 'user', 'x', '2031-01-01 00:00+00'), (%s, 'fb-c', 'user', 'y', '2031-01-02 00:00+00'), "
            "(%s, 'fb-d', 'user', 'z', '2031-01-03 00:00+00') RETURNING id", (ws, ws, ws))]
        assert warnings_of(db, "DELETE FROM public.chat_messages WHERE id IN (%s, %s)", (late[1], late[2])) == 1
        assert sync_failed(db, "chat_messages", late[1]) == 1
        assert db.scalar("SELECT count(*) FROM carbot_v2.chat_messages WHERE id = %s", (late[2],)) == 0
        assert db.scalar("SELECT count(*) FROM carbot_v2.chat_sessions WHERE workshop_id = %s "
                         "AND client_key = 'fb-d'", (ws,)) == 0
        # workshops: INSERT and UPDATE, with a '-v2' dependent each
        tag = uuid.uuid4().hex[:6]
        w1, w2 = str(uuid.uuid4()), str(uuid.uuid4())
        assert warnings_of(db, "INSERT INTO public.workshops (id, name, slug, owner_email, phone, business_type, "
                               "is_active, created_at) VALUES (%s, 'FB 1', %s, 'fb1@t.example', 'BOOM', "
                               "'independent', true, now()), (%s, 'FB 2', %s, 'fb2@t.example', '1', 'independent', "
                               "true, now())", (w1, "fb-" + tag, w2, "fb-%s-v2" % tag)) == 1
        assert sync_failed(db, "workshops", w1) == 1
        assert db.scalar("SELECT slug FROM carbot_v2.workshops WHERE id = %s", (w2,)) == "fb-%s-v2" % tag
        assert warnings_of(db, "UPDATE public.workshops SET phone = CASE WHEN id = %s THEN 'BOOM' ELSE '2' END, "
                               "slug = CASE WHEN id = %s THEN %s ELSE slug END WHERE id IN (%s, %s)",
                           (w2, w1, "fb-away-" + tag, w1, w2)) == 1
        assert sync_failed(db, "workshops", w2) == 1 and sync_failed(db, "workshops", w1) == 0
        assert db.scalar("SELECT slug FROM carbot_v2.workshops WHERE id = %s", (w1,)) == "fb-away-" + tag
        db.query("UPDATE public.workshops SET phone = '3' WHERE id = %s", (w2,))
        assert db.scalar("SELECT slug FROM carbot_v2.workshops WHERE id = %s", (w2,)) == "fb-" + tag
        # users: INSERT of a case duplicate and a user that breaks the rule
        addr = "fb-%s@example.de" % tag
        u1, u2 = str(uuid.uuid4()), str(uuid.uuid4())
        assert warnings_of(db, "INSERT INTO public.users (id, email, full_name, role, created_at) VALUES "
                               "(%s, %s, 'BOOM', 'owner', '2020-01-01'), (%s, %s, 'ok', 'owner', '2021-01-01')",
                           (u1, addr, u2, addr.upper())) == 1
        assert sync_failed(db, "users", u1) == 1
        assert db.query("SELECT email, legacy_raw->>'email_duplicate_of' FROM carbot_v2.users WHERE id = %s",
                        (u2,)) == [(None, u1)]
        db.query("UPDATE public.users SET full_name = 'fixed' WHERE id = %s", (u1,))
        # DELETEs whose dependent breaks the rule: a workshop owned by a deleted user, the '-v2' twin of a deleted
        # workshop (the phone 'BOOM' written while the rule was off: a dependent's data error)
        owner, owned, twin_base, twin = (str(uuid.uuid4()) for _ in range(4))
        db.query("INSERT INTO public.users (id, email, full_name, role, created_at) VALUES "
                 "(%s, %s, 'owner', 'owner', now())", (owner, "fb-owner-%s@example.de" % tag))
        db.query("INSERT INTO public.workshops (id, owner_id, name, slug, phone, business_type, is_active, created_at) "
                 "VALUES (%s, %s, 'FB owned', %s, '4', 'independent', true, now()), "
                 "(%s, NULL, 'FB base', %s, '5', 'independent', true, now()), "
                 "(%s, NULL, 'FB twin', %s, '6', 'independent', true, now())",
                 (owned, owner, "fb-owned-" + tag, twin_base, "fb-base-" + tag, twin, "fb-base-%s-v2" % tag))
        db.query("ALTER TABLE carbot_v2.workshops DROP CONSTRAINT fallback_rule")
        db.query("UPDATE public.workshops SET phone = 'BOOM' WHERE id IN (%s, %s)", (owned, twin))
        db.query("ALTER TABLE carbot_v2.workshops ADD CONSTRAINT fallback_rule CHECK (phone IS DISTINCT FROM 'BOOM') "
                 "NOT VALID")
        # the owner's own sync re-syncs its workshop too (a child leaving its parent): that row fails as well
        assert warnings_of(db, "DELETE FROM public.users WHERE id IN (%s, %s)", (owner, u2)) == 2
        assert sync_failed(db, "workshops", owned) == 1 and sync_failed(db, "users", owner) == 1
        assert db.scalar("SELECT count(*) FROM carbot_v2.users WHERE id = %s", (u2,)) == 0
        assert warnings_of(db, "DELETE FROM public.workshops WHERE id IN (%s, %s)", (twin_base, w1)) == 1
        assert sync_failed(db, "workshops", twin) == 1
        assert db.scalar("SELECT count(*) FROM carbot_v2.workshops WHERE id IN (%s, %s)", (twin_base, w1)) == 0
        db.query("UPDATE public.workshops SET phone = 'fixed' WHERE id IN (%s, %s)", (owned, twin))
    finally:
        for table, _rule in rules:
            db.query("ALTER TABLE carbot_v2.%s DROP CONSTRAINT fallback_rule" % table)
    # what the deleted message's quarantine row stands for is gone: re-synced as sync_check repair would
    db.query("SELECT carbot_migration.carbot_sync_chat_messages(%s, true)", (late[1],))
    db.query("SELECT carbot_migration.carbot_sync_chat_sessions(%s, 'fb-c', NULL, false)", (ws,))
    db.query("SELECT carbot_migration.carbot_sync_users(%s, true)", (owner,))
    assert db.scalar("SELECT count(*) FROM carbot_v2.migration_quarantine WHERE reason LIKE 'sync failed%%'") == 0
    assert_sessions(db, [(ws, "fb-a"), (ws, "fb-b"), (ws, "fb-c"), (ws, "fb-d")])
    assert_valid(db)
