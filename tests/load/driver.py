"""A live application load for the sync tests, the bench and the rehearsal.

``LoadRun`` drives the database with pgbench custom scripts (``tests/load/<mode>_*.sql``) at a fixed
rate (``pgbench -R``), in segments of a few seconds until ``stop()`` (so it can span steps of unknown
length), plus a long reader thread that holds ``AccessShareLock`` on a busy table (a reporting query
that keeps its transaction open for ``reader_hold`` seconds, again and again).

With ``journal=True`` every write also records ``(op, table, key)`` in ``carbot_load.journal`` in the
same statement (the scripts' ``\\if :journal`` branches), so that ``verify()`` can prove afterwards that
not a single write was lost: for each journaled key, the other side holds exactly what the mapping says.

Run it by hand: ``python tests/load/driver.py --dbname carbot --port 5432 --mode legacy --rate 30 --seconds 60``.

The online cutover (issue 17) runs one writer per app version: ``--user carbot_app --server-path`` (old pods: the
legacy scripts, the schema the server gives the role) and ``--user carbot_app_v2 --server-path --wait-for-role``
(new pods: the v2 scripts; the role exists only once the cutover prepared it). ``--serve-while-image-other-than
IMG`` (with ``--kubeconfig``, ``--deployment ns/name``) ends the old writer once no ready pod of another image is
left, as old pods end during a rolling update; ``--connect-per-transaction`` (pgbench ``-C``) gives every
transaction a fresh session, as a pool that validates its connections does. Failed writes are counted per writer.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import psycopg2
from psycopg2 import sql

HERE = os.path.dirname(os.path.abspath(__file__))

# script -> weight (pgbench -f script@weight): the shape of the live app's writes
WEIGHTS = {
    "legacy": {"new_lead": 3, "chat_message": 4, "analytics_event": 6, "lead_status": 3, "customer_edit": 3,
               "gdpr_erasure": 1, "appointment_cancel": 2, "new_customer": 2},
    "v2": {"new_lead": 3, "chat_message": 4, "analytics_event": 6, "lead_status": 3, "customer_edit": 3,
           "gdpr_erasure": 1, "appointment_cancel": 2},
}
# legacy table of a journal entry -> target table (the mapping's sources)
JOURNAL_DDL = """
CREATE SCHEMA IF NOT EXISTS carbot_load;
CREATE TABLE IF NOT EXISTS carbot_load.journal (
    id bigserial PRIMARY KEY, op text NOT NULL, tbl text NOT NULL, key text NOT NULL,
    mode text NOT NULL DEFAULT current_setting('search_path'), at timestamptz NOT NULL DEFAULT clock_timestamp());
