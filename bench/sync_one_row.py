#!/usr/bin/env python3
"""What the forward sync costs one app write of one row, and where that cost goes (a measurement, never an
assertion).

    .venv/bin/python bench/sync_one_row.py [--scale 0.1] [--writes 2000] [--rounds 5] [--port N --dbname DB]

One database on a throwaway cluster (or an existing one with the forward sync installed and carbot_v2 copied,
``--port``/``--dbname``, password in PGPASSWORD): the legacy data at ``--scale``, the forward sync installed, carbot_v2
copied. Then:

1. **Per write.** The app's one-row writes (a customer edit, an appointment cancel, a chat message, an analytics
   event), each its own transaction as the app sends it (autocommit, prepared), ``--writes`` times, with the sync
   triggers firing and with them off (``session_replication_role = replica`` in the session: the same database, the
   same rows), alternating ``--rounds`` times. Figures: the server process's CPU time per write (/proc, 10 ms
   ticks over thousands of writes) and the client's wall time, medians of the rounds, and the ratio. The CPU ratio is
   what unthrottled clients on a busy server feel (bench/sync_overhead.py measures that from outside with pgbench).
2. **Per piece.** Inside one transaction that rolls back, each statement the per-key function
   ``carbot_sync_customers`` runs for one key, timed in a PL/pgSQL loop over ``--writes`` keys with a generic plan
   (as the installed function runs them): the advisory lock, the change-log insert, the view read by key, the target
   probe, the upsert that changes the row, the quarantine ``DELETE``; then the whole function as installed.

Where the ratio cannot go below (docs/performance.md, seventh session): a one-row legacy ``UPDATE`` costs the
server ~15 µs inside its transaction and ~70 µs with its commit and round trip; a synchronous projection costs at
least the view read and the upsert of the one row (together about as much as the app's whole write).
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
import sync_overhead  # noqa: E402
from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, mapping, sync  # noqa: E402
from ansible_collections.carbot.rehearsal.plugins.module_utils import local_cluster  # noqa: E402
from benchlib import backend_cpu_ms  # noqa: E402

PASSWORD = "carbot-bench"  # loopback-only throwaway cluster

# The app's one-row writes (tests/load/legacy_*.sql without pgbench's variables): the key is a parameter.
WRITES = {
    "customer edit": (
        "SELECT id FROM public.customers ORDER BY md5(id::text) LIMIT %(n)s",
        "UPDATE public.customers SET phone = '+49 ' || %(i)s, city = 'Köln', email = 'kunde.' || %(i)s || "
        "'@example.de', marketing_consent = (%(i)s %% 2 = 0), updated_at = now() WHERE id = %(k)s"),
    "appointment cancel": (
        "SELECT id FROM public.appointments ORDER BY md5(id::text) LIMIT %(n)s",
        "UPDATE public.appointments SET status = 'cancelled', notes = coalesce(notes || ' / ', '') || 'abgesagt', "
        "updated_at = now() WHERE id = %(k)s"),
    "chat message": (
        "SELECT DISTINCT ON (workshop_id, kunde_id) workshop_id || '|' || kunde_id FROM public.chat_messages "
        "WHERE workshop_id IS NOT NULL AND kunde_id IS NOT NULL ORDER BY workshop_id, kunde_id LIMIT %(n)s",
        "INSERT INTO public.chat_messages (workshop_id, kunde_id, sender, message, created_at) "
        "VALUES (split_part(%(k)s, '|', 1)::uuid, split_part(%(k)s, '|', 2), 'user', 'Wann haben Sie Zeit?', now())"),
    "analytics event": (
        "SELECT id FROM public.workshops ORDER BY id LIMIT %(n)s",
        "INSERT INTO public.analytics_events (workshop_id, event_type, event_data, created_at) "
        "VALUES (%(k)s, 'page_view', '{}', now())"),
}

PIECE = """
CREATE OR REPLACE FUNCTION pg_temp.piece() RETURNS double precision LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $carbot$
DECLARE k uuid; t0 timestamptz; n integer := 0;
BEGIN
    FOR k IN SELECT id FROM pg_temp.keys LIMIT 50 LOOP {stmt}; END LOOP;  -- the plan made and cached
    t0 := clock_timestamp();
    FOR k IN SELECT id FROM pg_temp.keys LOOP {stmt}; n := n + 1; END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
