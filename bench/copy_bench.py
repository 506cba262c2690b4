#!/usr/bin/env python3
"""Copy and validation speed, measured (not asserted) on a throwaway cluster.

    .venv/bin/python bench/copy_bench.py [--scale 1.0] [--seed 42] [--workers N] [--keep]
        [--workshops N] [--customers-per-workshop N] [--leads-per-workshop N] [--messages-per-conversation N]

The tenant shape options change how the rows group (e.g. a few workshops with many customers); unset, the
generator's default mix of --scale.

At the given scale (legacy_data generator) it times:
  (a) plain, unbatched ``INSERT INTO <target>.t SELECT <cols> FROM <mapping>.map_t WHERE _quarantine_reason
      IS NULL`` for every table, one after another;
  (b) the copy engine's full copy (keyset batches, locks, checkpoints, quarantine, parallel tables);
  (c) ``pg_dump -Fc`` of the legacy tables piped into ``pg_restore`` of a scratch database;
  (d) the full validation (every check) against one checksum pass over both sides
      (``md5(string_agg(md5(row::text) ORDER BY key))`` of the mapped view and of the target, per table).
and prints the ratios next to the targets of the issue: (b)/(a) <= 1.3, (b)/(c) <= 0.5, (d)/checksum <= 1.5.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

# benchlib first: it puts the collection on sys.path
from benchlib import (
    LEGACY,
    MAPPING,
    PASSWORD,
    TARGET,
    add_shape_arguments,
    apply_mapping,
    connect,
    create_legacy_database,
    generate,
    shape_of,
)

# isort: split

from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, mapping, validation
from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data
from ansible_collections.carbot.rehearsal.plugins.module_utils.local_cluster import LocalCluster
from psycopg2 import sql


def timed(label, func):
    t0 = time.monotonic()
    out = func()
    took = time.monotonic() - t0
    print("  %-58s %8.2fs" % (label, took), flush=True)
    return took, out


def reset_target(port):
    """Empty every target table and the migration's bookkeeping."""
    conn = connect(port)
    with conn.cursor() as cur:
        names = [t["target"] for t in mapping.TABLES] + ["migration_status", "migration_quarantine"]
        cur.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier(TARGET, n) for n in names)))
        cur.execute("CHECKPOINT")
    conn.close()


def plain_insert(port, specs):
    conn = connect(port)
    per_table = {}
    with conn.cursor() as cur:
        for spec in specs:
            cols = sql.SQL(", ").join(map(sql.Identifier, spec.columns))
            where = sql.SQL("WHERE {} IS NULL").format(sql.Identifier(copy_engine.QUARANTINE_REASON)) \
                if spec.has_reason else sql.SQL("")
            t0 = time.monotonic()
            cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} {}").format(
                spec.target_rel, cols, cols, spec.view_rel, where))
            per_table[spec.name] = (cur.rowcount, round(time.monotonic() - t0, 3))
    conn.close()
    return per_table


def checksum_pass(port, specs):
    """One checksum over both sides, per table: the yardstick for the validation."""
    conn = connect(port)
    with conn.cursor() as cur:
        cur.execute("SET jit TO off")  # as the validation does: same footing
        for spec in specs:
            cols = sql.SQL(", ").join(sql.SQL("x.{}").format(sql.Identifier(c)) for c in spec.columns)
            where = sql.SQL("WHERE x.{} IS NULL").format(sql.Identifier(copy_engine.QUARANTINE_REASON)) \
                if spec.has_reason else sql.SQL("")
            for rel, keys, cond in ((spec.view_rel, spec.view_key, where), (spec.target_rel, spec.target_key,
                                                                           sql.SQL(""))):
                order = sql.SQL(", ").join(sql.SQL("x.{}").format(sql.Identifier(k)) for k in keys)
                cur.execute(sql.SQL("SELECT md5(string_agg(md5(ROW({})::text), '' ORDER BY {})) FROM {} x {}").format(
                    cols, order, rel, cond))
                cur.fetchone()
    conn.close()