"""


def pgbench_path():
    for candidate in ("/usr/lib/postgresql/15/bin/pgbench", shutil.which("pgbench") or ""):
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError("pgbench not found")


def scripts(mode):
    out = []
    for name, weight in WEIGHTS[mode].items():
        path = os.path.join(HERE, "%s_%s.sql" % (mode, name))
        if not os.path.exists(path):
            raise RuntimeError("missing load script %s" % path)
        out.append((path, weight))
    return out


def parse_pgbench(text):
    """The summary figures of one pgbench run."""
    def num(pattern, cast=float):
        m = re.search(pattern, text)
        return cast(m.group(1)) if m else None
    return {
        "transactions": num(r"number of transactions actually processed: (\d+)", int) or 0,
        "failed": num(r"number of failed transactions: (\d+)", int) or 0,
        "latency_ms": num(r"latency average = ([\d.]+) ms"),
        "latency_stddev_ms": num(r"latency stddev = ([\d.]+) ms"),
        "lag_ms": num(r"rate limit schedule lag: avg ([\d.]+)"),
        "tps": num(r"tps = ([\d.]+) \(without initial connection time\)"),
        "aborted": "aborted in command" in text or "client aborted" in text.lower(),
    }


class LongReader(threading.Thread):
    """A reporting query: ``BEGIN; SELECT count(*) FROM <table>;`` then holds the transaction (and its
    AccessShareLock) for ``hold`` seconds, commits, pauses ``gap`` seconds, again until stopped."""

    def __init__(self, conn_kwargs, table="leads", hold=5.0, gap=0.2, schema="public"):
        super().__init__(daemon=True, name="carbot-long-reader")
        self.conn_kwargs, self.table, self.hold, self.gap, self.schema = conn_kwargs, table, hold, gap, schema
        self.stopping = threading.Event()
        self.holds = 0
        self.error = None

    def run(self):
        try:
            conn = psycopg2.connect(application_name="carbot load long reader", **self.conn_kwargs)
            while not self.stopping.is_set():
                with conn.cursor() as cur:
                    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.schema, self.table)))
                    cur.fetchone()
                self.holds += 1
                self.stopping.wait(self.hold)
                conn.rollback()
                self.stopping.wait(self.gap)
            conn.close()
        except Exception as exc:  # noqa: BLE001 - reported by stop()
            self.error = "%s: %s" % (type(exc).__name__, exc)

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)


class LoadRun:
    """pgbench at ``rate`` transactions/s in ``segment``-second runs until stop(), plus a long reader."""

    def __init__(self, conn_kwargs, mode="legacy", rate=30, clients=4, threads=2, journal=True, segment=5,
                 reader_table="leads", reader_hold=5.0, search_path=None, duration=None, log=None,
                 server_path=False, wait_for_role=False, connect_per_transaction=False, serve_while=None):
        self.conn_kwargs = dict(conn_kwargs)
        self.mode, self.rate, self.clients, self.threads = mode, rate, clients, threads
        self.journal, self.segment, self.duration = journal, segment, duration
        self.search_path = search_path or ("public" if mode == "legacy" else "carbot_v2, public")
        self.reader = LongReader(self.conn_kwargs, reader_table, reader_hold,
                                 schema="public" if mode == "legacy" else "carbot_v2") if reader_table else None
        self.stopping = threading.Event()
        self.runs = []
        self.errors = []
        self.thread = None
        self.proc = None
        self.log = log
        self.started_at = None
        # online cutover: the role's own (server-side) search_path, a role that appears later, pods that end
        self.server_path, self.wait_for_role = server_path, wait_for_role
        self.connect_per_transaction, self.serve_while = connect_per_transaction, serve_while
        self.waited_for_role = 0.0
        self.ended_because = None

    def setup(self):
        conn = psycopg2.connect(**self.conn_kwargs)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('carbot_load.journal') IS NOT NULL")
            if not cur.fetchone()[0]:  # an app role writes an existing journal (granted), it creates nothing
                cur.execute(JOURNAL_DDL)
        conn.close()

    def _role_ready(self):
        try:
            psycopg2.connect(**self.conn_kwargs).close()
            return True
        except psycopg2.OperationalError:
            return False

    def _argv(self, seconds):
        argv = [pgbench_path(), "-n", "-M", "prepared", "-c", str(self.clients), "-j", str(self.threads),
                "-T", str(int(seconds)), "-R", str(self.rate), "-D", "journal=%d" % (1 if self.journal else 0),
                "-h", str(self.conn_kwargs.get("host", "127.0.0.1")), "-p", str(self.conn_kwargs.get("port", 5432)),
                "-U", self.conn_kwargs.get("user", "postgres")]
        if self.connect_per_transaction:
            argv.append("-C")
        if self.server_path:
            # the online cutover's writers retry deadlocks and serialization failures as the app does (pgbench 15)
            argv += ["--max-tries", "10"]
        for path, weight in scripts(self.mode):
            argv += ["-f", "%s@%d" % (path, weight)]
        argv.append(self.conn_kwargs["dbname"])
        return argv

    def _env(self):
        env = dict(os.environ)
        if self.conn_kwargs.get("password"):
            env["PGPASSWORD"] = self.conn_kwargs["password"]
        if not self.server_path:
            env["PGOPTIONS"] = "-c search_path=%s" % self.search_path.replace(" ", "")
        env["PGAPPNAME"] = "carbot load %s" % self.mode
        return env

    def _loop(self):
        deadline = time.monotonic() + self.duration if self.duration else None
        while not self.stopping.is_set():
            if self.wait_for_role and not self._role_ready():
                self.waited_for_role += 0.5
                self.stopping.wait(0.5)
                continue
            if self.serve_while is not None and not self.serve_while():
                self.ended_because = "no pod of this version serves any more"
                break
            seconds = self.segment
            if deadline is not None:
                seconds = min(seconds, deadline - time.monotonic())
                if seconds < 1:
                    break
            self.proc = subprocess.Popen(self._argv(seconds), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         env=self._env(), text=True)
            out, _ = self.proc.communicate()
            rec = parse_pgbench(out)
            rec["seconds"] = int(seconds)
            rec["returncode"] = self.proc.returncode
            if self.proc.returncode not in (0,) or rec["failed"] or rec["aborted"]:
                self.errors.append(out[-2000:])
            if self.log:
                with open(self.log, "a") as handle:
                    handle.write(out)
            self.runs.append(rec)

    def start(self):
        if self.journal and not self.wait_for_role:
            self.setup()
        self.started_at = time.monotonic()
        if self.reader:
            self.reader.start()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="carbot-load")
        self.thread.start()
        return self

    def stop(self):
        """Finish the running segment (at most ``segment`` seconds), stop the reader; return the summary."""
        self.stopping.set()
        if self.thread:
            self.thread.join(timeout=self.segment + 60)
        if self.reader:
            self.reader.stop()
        return self.summary()

    def wait(self):
        if self.thread:
            self.thread.join()
        if self.reader:
            self.reader.stop()
        return self.summary()

    def summary(self):
        tx = sum(r["transactions"] for r in self.runs)
        secs = sum(r["seconds"] for r in self.runs) or 1
        lat = [r for r in self.runs if r["latency_ms"] is not None and r["transactions"]]
        latency = sum(r["latency_ms"] * r["transactions"] for r in lat) / max(1, sum(r["transactions"] for r in lat))
        return {
            "mode": self.mode, "segments": len(self.runs), "transactions": tx,
            "failed": sum(r["failed"] for r in self.runs), "tps": round(tx / secs, 1),
            "latency_ms": round(latency, 3), "errors": self.errors[:3],
            "user": self.conn_kwargs.get("user"), "server_path": self.server_path,
            "waited_for_role_s": self.waited_for_role, "ended_because": self.ended_because,
            "reader_holds": self.reader.holds if self.reader else 0,
            "reader_error": self.reader.error if self.reader else None,
        }


# ------------------------------------------------------------------------------------ verification
def journal_entries(conn, mode):
    with conn.cursor() as cur:
        # mode is the writer's search_path: 'public', '"$user", public' (an app role on the server's path) or
        # 'carbot_v2, public'
        cur.execute("SELECT tbl, key, count(*) FROM carbot_load.journal WHERE (mode LIKE 'carbot_v2%%') = %s "
                    "GROUP BY 1, 2", (mode != "legacy",))
        return cur.fetchall()


def verify(conn, mode="legacy", legacy="public", mapping_schema="carbot_migration", target="carbot_v2"):
    """Every journaled write is where it must be. Returns {"checked": n, "lost": [(table, key, why)], "writes": n}.

    For each journaled key of target table T (legacy tables mapped through the declaration):
    the legacy row exists and migrates  -> the target row exists and equals the view's row;
    the legacy row exists, quarantined  -> no target row, a quarantine row;
    the legacy row is gone              -> no target row and no quarantine row.
    ``mode='v2'`` journals carbot_v2 writes; after the reverse sync the same three rules hold.
    """
    from ansible_collections.carbot.migration.plugins.module_utils import mapping
    by_source = {t["source"]: t for t in mapping.TABLES if t["kind"] == "row"}
    by_target = {t["target"]: t for t in mapping.TABLES if t["kind"] == "row"}
    entries = journal_entries(conn, mode)
    keys = {}
    for tbl, key, _n in entries:
        t = by_source.get(tbl) if mode == "legacy" else by_target.get(tbl)
        if t is None:
            raise AssertionError("journal names table %r that no mapping entry drives" % tbl)
        keys.setdefault(t["target"], set()).add(key)
    lost = []
    with conn.cursor() as cur:
        for name, ks in sorted(keys.items()):
            t = by_target[name]
            cols = mapping.view_columns(conn, mapping_schema, t["view"])
            cols = [c for c in cols if c in dict(mapping.column_types(conn, target, name))]
            key = t["target_key"][0]
            rowhash = sql.SQL("md5(ROW({})::text)")
            cur.execute(sql.SQL(
                "SELECT k.key, v._src_key IS NOT NULL, v._quarantine_reason, {vh}, t.{key} IS NOT NULL, {th}, "
                "EXISTS (SELECT 1 FROM {q} q WHERE q.target_table = %s AND q.source_pk = k.key) "
                "FROM unnest(%s::text[]) AS k(key) "
                "LEFT JOIN {view} v ON v._src_key = k.key::{ktype} "
                "LEFT JOIN {tgt} t ON t.{key} = k.key::{ktype}").format(
                vh=rowhash.format(sql.SQL(", ").join(sql.SQL("v.{}").format(sql.Identifier(c)) for c in cols)),
                th=rowhash.format(sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in cols)),
                key=sql.Identifier(key), q=sql.Identifier(target, "migration_quarantine"),
                view=sql.Identifier(mapping_schema, t["view"]), tgt=sql.Identifier(target, name),
                ktype=sql.SQL(dict(mapping.column_types(conn, target, name))[key])), (name, sorted(ks)))
            for k, in_view, reason, vh, in_target, th, quarantined in cur.fetchall():
                if in_view and reason is None:
                    if not in_target:
                        lost.append((name, k, "missing in %s" % target))
                    elif vh != th:
                        lost.append((name, k, "differs between legacy (mapped) and %s" % target))
                elif in_view:
                    if in_target:
                        lost.append((name, k, "quarantined (%s) but present in %s" % (reason, target)))
                    elif mode == "legacy" and not quarantined:
                        lost.append((name, k, "quarantined (%s) but not in migration_quarantine" % reason))
                else:
                    if in_target:
                        lost.append((name, k, "gone from %s but still in %s" % (legacy, target)))
                    elif mode == "legacy" and quarantined:
                        lost.append((name, k, "gone from %s but still quarantined" % legacy))
    conn.rollback()
    return {"checked": sum(len(v) for v in keys.values()), "writes": sum(n for _t, _k, n in entries), "lost": lost}


def old_pods_serve(kubeconfig, context, deployment, new_image):
    """A check: some ready pod of the Deployment runs an image other than ``new_image`` (read through the API)."""
    from kubernetes import client, config  # the kubernetes client kubernetes.core uses; only needed here
    namespace, name = deployment.split("/", 1)
    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig, context=context))
    apps = client.AppsV1Api(api.api_client)
    selector = ",".join("%s=%s" % kv for kv in sorted(
        apps.read_namespaced_deployment(name, namespace).spec.selector.match_labels.items()))

    def check():
        try:
            pods = api.list_namespaced_pod(namespace, label_selector=selector).items
        except Exception:  # noqa: BLE001 - the API briefly away: keep serving
            return True
        for pod in pods:
            ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
            if ready and any(c.image != new_image for c in pod.spec.containers):
                return True
        return False
    return check


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--dbname", required=True)
    parser.add_argument("--mode", choices=sorted(WEIGHTS), default="legacy")
    parser.add_argument("--rate", type=float, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60, help="0: until SIGTERM/SIGINT")
    parser.add_argument("--no-journal", action="store_true")
    parser.add_argument("--reader-table", default="leads")
    parser.add_argument("--summary", help="write the summary (JSON) here")
    parser.add_argument("--segment", type=float, default=5, help="seconds per pgbench run")
    parser.add_argument("--server-path", action="store_true",
                        help="no search_path from the client: the role's server-side settings decide")
    parser.add_argument("--wait-for-role", action="store_true", help="wait until --user can log in")
    parser.add_argument("--connect-per-transaction", action="store_true", help="pgbench -C")
    parser.add_argument("--serve-while-image-other-than", metavar="IMAGE",
                        help="end once no ready pod of an image other than IMAGE is left (old pods, rolling update)")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--context")
    parser.add_argument("--deployment", help="namespace/name")
    args = parser.parse_args()
    kwargs = {"host": args.host, "port": args.port, "user": args.user, "dbname": args.dbname,
              "password": os.environ.get("PGPASSWORD", "")}
    serve_while = None
    if args.serve_while_image_other_than:
        serve_while = old_pods_serve(args.kubeconfig, args.context, args.deployment, args.serve_while_image_other_than)
    run = LoadRun(kwargs, mode=args.mode, rate=args.rate, clients=args.clients, journal=not args.no_journal,
                  reader_table=args.reader_table or None, duration=args.seconds or None, segment=args.segment,
                  server_path=args.server_path, wait_for_role=args.wait_for_role,
                  connect_per_transaction=args.connect_per_transaction, serve_while=serve_while)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run.start()
    while not stop.is_set() and run.thread.is_alive():
        stop.wait(1)
    summary = run.stop()
    text = json.dumps(summary, indent=2)
    if args.summary:
        with open(args.summary, "w") as handle:
            handle.write(text)
    print(text)


if __name__ == "__main__":
    main()