END $carbot$
"""


def build(kw, scale):
    """The legacy data and the mapping (as bench/sync_overhead.py builds them), the forward sync, carbot_v2 copied,
    its foreign keys."""
    sync_overhead.build(kw, scale)
    conn = psycopg2.connect(**kw)
    plan = sync.Plan(conn)
    conn.close()
    params = {"login_host": kw["host"], "login_port": kw["port"], "login_db": kw["dbname"], "login_user": kw["user"],
              "login_password": kw["password"], "lock_timeout_ms": 1000}
    sync.install(params, plan, sync.FORWARD)
    result = copy_engine.CopyEngine(params, workers=2).run()
    assert not result["failed"], result
    conn = psycopg2.connect(**kw)
    mapping.add_foreign_keys(conn, "carbot_v2")
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    conn.close()


def per_write(kw, writes, rounds):
    conn = psycopg2.connect(**kw)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    out = {}
    for name, (keys_sql, write) in WRITES.items():
        cur.execute(keys_sql, {"n": writes})
        keys = [r[0] for r in cur.fetchall()]
        keys = (keys * (writes // max(1, len(keys)) + 1))[:writes]
        figures = {"sync": [], "off": []}
        for _round in range(rounds):
            for mode in ("sync", "off"):
                cur.execute("SET session_replication_role = %s", ("origin" if mode == "sync" else "replica",))
                c0, t0 = backend_cpu_ms(pid), time.monotonic()
                for i, k in enumerate(keys):
                    cur.execute(write, {"i": i, "k": k})
                c1, t1 = backend_cpu_ms(pid), time.monotonic()
                figures[mode].append(((c1 - c0) * 1000.0 / len(keys), (t1 - t0) * 1e6 / len(keys)))
        cur.execute("SET session_replication_role = origin")
        out[name] = {mode: (statistics.median(c for c, _w in v), statistics.median(w for _c, w in v))
                     for mode, v in figures.items()}
    conn.close()
    return out


def per_piece(kw, writes):
    conn = psycopg2.connect(**kw)
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE keys AS SELECT id FROM public.customers c WHERE EXISTS "
                "(SELECT 1 FROM carbot_v2.customers t WHERE t.id = c.id) ORDER BY md5(id::text) LIMIT %s", (writes,))
    cols = "id, workshop_id, title, first_name, last_name, email, phone, address_line1, city, postal_code, " \
           "is_active, gdpr_consent_given, created_at, updated_at, legacy_raw"
    pieces = [
        ("advisory lock", "SELECT pg_advisory_xact_lock(1, hashtext($1::text))"),
        ("change-log insert", "INSERT INTO carbot_migration.carbot_sync_changes (target_table, key) "
                              "VALUES ('customers', $1::text)"),
        ("view read by key (map_customers)", "SELECT * FROM carbot_migration.map_customers v WHERE v._src_key = $1"),
        ("target probe", "SELECT true FROM carbot_v2.customers t WHERE t.id = $1"),
        ("upsert that changes the row", "INSERT INTO carbot_v2.customers AS t (%s) SELECT %s FROM "
                                        "carbot_migration.map_customers v WHERE v._src_key = $1 ON CONFLICT (id) DO "
                                        "UPDATE SET phone = t.phone || '1'" % (cols, cols)),
        ("  of which the view read", "SELECT %s FROM carbot_migration.map_customers v WHERE v._src_key = $1" % cols),
        ("quarantine DELETE", "DELETE FROM carbot_v2.migration_quarantine WHERE target_table = 'customers' "
                              "AND source_pk = $1::text"),
        ("legacy UPDATE, triggers off", "UPDATE public.customers SET city = city WHERE id = $1"),
        ("carbot_sync_customers(key), as installed", "SELECT carbot_migration.carbot_sync_customers($1, true)"),
    ]
    out = []
    for label, query in pieces:
        if label.startswith("legacy UPDATE"):
            cur.execute("SET LOCAL session_replication_role = replica")
        # static SQL in PL/pgSQL (the key a variable): a cached generic plan, as in the installed function
        stmt = query.replace("$1", "k")
        cur.execute(PIECE.replace("{stmt}", "PERFORM " + stmt[len("SELECT "):] if stmt.startswith("SELECT") else stmt))
        cur.execute("SELECT pg_temp.piece()")
        out.append((label, cur.fetchone()[0]))
        if label.startswith("legacy UPDATE"):
            cur.execute("SET LOCAL session_replication_role = origin")
    conn.rollback()
    conn.close()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--writes", type=int, default=2000, help="writes per kind and round (keys per piece)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--port", type=int, help="an existing cluster whose --dbname has the sync installed")
    parser.add_argument("--dbname", default="carbot_bench")
    args = parser.parse_args()

    cluster, base = None, None
    if args.port:
        kw = {"host": "127.0.0.1", "port": args.port, "user": "postgres",
              "password": os.environ.get("PGPASSWORD", ""), "dbname": args.dbname}
    else:
        base = tempfile.mkdtemp(prefix="carbot-bench-")
        cluster = local_cluster.LocalCluster(os.path.join(base, "pg"))
        cluster.ensure_started(PASSWORD, settings={"shared_buffers": "512MB", "max_wal_size": "4GB"})
        kw = {"host": "127.0.0.1", "port": cluster.facts()["port"], "user": "postgres", "password": PASSWORD,
              "dbname": "postgres"}
        admin = psycopg2.connect(**kw)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("CREATE DATABASE %s" % psycopg2.extensions.quote_ident(args.dbname, admin))
        admin.close()
        kw["dbname"] = args.dbname
    try:
        if cluster is not None:
            print("building at scale %s (legacy data, forward sync, copy) ..." % args.scale, flush=True)
            build(kw, args.scale)
        print("load %s" % " ".join("%.1f" % x for x in os.getloadavg()))
        print("\n1. one-row writes, each its own transaction (medians of %d rounds of %d)" % (args.rounds, args.writes))
        print("%-22s %14s %14s %7s %14s %14s %7s" % ("", "CPU, sync off", "CPU, sync", "ratio", "wall, off",
                                                    "wall, sync", "ratio"))
        for name, f in per_write(kw, args.writes, args.rounds).items():
            (c_off, w_off), (c_on, w_on) = f["off"], f["sync"]
            print("%-22s %11.1f µs %11.1f µs %6.2fx %11.1f µs %11.1f µs %6.2fx" % (
                name, c_off, c_on, c_on / c_off if c_off else float("nan"), w_off, w_on, w_on / w_off))
        print("\n2. the pieces of the sync of one customer (µs each, generic plans, in one transaction, rolled back)")
        for label, micros in per_piece(kw, args.writes):
            print("  %-44s %8.1f µs" % (label, micros))
        print("\nload %s" % " ".join("%.1f" % x for x in os.getloadavg()))
    finally:
        if cluster is not None:
            cluster.ensure_absent()
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
