#!/usr/bin/env python3
"""What the forward sync costs a statement that writes many rows (a measurement, never an assertion).

    .venv/bin/python bench/sync_multirow.py [--scale 0.2] [--rows 200] [--repeat 15]

Identical databases on a throwaway cluster: without the forward sync and with it (carbot_v2 copied). For each kind
of write, a transaction runs the statement(s) and rolls back (the state never drifts), alternating between the
databases; the medians are compared:

* ``insert N analytics events, one statement``: a leaf table, synced per statement, set-based;
* ``update N notifications, one statement``, ``delete N consent records, one statement``: the same;
* ``insert N analytics events, N statements``: one row per statement (what the per-row cost is);
* ``update N appointments, one statement``: a table with children, synced per statement (keyed);
* ``update 200 appointments, 200 statements``: the same one row per statement (the app's single-row writes);
* chat_messages (keyed, with the chat session of every conversation, issue 14): ``insert N chat messages, one
  statement`` into a new conversation and into an existing one (the largest whose workshop is in carbot_v2),
  ``delete a customer's chat, one statement`` (a GDPR erasure: every message of that conversation), ``delete N chat
  messages, one statement`` (the oldest, over many conversations), ``update N chat messages, one statement`` (moved
  to another conversation), ``insert 200 chat messages, 200 statements`` (into that conversation);
* users and workshops (keyed, with their EXTRA_DEPENDENCIES): ``update 200 users, one statement`` (last login),
  ``update 200 users, 200 statements``, ``update 50 workshops, one statement``.

Every table is synced per statement since issue 14; what the row trigger cost is the baseline column of a tree from
before (``--baseline-tree``; the per-row column of earlier runs made every table use the row trigger, which is gone).

``--baseline-tree DIR`` adds a database synced by another tree's code (a git worktree of the branch to compare
with, e.g. ``git worktree add --detach /tmp/base main``), measured in the same alternating runs: before/after from
one run.

``--breakdown`` then shows where the per-row sync of that appointments update spends its time: the same update
(``--breakdown-rows``, default 1,000) on the synced database with the generated functions as installed, without
the triggers (``session_replication_role = replica``), and with one piece of the generated SQL left out at a time
(the trigger's ``BEGIN … EXCEPTION`` subtransaction, the change-log insert, the quarantine ``DELETE``, the advisory
lock, the "was it in the target" probe). Each variant is created inside the measuring transaction, which rolls back:
nothing is ever installed. It prints the medians of the wall time and of the server process's CPU time (/proc;
10 ms resolution, hence the many rows). A measurement of what each guarantee costs, not a proposal to drop one.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, ".collections"))

import psycopg2  # noqa: E402
from ansible_collections.carbot.migration.plugins.module_utils import (  # noqa: E402
    copy_engine,
    mapping,
    sync,
)
from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data, local_cluster  # noqa: E402
from benchlib import backend_cpu_ms, install_sync_from  # noqa: E402

PASSWORD = "carbot-bench"  # loopback-only throwaway cluster


def build(kw, scale, with_sync, tree=None):
    conn = psycopg2.connect(**kw)
    with conn.cursor() as cur:
        cur.execute(open(os.path.join(REPO, "sql", "legacy", "schema.sql")).read())
    conn.commit()
    legacy_data.generate(conn, open(os.path.join(REPO, "sql", "legacy", "generate.sql")).read(), 42, scale, "public")
    mapping.apply_all(conn, os.path.join(REPO, "sql"))
    conn.commit()
    plan = sync.Plan(conn)
    conn.close()
    if with_sync:
        params = {"login_host": kw["host"], "login_port": kw["port"], "login_db": kw["dbname"],
                  "login_user": kw["user"], "login_password": kw["password"]}
        if tree:
            install_sync_from(tree, kw, params)
        else:
            sync.install(params, plan, sync.FORWARD)
            result = copy_engine.CopyEngine(params, workers=2).run()
            assert not result["failed"], result
    conn = psycopg2.connect(**kw)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    conn.close()


def kinds(n, conversation):
    one_event = ("INSERT INTO public.analytics_events (workshop_id, event_type, created_at) "
                 "SELECT id, 'bench', now() FROM public.workshops ORDER BY id LIMIT 1")
    return [
        ("insert %d analytics events, one statement" % n, [
            "INSERT INTO public.analytics_events (workshop_id, event_type, created_at) SELECT w.workshop_id, "
            "'bench', now() FROM (SELECT id AS workshop_id FROM public.workshops ORDER BY id LIMIT 1) w, "
            "generate_series(1, %d)" % n]),
        ("update %d notifications, one statement" % n, [
            "UPDATE public.notifications SET read_at = now() WHERE id IN "
            "(SELECT id FROM public.notifications ORDER BY id LIMIT %d)" % n]),
        ("delete %d consent records, one statement" % n, [
            "DELETE FROM public.consent_log WHERE id IN (SELECT id FROM public.consent_log ORDER BY id LIMIT %d)" % n]),
        ("insert %d analytics events, %d statements" % (n, n), [one_event] * n),
        ("update %d appointments, one statement (a table with children)" % n, [
            "UPDATE public.appointments SET notes = 'bench' WHERE id IN "
            "(SELECT id FROM public.appointments ORDER BY id LIMIT %d)" % n]),
        ("update %d appointments, %d statements" % (min(n, 200), min(n, 200)), [
            "UPDATE public.appointments SET notes = 'bench' WHERE id = "
            "(SELECT id FROM public.appointments ORDER BY id OFFSET %d LIMIT 1)" % i for i in range(min(n, 200))]),
    ] + chat_and_people(n, conversation)


def largest_conversation(kw):
    """The conversation with the most messages that has a session in carbot_v2 (its workshop migrated), as a
    subquery of literals: the same legacy rows in every database (the data is generated with one seed)."""
    conn = psycopg2.connect(**kw)
    with conn.cursor() as cur:
        cur.execute("SELECT m.workshop_id, m.kunde_id FROM public.chat_messages m JOIN carbot_v2.chat_sessions s "
                    "ON s.workshop_id = m.workshop_id AND s.client_key = m.kunde_id "
                    "GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1")
        workshop, kunde = cur.fetchone()
        text = cur.mogrify("(SELECT %s::uuid AS workshop_id, %s::text AS kunde_id)", (workshop, kunde)).decode()
    conn.close()
    return text


def chat_and_people(n, conversation):
    """The writes on the tables issue 14 moved to statement triggers: chat_messages, users, workshops."""
    one_message = ("INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
                   "SELECT c.workshop_id, c.kunde_id, 'user', 'bench', now() FROM %s c" % conversation)
    m = min(n, 200)
    return [
        ("insert %d chat messages, one statement (new conversation)" % n, [
            "INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
            "SELECT w.id, 'bench-new', 'user', 'bench ' || g, now() + g * interval '1 second' "
            "FROM (SELECT id FROM public.workshops ORDER BY id LIMIT 1) w, generate_series(1, %d) g" % n]),
        ("insert %d chat messages, one statement (existing conversation)" % n, [
            "INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
            "SELECT c.workshop_id, c.kunde_id, 'bot', 'bench ' || g, now() + g * interval '1 second' "
            "FROM %s c, generate_series(1, %d) g" % (conversation, n)]),
        ("insert %d chat messages, %d statements" % (m, m), [one_message] * m),
        ("delete a customer's chat, one statement (GDPR erasure)", [
            "DELETE FROM public.chat_messages m USING %s c WHERE m.workshop_id = c.workshop_id "
            "AND m.kunde_id = c.kunde_id" % conversation]),
        ("delete %d chat messages, one statement (many conversations)" % n, [
            "DELETE FROM public.chat_messages WHERE id IN (SELECT id FROM public.chat_messages ORDER BY id LIMIT %d)"
            % n]),
        ("update %d chat messages, one statement (moved conversation)" % n, [
            "UPDATE public.chat_messages SET kunde_id = 'bench-moved' WHERE id IN "
            "(SELECT id FROM public.chat_messages ORDER BY id DESC LIMIT %d)" % n]),
        ("update %d users, one statement" % m, [
            "UPDATE public.users SET last_login_at = now() WHERE id IN (SELECT id FROM public.users ORDER BY id "
            "LIMIT %d)" % m]),
        ("update %d users, %d statements" % (m, m), [
            "UPDATE public.users SET last_login_at = now() WHERE id = "
            "(SELECT id FROM public.users ORDER BY id OFFSET %d LIMIT 1)" % i for i in range(m)]),
        ("update 50 workshops, one statement", [
            "UPDATE public.workshops SET phone = '+49 30 0' WHERE id IN (SELECT id FROM public.workshops ORDER BY id "
            "LIMIT 50)"]),
    ]


def timed(kw, statements):
    conn = psycopg2.connect(**kw)
    try:
        with conn.cursor() as cur:
            t0 = time.perf_counter()
            for statement in statements:
                cur.execute(statement)
            elapsed = time.perf_counter() - t0
        conn.rollback()
    finally:
        conn.close()
    return elapsed


def breakdown(kw, n, repeat):
    """Per-row sync of one UPDATE of ``n`` appointments, without each piece of the generated SQL in turn."""
    conn = psycopg2.connect(**kw)
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    # the function of the trigger an UPDATE fires: the statement-level one (carbot_sync_fwd_upd) or the row trigger
    cur.execute("SELECT p.oid::regproc::text, p.prosrc FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
                "WHERE t.tgrelid = 'public.appointments'::regclass AND t.tgname IN ('carbot_sync_fwd', "
                "'carbot_sync_fwd_upd') ORDER BY t.tgname DESC LIMIT 1")
    trg_name, trg = cur.fetchone()
    if "EXCEPTION WHEN" in trg and trg_name.endswith("stmt_appointments"):
        # per statement: each event's branch is one line "IF TG_OP = .. THEN BEGIN <calls> EXCEPTION .. END; END IF;"
        no_subxact = "\n".join(line[:line.index(" EXCEPTION WHEN")] + " END; END IF;" if " EXCEPTION WHEN" in line
                                else line for line in trg.split("\n"))
    else:
        no_subxact = trg[:trg.index("EXCEPTION WHEN")] + "END;\nEND\n"
    cur.execute("SELECT prosrc, pg_get_function_arguments(oid) FROM pg_proc "
                "WHERE oid = 'carbot_migration.carbot_sync_appointments'::regproc")
    fn, fn_args = cur.fetchone()
    cur.execute("SELECT id FROM public.appointments ORDER BY id LIMIT %s", (n,))
    ids = [r[0] for r in cur.fetchall()]
    conn.rollback()
    lines = fn.split("\n")

    def without(prefix, extra=None):
        body = "\n".join(line for line in lines if not line.startswith(prefix))
        return body.replace(*extra) if extra else body

    variants = [
        ("without the triggers", "replica", None, None),
        ("the per-row sync as installed", None, None, None),
        ("- the trigger's subtransaction", None, no_subxact, None),
        ("- the change-log insert", None, None, without('INSERT INTO "carbot_migration"."carbot_sync_changes"')),
        ("- the quarantine DELETE", None, None, without('DELETE FROM "carbot_v2"."migration_quarantine"')),
        ("- the advisory lock", None, None, without("PERFORM pg_advisory_xact_lock")),
        ("- the was-in-target probe", None, None,
         without("SELECT true INTO v_was", ("v_was := coalesce(v_was, false);", "v_was := true;"))),
    ]
    for label, _, trg_body, fn_body in variants:
        if trg_body == trg or fn_body == fn:  # the generated SQL changed: nothing was left out
            print("note: %r leaves nothing out (its line is not in the generated SQL any more)" % label)
    took = {v[0]: [] for v in variants}
    for _ in range(repeat):
        for label, role, trg_body, fn_body in variants:
            if role:
                cur.execute("SET LOCAL session_replication_role = replica")
            if trg_body:
                cur.execute("CREATE OR REPLACE FUNCTION " + trg_name + "() RETURNS trigger LANGUAGE plpgsql "
                            "SET plan_cache_mode = force_generic_plan AS $f$" + trg_body + "$f$")
            if fn_body:
                cur.execute("CREATE OR REPLACE FUNCTION carbot_migration.carbot_sync_appointments(" + fn_args
                            + ") RETURNS void LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan "
                            "AS $f$" + fn_body + "$f$")
            cpu0, t0 = backend_cpu_ms(pid), time.perf_counter()
            cur.execute("UPDATE public.appointments SET notes = coalesce(notes, '') || 'x' WHERE id = ANY(%s::uuid[])",
                        (ids,))
            t1, cpu1 = time.perf_counter(), backend_cpu_ms(pid)
            conn.rollback()
            took[label].append(((t1 - t0) * 1000.0, None if cpu0 is None else cpu1 - cpu0))
    conn.close()
    print("\nwhere the per-row sync of one UPDATE of %d appointments goes (medians of %d alternating runs, load %.1f)"
          % (len(ids), repeat, os.getloadavg()[0]))
    print("%-34s %12s %16s %14s" % ("", "wall", "server CPU", "CPU per row"))
    for label, values in took.items():
        wall = statistics.median(v[0] for v in values)
        cpus = [v[1] for v in values if v[1] is not None]
        cpu = statistics.median(cpus) if cpus else float("nan")
        print("%-34s %9.1f ms %13.0f ms %11.0f us" % (label, wall, cpu, 1000.0 * cpu / max(len(ids), 1)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--breakdown", action="store_true",
                        help="also: where the per-row sync of an appointments update spends its time")
    parser.add_argument("--breakdown-rows", type=int, default=1000)
    parser.add_argument("--only-breakdown", action="store_true", help="skip the comparison (builds one database)")
    parser.add_argument("--baseline-tree", help="also a database synced by this tree's code (a git worktree of the "
                        "branch to compare with): a 'before' column, and its breakdown too")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="carbot-multirow-")
    os.chmod(base, 0o755)
    cluster = local_cluster.LocalCluster(os.path.join(base, "pg"))
    try:
        cluster.ensure_started(PASSWORD)
        kw = {"host": "127.0.0.1", "port": cluster.facts()["port"], "user": "postgres", "password": PASSWORD}
        admin = psycopg2.connect(**dict(kw, dbname="postgres"))
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("CREATE DATABASE bench_plain")
            cur.execute("CREATE DATABASE bench_sync")
            cur.execute("CREATE DATABASE bench_base")
        admin.close()
        plain, synced = dict(kw, dbname="bench_plain"), dict(kw, dbname="bench_sync")
        base_db = dict(kw, dbname="bench_base")
        build(synced, args.scale, True)
        if args.baseline_tree:
            build(base_db, args.scale, True, tree=args.baseline_tree)
        if not args.only_breakdown:
            build(plain, args.scale, False)
            print("scale %s, %d rows a write, medians of %d alternating runs (each rolled back)"
                  % (args.scale, args.rows, args.repeat))
            extra = " %10s %7s" % ("baseline", "ratio") if args.baseline_tree else ""
            print("%-62s %10s %10s %7s%s" % ("", "without", "with", "ratio", extra))
        for label, statements in ([] if args.only_breakdown else kinds(args.rows, largest_conversation(synced))):
            without, with_, before = [], [], []
            for _ in range(args.repeat):
                without.append(timed(plain, statements))
                if args.baseline_tree:
                    before.append(timed(base_db, statements))
                with_.append(timed(synced, statements))
            a, b = statistics.median(without), statistics.median(with_)
            extra = ""
            if before:
                d = statistics.median(before)
                extra = " %7.1f ms %6.2fx" % (d * 1000, d / a)
            print("%-62s %8.1f ms %8.1f ms %6.2fx%s" % (label, a * 1000, b * 1000, b / a, extra))
        if args.breakdown or args.only_breakdown:
            if args.baseline_tree:
                print("\nbaseline (%s):" % args.baseline_tree)
                breakdown(base_db, args.breakdown_rows, args.repeat)
                print("\nthis tree:")
            breakdown(synced, args.breakdown_rows, args.repeat)
    finally:
        cluster.ensure_absent()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
