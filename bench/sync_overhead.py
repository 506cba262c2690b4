"""What the forward sync triggers cost the live application, per write.

Builds a throwaway cluster (or uses --port/--dbname of an existing one), generates the legacy data at
--scale (1.0 = production volumes), applies the mapping, then runs the same pgbench mix as the load
tests (tests/load/legacy_*.sql, journal off) twice:

  1. without triggers  (the legacy app today)
  2. with the forward triggers installed and carbot_v2 copied (the app during the migration)

each once unthrottled (throughput, -c clients) and once at a fixed rate (--rate, latency as the app sees
it at its real write rate). Prints latency and throughput per run and per script, and the ratios; the
target is at most 2x per write. ``--json`` writes the figures to a file.

    .venv/bin/python bench/sync_overhead.py --scale 1.0 --seconds 10 --rounds 5
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, ".collections"))
sys.path.insert(0, os.path.join(REPO, "tests", "load"))

import driver  # noqa: E402
import psycopg2  # noqa: E402
from ansible_collections.carbot.migration.plugins.module_utils import (  # noqa: E402
    copy_engine,
    mapping,
    sync,
)
from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data, local_cluster  # noqa: E402
from benchlib import install_sync_from  # noqa: E402

PASSWORD = "carbot-bench"  # a throwaway cluster on loopback, not a secret


def pgbench(kw, seconds, clients, rate=None):
    argv = [driver.pgbench_path(), "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)),
            "-T", str(seconds), "-D", "journal=0", "-h", kw["host"], "-p", str(kw["port"]), "-U", kw["user"]]
    if rate:
        argv += ["-R", str(rate)]
    for path, weight in driver.scripts("legacy"):
        argv += ["-f", "%s@%d" % (path, weight)]
    argv.append(kw["dbname"])
    env = dict(os.environ, PGPASSWORD=kw["password"], PGOPTIONS="-c search_path=public")
    out = subprocess.run(argv, capture_output=True, text=True, env=env).stdout
    res = driver.parse_pgbench(out)
    res["per_script"] = {}
    for m in re.finditer(r"SQL script \d+: \S*/legacy_(\w+)\.sql\n(.*?)(?=SQL script|\Z)", out, re.S):
        lat = re.search(r"latency average = ([\d.]+) ms", m.group(2))
        if lat:
            res["per_script"][m.group(1)] = float(lat.group(1))
    return res


def build(kw, scale):
    conn = psycopg2.connect(**kw)
    with conn.cursor() as cur:
        cur.execute(open(os.path.join(REPO, "sql", "legacy", "schema.sql")).read())
    conn.commit()
    t0 = time.monotonic()
    legacy_data.generate(conn, open(os.path.join(REPO, "sql", "legacy", "generate.sql")).read(), 42, scale, "public")
    mapping.apply_all(conn, os.path.join(REPO, "sql"))
    conn.commit()
    conn.close()
    return time.monotonic() - t0


def vacuum(kw):
    conn = psycopg2.connect(**kw)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    conn.close()


def median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def combine(runs):
    """Median over the rounds of tps, latency and per-script latency."""
    out = {"tps": median([r["tps"] for r in runs]), "latency_ms": median([r["latency_ms"] for r in runs]),
           "per_script": {}, "failed": sum(r["failed"] for r in runs)}
    for script in runs[0]["per_script"]:
        out["per_script"][script] = median([r["per_script"].get(script) for r in runs])
    return out


def recreate(kw, dbname):
    admin = psycopg2.connect(**dict(kw, dbname="postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s" % psycopg2.extensions.quote_ident(dbname, admin))
        cur.execute("CREATE DATABASE %s" % psycopg2.extensions.quote_ident(dbname, admin))
    admin.close()


def main():
    parser = argparse.ArgumentParser(description="sync trigger overhead")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seconds", type=int, default=10, help="per run; --rounds runs of each kind")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rate", type=float, default=50, help="transactions/s of the fixed-rate runs")
    parser.add_argument("--port", type=int, help="an existing cluster (default: a throwaway one)")
    parser.add_argument("--dbname", default="carbot_bench")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--baseline-tree", help="also a database synced by this tree's code (a git worktree of the "
                        "branch to compare with), measured in the same interleaved rounds: 'before'")
    args = parser.parse_args()

    cluster = None
    if args.port:
        kw = {"host": "127.0.0.1", "port": args.port, "user": "postgres", "password": os.environ.get("PGPASSWORD", ""),
              "dbname": args.dbname}
    else:
        base = tempfile.mkdtemp(prefix="carbot-bench-")
        cluster = local_cluster.LocalCluster(os.path.join(base, "pg"))
        cluster.ensure_started(PASSWORD, settings={"shared_buffers": "512MB", "max_wal_size": "4GB"})
        kw = {"host": "127.0.0.1", "port": cluster.facts()["port"], "user": "postgres", "password": PASSWORD,
              "dbname": args.dbname}
    # Two identical databases, one without and one with the triggers (and carbot_v2 copied), measured in
    # alternating rounds: the machine's background load changes over minutes; medians of interleaved
    # rounds compare like with like.
    plain = dict(kw, dbname=args.dbname + "_plain")
    synced = dict(kw, dbname=args.dbname + "_sync")
    base = dict(kw, dbname=args.dbname + "_base")
    runs = [("without", plain), ("with", synced)] + ([("before", base)] if args.baseline_tree else [])
    try:
        figures = {"scale": args.scale, "seconds": args.seconds, "rounds": args.rounds, "clients": args.clients,
                   "rate": args.rate}
        for _label, target in runs:
            recreate(kw, target["dbname"])
            print("building %s at scale %s ..." % (target["dbname"], args.scale), flush=True)
            figures.setdefault("build_seconds", []).append(round(build(target, args.scale), 1))
        params = {"login_host": kw["host"], "login_port": kw["port"], "login_db": synced["dbname"],
                  "login_user": kw["user"], "login_password": kw["password"], "lock_timeout_ms": 1000}
        conn = psycopg2.connect(**synced)
        plan = sync.Plan(conn)
        conn.close()
        t0 = time.monotonic()
        installed = sync.install(params, plan, sync.FORWARD)
        figures["install_seconds"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        copied = copy_engine.CopyEngine(params, workers=2).run()
        figures["copy_seconds"] = round(time.monotonic() - t0, 1)
        figures["copy_rows"] = copied["rows_copied"] + copied["rows_quarantined"]
        if args.baseline_tree:
            install_sync_from(args.baseline_tree, base, dict(params, login_db=base["dbname"]))
        for _label, target in runs[1:]:
            conn = psycopg2.connect(**target)
            mapping.add_foreign_keys(conn, "carbot_v2")
            conn.commit()
            conn.close()
        for _label, target in runs:
            vacuum(target)
        print("triggers installed in %.2fs (%d tables), copy %d rows in %.0fs" % (
            figures["install_seconds"], len(installed["tables"]), figures["copy_rows"], figures["copy_seconds"]),
            flush=True)
        raw = {label: {"max": [], "rate": []} for label, _target in runs}
        for i in range(args.rounds):
            for label, target in runs:
                raw[label]["max"].append(pgbench(target, args.seconds, args.clients))
                raw[label]["rate"].append(pgbench(target, args.seconds, 2, args.rate))
            print("round %d/%d: unthrottled %.2f / %.2f ms, at %g tx/s %.2f / %.2f ms" % (
                i + 1, args.rounds, raw["without"]["max"][-1]["latency_ms"], raw["with"]["max"][-1]["latency_ms"],
                args.rate, raw["without"]["rate"][-1]["latency_ms"], raw["with"]["rate"][-1]["latency_ms"]),
                flush=True)
        for label, _target in runs:
            figures[label] = {run: combine(raw[label][run]) for run in ("max", "rate")}
        for label in [label for label, _target in runs[1:]]:
            for run in ("max", "rate"):
                a, b = figures["without"][run], figures[label][run]
                figures.setdefault("ratio" if label == "with" else "ratio_before", {})[run] = {
                    "latency": round(b["latency_ms"] / a["latency_ms"], 2) if a["latency_ms"] else None,
                    "throughput": round(b["tps"] / a["tps"], 2) if a["tps"] else None,
                    "per_script": {k: round(b["per_script"][k] / v, 2) for k, v in a["per_script"].items()
                                   if v and b["per_script"].get(k)},
                }
        print("\nmedians of %d interleaved rounds of %ds, scale %s" % (args.rounds, args.seconds, args.scale))
        for label in [label for label, _target in runs[1:]]:
            ratios = figures["ratio" if label == "with" else "ratio_before"]
            print("%-34s %12s %12s %8s" % ("", "without", label, "ratio"))
            for run, title in (("max", "unthrottled (%d clients)" % args.clients), ("rate", "at %g tx/s" % args.rate)):
                a, b = figures["without"][run], figures[label][run]
                print("%-34s %7.1f tx/s %7.1f tx/s %7.2fx" % ("throughput " + title, a["tps"], b["tps"],
                                                             ratios[run]["throughput"]))
                print("%-34s %9.2f ms %9.2f ms %7.2fx" % ("latency/transaction " + title, a["latency_ms"],
                                                          b["latency_ms"], ratios[run]["latency"]))
                for script, ratio in sorted(ratios[run]["per_script"].items()):
                    print("    %-30s %9.2f ms %9.2f ms %7.2fx" % (script, a["per_script"][script],
                                                                 b["per_script"][script], ratio))
        worst = max(figures["ratio"]["rate"]["latency"], figures["ratio"]["max"]["latency"])
        print("\nper-transaction cost of the triggers: %.2fx (target <= 2x): %s"
              % (worst, "OK" if worst <= 2 else "OVER"))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(figures, handle, indent=2)
    finally:
        if cluster is not None:
            cluster.ensure_absent()
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
