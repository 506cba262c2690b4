#!/usr/bin/env python3
"""How long does the legacy data generator take? A figure, not an assertion.

Starts a throwaway cluster (fsync=off, the same LocalCluster as the rehearsal and the tests), applies
sql/legacy/schema.sql, runs sql/legacy/generate.sql at --scale (default 1.0 = production volumes) and
prints the time and the rows per table. The cluster is removed afterwards unless --keep.

    .venv/bin/python bench/generate.py                 # scale 1.0, seed 42
    .venv/bin/python bench/generate.py --scale 10 --checksums
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / ".collections"))

import psycopg2  # noqa: E402
from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data  # noqa: E402
from ansible_collections.carbot.rehearsal.plugins.module_utils.local_cluster import LocalCluster  # noqa: E402

PASSWORD = "carbot-bench"  # a throwaway cluster on loopback, not a secret


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--checksums", action="store_true", help="also time the content checksums")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running and print how to reach it")
    group = parser.add_argument_group("tenant shape (default: the mix of --scale)")
    for key in legacy_data.SHAPE_KEYS:
        group.add_argument("--" + key.replace("_", "-"), type=int, default=None, dest=key)
    args = parser.parse_args()
    shape = {k: getattr(args, k) for k in legacy_data.SHAPE_KEYS if getattr(args, k) is not None}

    base = tempfile.mkdtemp(prefix="carbot-bench-")
    cluster = LocalCluster(os.path.join(base, "pg"))
    t0 = time.monotonic()
    cluster.ensure_started(PASSWORD)
    print("cluster up in %.1f s on port %s (PostgreSQL %s, fsync=off)"
          % (time.monotonic() - t0, cluster.port, cluster.state().get("version")))
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres", password=PASSWORD,
                                dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute((REPO / "sql/legacy/schema.sql").read_text(encoding="utf-8"))
        generator = (REPO / "sql/legacy/generate.sql").read_text(encoding="utf-8")
        expected = legacy_data.expected_volumes(args.scale, shape)
        result = legacy_data.generate(conn, generator, args.seed, args.scale, "public", shape)
        counts = result["counts"]
        with conn.cursor() as cur:
            cur.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
            size = cur.fetchone()[0]

        print("\n%-22s %12s %12s" % ("table", "rows", "expected"))
        for table in legacy_data.LEGACY_TABLES:
            print("%-22s %12d %12d" % (table, counts[table], expected[table]))
        total = sum(counts.values())
        print("%-22s %12d" % ("total", total))
        print("\nscale %s, seed %s: generated %d rows in %.1f s (%.0f rows/s), database %s, %d cores"
              % (args.scale, args.seed, total, result["elapsed_seconds"], total / result["elapsed_seconds"],
                 size, os.cpu_count() or 0))
        if args.checksums:
            t1 = time.monotonic()
            checksum = legacy_data.combined_checksum(legacy_data.content_checksums(conn, "public"))
            print("content checksum %s in %.1f s" % (checksum, time.monotonic() - t1))
        conn.close()
    finally:
        if args.keep:
            print("kept: psql 'host=127.0.0.1 port=%s user=postgres password=%s dbname=postgres'; remove with "
                  "rm -rf %s after pg_ctl stop -D %s" % (cluster.port, PASSWORD, base, cluster.data_dir))
        else:
            cluster.ensure_absent()
            os.rmdir(base) if os.path.isdir(base) else None


if __name__ == "__main__":
    main()