def dump_restore(port, bindir):
    admin = connect(port, "postgres")
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS carbot_scratch")
        cur.execute("CREATE DATABASE carbot_scratch")
    admin.close()
    env = dict(os.environ, PGPASSWORD=PASSWORD)
    common = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    tables = []
    for name in legacy_data.LEGACY_TABLES:
        tables += ["-t", "%s.%s" % (LEGACY, name)]
    dump = subprocess.Popen([os.path.join(bindir, "pg_dump"), "-Fc"] + common + tables + ["carbot"],
                            stdout=subprocess.PIPE, env=env)
    restore = subprocess.run([os.path.join(bindir, "pg_restore"), "--no-owner", "-d", "carbot_scratch"] + common,
                             stdin=dump.stdout, env=env, capture_output=True, text=True)
    dump.stdout.close()
    if dump.wait() != 0 or restore.returncode != 0:
        raise RuntimeError("pg_dump | pg_restore failed: %s" % restore.stderr[-2000:])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=None, help="copy workers (default: one per core)")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running (prints its port)")
    parser.add_argument("--json", help="also write the figures to this file")
    add_shape_arguments(parser)
    args = parser.parse_args()
    shape = shape_of(args)

    base = tempfile.mkdtemp(prefix="carbot-bench-")
    cluster = LocalCluster(os.path.join(base, "pg"))
    cluster.ensure_started(PASSWORD)
    facts = cluster.facts()
    port = facts["port"]
    print("carbot.migration copy bench: scale %s, seed %s, shape %s, PostgreSQL %s on port %s, %s cores, load %s"
          % (args.scale, args.seed, shape or "default mix", facts["version"], port, os.cpu_count(),
             " ".join("%.1f" % x for x in os.getloadavg())), flush=True)
    try:
        conn = create_legacy_database(port)
        _took, gen = timed("generate legacy data", lambda: generate(conn, args.scale, args.seed, shape))
        print("  legacy rows: %d" % sum(gen["counts"].values()))
        apply_mapping(conn)
        specs = copy_engine.resolve(conn, copy_engine.order_tables(mapping.TABLES), LEGACY, MAPPING, TARGET)
        conn.close()

        print("(a) plain INSERT ... SELECT per table", flush=True)
        t_plain, per_table = timed("plain unbatched INSERT INTO target SELECT FROM view",
                                   lambda: plain_insert(port, specs))
        reset_target(port)

        print("(b) the engine", flush=True)
        params = {"login_host": "127.0.0.1", "login_port": port, "login_db": "carbot", "login_user": "postgres",
                  "login_password": PASSWORD, "ssl_mode": "disable", "lock_timeout_ms": 3000,
                  "statement_timeout_ms": 0}
        engine = copy_engine.CopyEngine(params, workers=args.workers)
        t_copy, result = timed("engine full copy (%d workers)" % engine.workers, engine.run)
        assert not result["failed"], result
        # every table, slowest first: rows, seconds and rows/s in the engine (tables run in parallel, so a
        # table's time includes waiting for the cores its neighbours use), and plain INSERT...SELECT beside it
        slow = sorted(result["tables"].items(), key=lambda kv: -kv[1].get("elapsed", 0))
        for name, r in slow:
            plain_rows, plain_s = per_table[name]
            print("      %-22s %9d rows %7.2fs %9.0f rows/s  (plain %6.2fs %9.0f rows/s)"
                  % (name, r["scanned"], r["elapsed"], r["rows_per_second"], plain_s,
                     plain_rows / plain_s if plain_s else 0.0))

        print("(c) pg_dump | pg_restore of the legacy tables", flush=True)
        t_dump, _ = timed("pg_dump -Fc | pg_restore into a scratch database", lambda: dump_restore(port,
                                                                                                    facts["bindir"]))

        print("(d) validation", flush=True)
        t_sum, _ = timed("one checksum pass over both sides", lambda: checksum_pass(port, specs))

        def validate():
            vconn = connect(port, autocommit=False)
            try:
                return validation.Validator(vconn, LEGACY, MAPPING, TARGET).run()
            finally:
                vconn.close()

        t_val, report = timed("full validation (%s)" % ", ".join(validation.CHECKS), validate)
        print("      per check: %s" % ", ".join("%s %.2fs" % kv for kv in report["elapsed"].items()))
        print("      %s" % report["msg"][:300])

        ratios = {
            "copy / plain insert": (t_copy / t_plain, 1.3),
            "copy / pg_dump|pg_restore": (t_copy / t_dump, 0.5),
            "validation / one checksum pass": (t_val / t_sum, 1.5),
        }
        print("\nratios (target in brackets):")
        for label, (value, target) in ratios.items():
            print("  %-34s %5.2f  (<= %.1f)  %s" % (label, value, target, "ok" if value <= target else "OVER"))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump({"scale": args.scale, "shape": shape, "load": os.getloadavg(),
                           "tables": {n: {"rows": r["scanned"], "seconds": r["elapsed"],
                                          "rows_per_second": r["rows_per_second"]}
                                      for n, r in result["tables"].items()},
                           "seconds": {"plain": t_plain, "copy": t_copy, "dump_restore": t_dump,
                                                            "checksum": t_sum, "validation": t_val},
                           "ratios": {k: v[0] for k, v in ratios.items()}}, handle, indent=2)
    finally:
        if args.keep:
            print("cluster kept in %s on port %s" % (base, port))
        else:
            cluster.ensure_absent()
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
