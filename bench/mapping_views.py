#!/usr/bin/env python3
"""Cost of every projection view ``map_<target>``, measured (not asserted) on a throwaway cluster.

    .venv/bin/python bench/mapping_views.py [--scale 0.2] [--seed 42] [--keys 200] [--batch 10000]
                                            [--snapshot FILE] [--compare-to FILE] [--keep] [--port N]

Builds a cluster (or reuses one with ``--port``: the ``carbot`` database of an earlier ``--keep`` run,
whose mapping is then re-applied from the working tree), generates the legacy data at ``--scale``,
applies the mapping, ANALYZEs, and for every view measures, with jit off (as the copy and the
validation run) and without parallel workers (INSERT ... SELECT, the copy, runs on one core):

  scan    ``EXPLAIN (ANALYZE, TIMING OFF) SELECT * FROM view``: every row and every column computed
          (``count(*)`` would let the planner skip the columns), next to the same for the driving
          legacy table (``x src``: how much slower the view is than reading its source);
  key     per-key lookup ``SELECT * FROM view WHERE _src_key = $1`` as a prepared statement under
          ``plan_cache_mode = force_generic_plan`` (what a sync trigger's cached plan does), averaged over
          ``--keys`` existing keys (fewer, at least 5, when a view takes more than 10 s for them), client
          round trip included; ``x pk`` compares it with the same lookup
          on the legacy table's primary key; ``seq scans`` lists the relations the generic plan reads
          with a Seq Scan (should be none but small lookup-free tables);
  batch   one keyset batch ``WHERE _src_key > x ORDER BY _src_key LIMIT --batch`` from the middle key.

The table is printed worst first: by the larger of the scan cost per row (against 2 us) and the per-key
latency (against 0.25 ms, about what a primary-key read of a legacy table costs, round trip included).

``--paired OLD_SQL_DIR`` measures an old mapping beside the current one on the same data and session: the
old ``sql/mapping`` of OLD_SQL_DIR goes into the schema ``carbot_migration_before``, and the full scan of
every selected view alternates old, new, old, new ... ``--rounds`` times (a loaded machine hits both alike);
it prints the median and the minimum of each, and their ratio.

``--snapshot FILE`` writes ``md5(string_agg(v::text, '' ORDER BY <key>))`` of every view (all rows, all
columns, ``_src_key``/``_quarantine_reason`` included) to FILE; ``--compare-to FILE`` computes the same
and fails (exit 1) when any view differs: the proof that a rewrite of the views kept their output.
Use a small scale for it (0.05: the generator still produces every kind of dirt).
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

# benchlib first: it puts the collection on sys.path
from benchlib import (
    LEGACY,
    MAPPING,
    PASSWORD,
    REPO,
    apply_mapping,
    backend_cpu_ms,
    connect,
    create_legacy_database,
    generate,
)

# isort: split

from ansible_collections.carbot.migration.plugins.module_utils import mapping
from ansible_collections.carbot.rehearsal.plugins.module_utils.local_cluster import LocalCluster
from psycopg2 import sql


def build(port, scale, seed):
    conn = create_legacy_database(port)
    t0 = time.monotonic()
    gen = generate(conn, scale, seed)
    print("legacy data: %d rows in %.1fs" % (sum(gen["counts"].values()), time.monotonic() - t0), flush=True)
    conn.close()


# ----------------------------------------------------------------------------- measuring
def explain_analyze(cur, query, args=None):
    """(execution ms, rows) of ``query``, every output column computed."""
    cur.execute(sql.SQL("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {}").format(query), args)
    plan = cur.fetchone()[0][0]
    return plan["Execution Time"], plan["Plan"].get("Actual Rows", 0)


def seq_scans(plan):
    """Relations a plan reads with a Seq Scan (once each, in plan order)."""
    found = []

    def walk(node):
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") not in found:
            found.append(node.get("Relation Name"))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return found


def sample_keys(cur, entry, n):
    """``n`` existing keys of the view (tuples), the same ones on every run (setseed)."""
    cur.execute("SELECT setseed(0.42)")
    if entry["kind"] == "row":
        rel = sql.Identifier(LEGACY, entry["source"])
        cols = entry["source_key"]
    else:
        rel = sql.Identifier(MAPPING, entry["view"])
        cols = entry["view_key"]
    keys = sql.SQL(", ").join(map(sql.Identifier, cols))
    cur.execute(sql.SQL("SELECT {k} FROM (SELECT {k} FROM {r} ORDER BY {k}) s ORDER BY random() LIMIT %s").format(
        k=keys, r=rel), (n,))
    return [tuple(r) for r in cur.fetchall()]


def middle_key(cur, entry):
    rel = sql.Identifier(LEGACY, entry["source"]) if entry["kind"] == "row" else sql.Identifier(MAPPING, entry["view"])
    cols = entry["source_key"] if entry["kind"] == "row" else entry["view_key"]
    keys = sql.SQL(", ").join(map(sql.Identifier, cols))
    cur.execute(sql.SQL("SELECT {k} FROM {r} ORDER BY {k} OFFSET (SELECT count(*) / 2 FROM {r}) LIMIT 1").format(
        k=keys, r=rel))
    row = cur.fetchone()
    return tuple(row) if row else None


def key_types(conn, entry):
    types = dict(mapping.column_types(conn, MAPPING, entry["view"]))
    return [types[k] for k in entry["view_key"]]


def lookup_latency(cur, rel, key_cols, types, keys, name, budget=10.0):
    """Average ms of ``SELECT * FROM rel WHERE key = $n`` (prepared, generic plan) and its Seq Scans."""
    cond = sql.SQL(" AND ").join(sql.SQL("{} = ${}").format(sql.Identifier(c), sql.SQL(str(i + 1)))
                                 for i, c in enumerate(key_cols))
    cur.execute(sql.SQL("PREPARE {} ({}) AS SELECT * FROM {} WHERE {}").format(
        sql.Identifier(name), sql.SQL(", ").join(sql.SQL(t) for t in types), rel, cond))
    placeholders = sql.SQL(", ").join(sql.Placeholder() * len(key_cols))
    execute = sql.SQL("EXECUTE {} ({})").format(sql.Identifier(name), placeholders)
    cur.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(execute), keys[0])
    scans = seq_scans(cur.fetchone()[0][0]["Plan"])
    for key in keys[:3]:  # warm the cache and the plan
        cur.execute(execute, key)
        cur.fetchall()
    took = []
    deadline = time.monotonic() + budget
    for key in keys:
        if len(took) >= 5 and time.monotonic() > deadline:
            break  # a slow view: the average of the keys so far is enough
        t0 = time.perf_counter()
        cur.execute(execute, key)
        rows = cur.fetchall()
        took.append(time.perf_counter() - t0)
        if len(rows) > 1:
            raise RuntimeError("%s: %d rows for key %r" % (name, len(rows), key))
    cur.execute(sql.SQL("DEALLOCATE {}").format(sql.Identifier(name)))
    return statistics.mean(took) * 1000.0, scans, len(took)


def checksum(cur, entry):
    order = sql.SQL(", ").join(sql.SQL("v.{}").format(sql.Identifier(k)) for k in entry["view_key"])
    cur.execute(sql.SQL("SELECT md5(string_agg(v::text, '' ORDER BY {})), count(*) FROM {} v").format(
        order, sql.Identifier(MAPPING, entry["view"])))
    return list(cur.fetchone())


def measure(port, entries, n_keys, batch):
    conn = connect(port)
    out = []
    with conn.cursor() as cur:
        cur.execute("SET jit TO off")
        # one core, as INSERT ... SELECT (the copy) runs: a parallel scan would flatter the views
        cur.execute("SET max_parallel_workers_per_gather TO 0")
        cur.execute("SET plan_cache_mode TO force_generic_plan")
        for entry in entries:
            view = sql.Identifier(MAPPING, entry["view"])
            rec = {"view": entry["view"], "kind": entry["kind"], "source": entry["source"]}
            rec["scan_ms"], rec["rows"] = explain_analyze(cur, sql.SQL("SELECT * FROM {}").format(view))
            if entry["kind"] == "row":
                rec["src_scan_ms"], _ = explain_analyze(
                    cur, sql.SQL("SELECT * FROM {}").format(sql.Identifier(LEGACY, entry["source"])))
            else:
                rec["src_scan_ms"] = None
            keys = sample_keys(cur, entry, n_keys)
            types = key_types(conn, entry)
            rec["keys"] = len(keys)
            if keys:
                rec["key_ms"], rec["key_seq_scans"], rec["keys"] = lookup_latency(
                    cur, view, entry["view_key"], types, keys, "k_" + entry["view"])
                if entry["kind"] == "row":
                    rec["pk_ms"], _, _ = lookup_latency(cur, sql.Identifier(LEGACY, entry["source"]),
                                                     entry["source_key"], types, keys, "pk_" + entry["view"])
                else:
                    rec["pk_ms"] = None
            mid = middle_key(cur, entry)
            if mid:
                vkey = entry["view_key"]
                casts = [sql.SQL("%s::{}").format(sql.SQL(t)) for t in types]
                if len(vkey) == 1:
                    row, bound = sql.Identifier(vkey[0]), casts[0]
                else:
                    row = sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Identifier, vkey)))
                    bound = sql.SQL("({})").format(sql.SQL(", ").join(casts))
                rec["batch_ms"], rec["batch_rows"] = explain_analyze(
                    cur, sql.SQL("SELECT * FROM {} WHERE {} > {} ORDER BY {} LIMIT {}").format(
                        view, row, bound, sql.SQL(", ").join(map(sql.Identifier, vkey)), sql.Literal(batch)), mid)
            rec["x_src"] = rec["scan_ms"] / rec["src_scan_ms"] if rec.get("src_scan_ms") else None
            rec["x_pk"] = rec["key_ms"] / rec["pk_ms"] if rec.get("pk_ms") else None
            out.append(rec)
            print("  measured %-26s scan %9.1f ms, key %8.3f ms" % (entry["view"], rec["scan_ms"],
                                                                     rec.get("key_ms", 0.0)), flush=True)
    conn.close()
    return out


def badness(rec):
    """Worst first: the larger of scan cost per row against 2 us and per-key latency against 0.25 ms
    (what a plain primary-key read costs here, round trip included)."""
    return max(1000.0 * rec["scan_ms"] / max(rec["rows"], 1) / 2.0, (rec.get("key_ms") or 0.0) / 0.25)


BEFORE = "carbot_migration_before"


def paired(port, entries, old_sql_dir, rounds):
    """Full scan of each view, the old mapping (schema BEFORE) and the current one alternating ``rounds``
    times on one connection; prints median and minimum of each (ms) and new/old: the wall time of
    EXPLAIN ANALYZE and, when the cluster is local, the CPU time the server process spent on it (less
    sensitive to a loaded machine: time spent waiting for a core is not in it)."""
    conn = connect(port, autocommit=False)
    mapping.ensure_schema(conn, BEFORE)
    mapping.apply_sql_files(conn, os.path.join(old_sql_dir, "mapping"), mapping.mapping_search_path(BEFORE, LEGACY,
                                                                                                     "carbot_v2"))
    conn.commit()
    conn.autocommit = True
    print("paired full scans, %d rounds, load %s (old = %s)" % (rounds, os.getloadavg()[0], old_sql_dir))
    head = "%-26s %12s %12s %12s %12s %9s %9s" % ("view", "old median", "new median", "old min", "new min",
                                                 "new/old md", "new/old mn")
    print(head)
    print("-" * len(head))
    with conn.cursor() as cur:
        cur.execute("SET jit TO off")
        cur.execute("SET max_parallel_workers_per_gather TO 0")
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        for entry in entries:
            took = {(kind, schema): [] for kind in ("wall", "cpu") for schema in (BEFORE, MAPPING)}
            for _ in range(rounds):
                for schema in (BEFORE, MAPPING):
                    cpu0 = backend_cpu_ms(pid)
                    took["wall", schema].append(explain_analyze(cur, sql.SQL("SELECT * FROM {}").format(
                        sql.Identifier(schema, entry["view"])))[0])
                    cpu1 = backend_cpu_ms(pid)
                    if cpu0 is not None and cpu1 is not None:
                        took["cpu", schema].append(max(cpu1 - cpu0, 1.0))
            for kind in ("wall", "cpu"):
                if not took[kind, BEFORE]:
                    continue
                old_md, new_md = statistics.median(took[kind, BEFORE]), statistics.median(took[kind, MAPPING])
                old_mn, new_mn = min(took[kind, BEFORE]), min(took[kind, MAPPING])
                print("%-26s %12.1f %12.1f %12.1f %12.1f %9.2f %9.2f" % (
                    "%s (%s)" % (entry["view"], kind), old_md, new_md, old_mn, new_mn, new_md / old_md,
                    new_mn / old_mn), flush=True)
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(BEFORE)))
    print("load at the end %s" % os.getloadavg()[0])
    conn.close()


def report(records):
    head = "%-26s %9s %10s %7s %9s %5s %7s %10s %9s  %s" % (
        "view", "rows", "scan ms", "x src", "key ms", "keys", "x pk", "batch ms", "us/row", "seq scans in key lookup")
    print(head)
    print("-" * len(head))
    for r in sorted(records, key=badness, reverse=True):
        print("%-26s %9d %10.1f %7s %9.3f %5d %7s %10s %9.2f  %s" % (
            r["view"], r["rows"], r["scan_ms"], "%.1f" % r["x_src"] if r.get("x_src") else "-",
            r.get("key_ms", 0.0), r.get("keys", 0), "%.1f" % r["x_pk"] if r.get("x_pk") else "-",
            "%.1f" % r["batch_ms"] if r.get("batch_ms") is not None else "-",
            1000.0 * r["scan_ms"] / max(r["rows"], 1), ", ".join(r.get("key_seq_scans") or []) or "-"))
    total = sum(r["scan_ms"] for r in records)
    src = sum(r["src_scan_ms"] or 0.0 for r in records)
    print("all views: scan %.1f s (their row sources: %.1f s)" % (total / 1000.0, src / 1000.0))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keys", type=int, default=200, help="keys per per-key lookup average")
    parser.add_argument("--batch", type=int, default=10000, help="keyset batch size")
    parser.add_argument("--views", nargs="*", help="only these target tables (default: all)")
    parser.add_argument("--snapshot", help="write the per-view output checksums to this file")
    parser.add_argument("--compare-to", help="compare the per-view output checksums with this snapshot")
    parser.add_argument("--no-timing", action="store_true", help="checksums only")
    parser.add_argument("--paired", metavar="OLD_SQL_DIR",
                        help="full scans of the old mapping in OLD_SQL_DIR and the current one, alternating")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --paired")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running (prints its port)")
    parser.add_argument("--sql-dir", default=str(REPO / "sql"),
                        help="the sql/ directory to apply the mapping from (e.g. a copy of the old one)")
    parser.add_argument("--port", type=int, help="reuse the cluster of an earlier --keep run on this port")
    args = parser.parse_args()

    entries = [e for e in mapping.TABLES if not args.views or e["target"] in args.views]
    cluster = base = None
    if args.port:
        port = args.port
        print("reusing the cluster on port %s (mapping re-applied from %s)" % (port, args.sql_dir))
    else:
        base = tempfile.mkdtemp(prefix="carbot-views-")
        cluster = LocalCluster(os.path.join(base, "pg"))
        cluster.ensure_started(PASSWORD)
        port = cluster.facts()["port"]
        print("carbot.migration view bench: scale %s, seed %s, port %s" % (args.scale, args.seed, port), flush=True)
    failed = False
    try:
        if not args.port:
            build(port, args.scale, args.seed)
        conn = connect(port, autocommit=False)
        apply_mapping(conn, args.sql_dir)
        conn.close()
        if args.snapshot or args.compare_to:
            conn = connect(port)
            with conn.cursor() as cur:
                cur.execute("SET jit TO off")
                sums = {}
                for entry in entries:
                    sums[entry["view"]] = checksum(cur, entry)
            conn.close()
            if args.snapshot:
                with open(args.snapshot, "w") as handle:
                    json.dump(sums, handle, indent=1, sort_keys=True)
                print("snapshot of %d views written to %s" % (len(sums), args.snapshot))
            if args.compare_to:
                with open(args.compare_to) as handle:
                    before = json.load(handle)
                for name, value in sums.items():
                    same = before.get(name) == value
                    failed = failed or not same
                    print("  %-26s %-7s %s rows" % (name, "same" if same else "DIFFERS", value[1]))
                print("output identical to %s: %s" % (args.compare_to, "no" if failed else "yes, every view"))
        if args.paired:
            paired(port, entries, args.paired, args.rounds)
        elif not args.no_timing:
            records = measure(port, entries, args.keys, args.batch)
            report(records)
            if args.json:
                with open(args.json, "w") as handle:
                    json.dump({"scale": args.scale, "views": records}, handle, indent=1)
    finally:
        if cluster is not None:
            if args.keep:
                print("cluster kept in %s on port %s" % (base, port))
            else:
                cluster.ensure_absent()
                shutil.rmtree(base, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
