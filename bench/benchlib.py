"""What the benches share: the throwaway cluster's login, the schema names, and building the legacy
database with the mapping on it (the same steps as the rehearsal, without Ansible)."""

import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / ".collections"))

import psycopg2  # noqa: E402
import psycopg2.sql  # noqa: E402
from ansible_collections.carbot.migration.plugins.module_utils import mapping  # noqa: E402
from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data  # noqa: E402

PASSWORD = "carbot-bench"  # loopback-only throwaway cluster
TARGET, MAPPING, LEGACY = "carbot_v2", "carbot_migration", "public"


def connect(port, dbname="carbot", autocommit=True):
    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", password=PASSWORD, dbname=dbname)
    conn.autocommit = autocommit
    return conn


def create_legacy_database(port):
    """The ``carbot`` database with the empty legacy schema; returns a connection to it (not autocommit)."""
    admin = connect(port, "postgres")
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE carbot")
    admin.close()
    conn = connect(port, autocommit=False)
    with conn.cursor() as cur:
        cur.execute((REPO / "sql" / "legacy" / "schema.sql").read_text())
    conn.commit()
    return conn


def generate(conn, scale, seed, shape=None):
    """The legacy data (sql/legacy/generate.sql) at ``scale`` and the optional tenant ``shape``; returns the
    generator's result (counts per table)."""
    return legacy_data.generate(conn, (REPO / "sql" / "legacy" / "generate.sql").read_text(), seed, scale, LEGACY,
                                shape)


def generate_tenant(conn, fraction):
    """The issue-14 tenant mix from bench/tenant_data.sql (not the project's generator; its header says what it
    holds) at ``fraction`` (1.0 = 3.5 M rows); returns {"counts": {table: rows}} like :func:`generate`."""
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute("SELECT set_config('search_path', %s, false), set_config('carbot.tenant_fraction', %s, false)",
                    (LEGACY, str(fraction)))
        cur.execute((REPO / "bench" / "tenant_data.sql").read_text())
        counts = {}
        for name in legacy_data.LEGACY_TABLES:
            cur.execute(psycopg2.sql.SQL("SELECT count(*) FROM {}").format(psycopg2.sql.Identifier(LEGACY, name)))
            counts[name] = cur.fetchone()[0]
    conn.commit()
    return {"counts": counts}


def add_shape_arguments(parser):
    """--workshops, --customers-per-workshop, --leads-per-workshop, --messages-per-conversation."""
    group = parser.add_argument_group("tenant shape (default: the mix of --scale)")
    for key in legacy_data.SHAPE_KEYS:
        group.add_argument("--" + key.replace("_", "-"), type=int, default=None, dest=key)


def shape_of(args):
    """The shape given on the command line ({} for the default mix)."""
    return {k: getattr(args, k) for k in legacy_data.SHAPE_KEYS if getattr(args, k) is not None}


def apply_mapping(conn, sql_dir=None):
    """carbot_v2 and the mapping from ``sql_dir`` (default: the repository's sql/), then VACUUM ANALYZE.
    Leaves ``conn`` in autocommit."""
    mapping.apply_all(conn, str(sql_dir or REPO / "sql"), TARGET, MAPPING, LEGACY)
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")


def backend_cpu_ms(pid):
    """CPU time (user + system) a local server process has used, in ms (/proc; None when not readable)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


_INSTALL_FROM = """
import json, sys
sys.path.insert(0, sys.argv[1] + "/.collections")
import psycopg2
from ansible_collections.carbot.migration.plugins.module_utils import copy_engine, sync
kw, params = json.loads(sys.argv[2]), json.loads(sys.argv[3])
conn = psycopg2.connect(**kw)
plan = sync.Plan(conn)
conn.close()
sync.install(params, plan, sync.FORWARD)
result = copy_engine.CopyEngine(params, workers=2).run()
assert not result["failed"], result
"""


def install_sync_from(tree, kw, params):
    """The forward sync installed and carbot_v2 copied with the code of another tree (``--baseline-tree``: a git
    worktree of the branch to compare with), in a subprocess: before and after measured in one run, on the same
    cluster, in alternating rounds. ``kw``: psycopg2.connect arguments; ``params``: the modules' login params."""
    import json
    import subprocess
    subprocess.run([sys.executable, "-c", _INSTALL_FROM, str(tree), json.dumps(kw), json.dumps(params)], check=True)
