#!/usr/bin/env python3
"""Copy and validation speed, measured (not asserted) on a throwaway cluster.

    .venv/bin/python bench/copy_bench.py [--scale 1.0] [--seed 42] [--workers N] [--keep]
        [--workshops N] [--customers-per-workshop N] [--leads-per-workshop N] [--messages-per-conversation N]
        [--playbook] [--rounds N]

The tenant shape options change how the rows group (e.g. a few workshops with many customers); unset, the
generator's default mix of --scale.

At the given scale (legacy_data generator) it times:
  (a) plain, unbatched ``INSERT INTO <target>.t SELECT <cols> FROM <mapping>.map_t WHERE _quarantine_reason
      IS NULL`` for every table, one after another;
  (b) the copy engine's full copy (keyset batches, locks, checkpoints, quarantine, parallel tables);
  (c) ``pg_dump -Fc`` of the legacy tables piped into ``pg_restore`` of a scratch database;
  (f) an identity copy of the legacy tables (CREATE TABLE AS + primary key): the floor of any copy;
  (d) the full validation (every check) against one checksum pass over both sides
      (``md5(string_agg(md5(row::text) ORDER BY key))`` of the mapped view and of the target, per table).
and prints the ratios next to the targets of the issue: (b)/(a) <= 1.3, (b)/(c) <= 0.5, (d)/checksum <= 1.5.

With --playbook it also times, on the same data and cluster,
  (e) ``ansible-playbook playbooks/migrate.yml`` end to end, as a user runs it (and as tests/ and the Molecule
      ``migration`` scenario do): an inventory with ``ansible_connection=local``, the role defaults, the
      forward sync installed and the schema recorded as applied (prepare.yml's result), Ansible start-up,
      the background copy and its follow loop, and the foreign keys added and validated, all included;
and prints (e)/(c), the issue's figure: the copy as a user gets it <= 0.5x pg_dump | pg_restore.
--rounds N repeats (b), (c) and (e) N times, alternating, so that the machine's load hits them alike; the
ratios are taken from the medians.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# benchlib first: it puts the collection on sys.path
from benchlib import (
    LEGACY,
    MAPPING,
    PASSWORD,
    REPO,
    TARGET,
    add_shape_arguments,
    apply_mapping,
    connect,
    create_legacy_database,
    generate,
    generate_tenant,
    shape_of,
)

# isort: split

from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, mapping, sync, validation
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


def forward_sync(port, on):
    """What playbooks/prepare.yml leaves behind besides the schema: the schema's checksum recorded (so that
    migrate.yml's schema step only adds the foreign keys) and the forward sync triggers installed (on=True);
    on=False removes the triggers again (pg_dump would dump them with the legacy tables, and pg_restore
    cannot create them without the mapping schema)."""
    from ansible_collections.carbot.migration.plugins.modules import schema_apply
    conn = connect(port)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
            sql.Identifier(TARGET), sql.Literal(schema_apply.CHECKSUM_PREFIX
                                                + mapping.sql_files_checksum(str(REPO / "sql")))))
    plan = sync.Plan(conn, LEGACY, MAPPING, TARGET)
    conn.close()
    params = {"login_host": "127.0.0.1", "login_port": port, "login_db": "carbot", "login_user": "postgres",
              "login_password": PASSWORD, "lock_timeout_ms": 3000}
    (sync.install if on else sync.remove)(params, plan, sync.FORWARD)


def drop_foreign_keys(port):
    """Back to the state before migrate.yml: the copy runs without foreign keys (they come after it)."""
    conn = connect(port)
    with conn.cursor() as cur:
        have = mapping.existing_foreign_keys(conn, TARGET)
        for fk in mapping.foreign_keys():
            if fk["name"] in have:
                cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.Identifier(TARGET, fk["table"]), sql.Identifier(fk["name"])))
    conn.close()


def identity_copy(port):
    """The floor: every legacy table copied as it is (``CREATE TABLE AS``) into a scratch schema, plus its primary
    key; no rule, no index but the key, no lock, no batch. Dropped afterwards."""
    conn = connect(port)
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS carbot_identity CASCADE")
        cur.execute("CREATE SCHEMA carbot_identity")
        for name in legacy_data.LEGACY_TABLES:
            cur.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                        "AND a.attnum = ANY (i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                        "ORDER BY array_position(i.indkey::int2[], a.attnum)",
                        (sql.Identifier(LEGACY, name).as_string(conn),))
            keys = [r[0] for r in cur.fetchall()]
            cur.execute(sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(
                sql.Identifier("carbot_identity", name), sql.Identifier(LEGACY, name)))
            if keys:
                cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                    sql.Identifier("carbot_identity", name), sql.SQL(", ").join(map(sql.Identifier, keys))))
    conn.close()


def drop_identity_copy(port):
    conn = connect(port)
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS carbot_identity CASCADE")
    conn.close()


def run_migrate_playbook(port, work, workers=None):
    """``ansible-playbook playbooks/migrate.yml`` against the bench's cluster; returns (seconds, the copy's own
    seconds as the role reports them or None). Raises with the end of the output when the playbook fails."""
    inventory = os.path.join(work, "hosts.ini")
    with open(inventory, "w") as handle:
        handle.write("[carbot_db]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n"
                     % sys.executable)
    vars_file = os.path.join(work, "vars.json")
    with open(vars_file, "w") as handle:
        json.dump({"carbot_db_host": "127.0.0.1", "carbot_db_port": port, "carbot_db_name": "carbot",
                   "carbot_db_user": "postgres", "carbot_db_password": PASSWORD, "carbot_db_sslmode": "disable",
                   "carbot_legacy_schema": LEGACY, "carbot_target_schema": TARGET, "carbot_mapping_schema": MAPPING,
                   "carbot_backup_dir": os.path.join(work, "backups"), "carbot_app_db_user": "carbot_app",
                   "carbot_app_db_password": "app-pw",
                   # the job id file of this run, not one in the home directory
                   "data_copy_job_file": os.path.join(work, "copy.jid"),
                   "data_copy_workers": workers or 0}, handle)
    os.chmod(vars_file, 0o600)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=os.path.join(work, "ansible-tmp"), CARBOT_REPORTS_DIR=os.path.join(work, "reports"))
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
               "-e", "@%s" % vars_file, str(REPO / "playbooks" / "migrate.yml")]
    t0 = time.monotonic()
    proc = subprocess.run(command, cwd=str(REPO), env=env, capture_output=True, text=True)
    took = time.monotonic() - t0
    with open(os.path.join(work, "migrate.log"), "a") as handle:
        handle.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError("migrate.yml failed (exit %d): %s" % (proc.returncode, proc.stdout[-3000:]))
    found = re.search(r"copy took ([0-9.]+) s", proc.stdout)
    return took, float(found.group(1)) if found else None


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
    parser.add_argument("--playbook", action="store_true",
                        help="also time ansible-playbook playbooks/migrate.yml end to end on the same data")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the engine, pg_dump|pg_restore (and the playbook) this many times, alternating")
    parser.add_argument("--dataset", choices=("generator", "tenant"), default="generator",
                        help="generator: sql/legacy/generate.sql at --scale (and the shape options); tenant: "
                             "bench/tenant_data.sql, issue 14's tenant mix written apart from the generator")
    parser.add_argument("--tenant-fraction", type=float, default=1.0,
                        help="with --dataset tenant: 1.0 = the issue's 3.5 M rows (300 workshops)")
    add_shape_arguments(parser)
    args = parser.parse_args()
    shape = shape_of(args)
    if args.dataset == "tenant" and shape:
        parser.error("the shape options belong to --dataset generator")

    base = tempfile.mkdtemp(prefix="carbot-bench-")
    cluster = LocalCluster(os.path.join(base, "pg"))
    cluster.ensure_started(PASSWORD)
    facts = cluster.facts()
    port = facts["port"]
    data = ("tenant mix (bench/tenant_data.sql), fraction %s" % args.tenant_fraction if args.dataset == "tenant"
            else "scale %s, seed %s, shape %s" % (args.scale, args.seed, shape or "default mix"))
    print("carbot.migration copy bench: %s, PostgreSQL %s on port %s, %s cores, load %s"
          % (data, facts["version"], port, os.cpu_count(), " ".join("%.1f" % x for x in os.getloadavg())),
          flush=True)
    try:
        conn = create_legacy_database(port)
        if args.dataset == "tenant":
            _took, gen = timed("generate the tenant mix", lambda: generate_tenant(conn, args.tenant_fraction))
        else:
            _took, gen = timed("generate legacy data", lambda: generate(conn, args.scale, args.seed, shape))
        print("  legacy rows: %d" % sum(gen["counts"].values()))
        apply_mapping(conn)
        specs = copy_engine.resolve(conn, copy_engine.order_tables(mapping.TABLES), LEGACY, MAPPING, TARGET)
        conn.close()

        print("(a) plain INSERT ... SELECT per table", flush=True)
        t_plain, per_table = timed("plain unbatched INSERT INTO target SELECT FROM view",
                                   lambda: plain_insert(port, specs))
        reset_target(port)

        params = {"login_host": "127.0.0.1", "login_port": port, "login_db": "carbot", "login_user": "postgres",
                  "login_password": PASSWORD, "ssl_mode": "disable", "lock_timeout_ms": 3000,
                  "statement_timeout_ms": 0}
        copies, dumps, playbooks, copy_in_playbook = [], [], [], []
        for rnd in range(max(1, args.rounds)):
            if args.rounds > 1:
                print("round %d of %d (load %s)" % (rnd + 1, args.rounds,
                                                     " ".join("%.1f" % x for x in os.getloadavg())), flush=True)
            print("(b) the engine", flush=True)
            if rnd:
                reset_target(port)
            engine = copy_engine.CopyEngine(params, workers=args.workers)
            took, result = timed("engine full copy (%d workers)" % engine.workers, engine.run)
            assert not result["failed"], result
            copies.append(took)
            # every table, slowest first: rows, seconds and rows/s in the engine (tables run in parallel, so a
            # table's time includes waiting for the cores its neighbours use), and plain INSERT...SELECT beside it
            slow = sorted(result["tables"].items(), key=lambda kv: -kv[1].get("elapsed", 0))
            for name, r in slow:
                plain_rows, plain_s = per_table[name]
                print("      %-22s %9d rows %7.2fs %9.0f rows/s  (plain %6.2fs %9.0f rows/s)"
                      % (name, r["scanned"], r["elapsed"], r["rows_per_second"], plain_s,
                         plain_rows / plain_s if plain_s else 0.0))

            print("(c) pg_dump | pg_restore of the legacy tables", flush=True)
            took, _ = timed("pg_dump -Fc | pg_restore into a scratch database",
                            lambda: dump_restore(port, facts["bindir"]))
            dumps.append(took)
            if rnd == 0:
                print("(f) identity copy of the legacy tables (CREATE TABLE AS + primary key), the floor", flush=True)
                t_identity, _ = timed("CREATE TABLE AS + primary key, every legacy table", lambda: identity_copy(port))
                drop_identity_copy(port)

            if args.playbook:
                print("(e) ansible-playbook playbooks/migrate.yml (ansible_connection=local)", flush=True)
                reset_target(port)
                forward_sync(port, True)
                took, (_wall, inner) = timed("migrate.yml end to end (start-up, copy, follow, foreign keys)",
                                             lambda: run_migrate_playbook(port, base, args.workers))
                playbooks.append(took)
                copy_in_playbook.append(inner)
                print("      the copy inside it (the module's own elapsed): %s s; the rest (%.1f s) is Ansible "
                      "and the foreign keys" % (inner, took - (inner or 0)))
                drop_foreign_keys(port)
                forward_sync(port, False)
        t_copy, t_dump = statistics.median(copies), statistics.median(dumps)
        t_play = statistics.median(playbooks) if playbooks else None
        if args.rounds > 1:
            print("medians of %d rounds: engine %.2fs (%s), pg_dump|pg_restore %.2fs (%s)%s" % (
                len(copies), t_copy, ", ".join("%.2f" % x for x in copies), t_dump,
                ", ".join("%.2f" % x for x in dumps),
                ", migrate.yml %.2fs (%s)" % (t_play, ", ".join("%.2f" % x for x in playbooks)) if playbooks else ""))

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
        ratios["identity copy / pg_dump|pg_restore"] = (t_identity / t_dump, None)
        if t_play is not None:
            # the figure: the copy as a user runs it, Ansible start-up and foreign keys included
            ratios["migrate.yml / pg_dump|pg_restore"] = (t_play / t_dump, 0.5)
        print("\nratios (target in brackets):")
        for label, (value, target) in ratios.items():
            if target is None:
                print("  %-34s %5.2f  (for reference)" % (label, value))
            else:
                print("  %-34s %5.2f  (<= %.1f)  %s" % (label, value, target, "ok" if value <= target else "OVER"))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump({"scale": args.scale, "shape": shape, "dataset": args.dataset,
                           "tenant_fraction": args.tenant_fraction if args.dataset == "tenant" else None,
                           "load": os.getloadavg(),
                           "tables": {n: {"rows": r["scanned"], "seconds": r["elapsed"],
                                          "rows_per_second": r["rows_per_second"]}
                                      for n, r in result["tables"].items()},
                           "seconds": {"plain": t_plain, "copy": t_copy, "dump_restore": t_dump,
                                       "checksum": t_sum, "validation": t_val, "migrate_yml": t_play,
                                       "identity_copy": t_identity,
                                       "copy_inside_migrate_yml": copy_in_playbook,
                                       "rounds": {"copy": copies, "dump_restore": dumps,
                                                  "migrate_yml": playbooks}},
                           "ratios": {k: v[0] for k, v in ratios.items()}}, handle, indent=2)
    finally:
        if args.keep:
            print("cluster kept in %s on port %s" % (base, port))
        else:
            cluster.ensure_absent()
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
