#!/usr/bin/env python3
"""What the forward sync costs a statement that writes many rows (a measurement, never an assertion).

    .venv/bin/python bench/sync_multirow.py [--scale 0.2] [--rows 200] [--repeat 15]

Three identical databases on a throwaway cluster: without the forward sync, with it (carbot_v2 copied), and with it
but every table on the per-row trigger (what the statement-level sync replaced). For each kind of write, a
transaction runs the statement(s) and rolls back (the state never drifts), alternating between the databases;
the medians are compared:

* ``insert N analytics events, one statement``: a leaf table, synced per statement, set-based;
* ``update N notifications, one statement``, ``delete N consent records, one statement``: the same;
* ``insert N analytics events, N statements``: one row per statement (what the per-row cost is);
* ``update N appointments, one statement``: a table with children, synced per row.
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
    legacy_data,
    local_cluster,
    mapping,
    sync,
)

PASSWORD = "carbot-bench"  # loopback-only throwaway cluster


def build(kw, scale, with_sync, per_row=False):
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
        if per_row:  # every table with the per-row trigger: what the statement-level sync replaced
            original, sync.statement_tables = sync.statement_tables, lambda tables, legacy_tables: []
        params = {"login_host": kw["host"], "login_port": kw["port"], "login_db": kw["dbname"],
                  "login_user": kw["user"], "login_password": kw["password"]}
        sync.install(params, plan, sync.FORWARD)
        result = copy_engine.CopyEngine(params, workers=2).run()
        assert not result["failed"], result
        if per_row:
            sync.statement_tables = original
    conn = psycopg2.connect(**kw)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    conn.close()


def kinds(n):
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
        ("update %d appointments, one statement (per-row sync)" % n, [
            "UPDATE public.appointments SET notes = 'bench' WHERE id IN "
            "(SELECT id FROM public.appointments ORDER BY id LIMIT %d)" % n]),
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=15)
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
            cur.execute("CREATE DATABASE bench_rows")
        admin.close()
        plain, synced = dict(kw, dbname="bench_plain"), dict(kw, dbname="bench_sync")
        rows = dict(kw, dbname="bench_rows")
        build(plain, args.scale, False)
        build(synced, args.scale, True)
        build(rows, args.scale, True, per_row=True)
        print("scale %s, %d rows a write, medians of %d alternating runs (each rolled back)"
              % (args.scale, args.rows, args.repeat))
        print("%-58s %10s %10s %7s %14s %7s" % ("", "without", "with", "ratio", "per-row sync", "ratio"))
        for label, statements in kinds(args.rows):
            without, with_, per_row = [], [], []
            for _ in range(args.repeat):
                without.append(timed(plain, statements))
                with_.append(timed(synced, statements))
                per_row.append(timed(rows, statements))
            a, b, c = statistics.median(without), statistics.median(with_), statistics.median(per_row)
            print("%-58s %8.1f ms %8.1f ms %6.2fx %11.1f ms %6.2fx" % (label, a * 1000, b * 1000, b / a,
                                                                      c * 1000, c / a))
    finally:
        cluster.ensure_absent()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
