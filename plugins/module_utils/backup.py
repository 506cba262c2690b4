# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup of carbot.migration.db_backup: pg_dump/pg_restore with a private pgpass file, checksums, a
manifest, the archive and restore verification, retention, progress (module_utils/job_progress.py).

``Backup(module)`` does what the module's options say (``backup()``/``verify()``, each returning the module's
result); ``BackupError`` says why a backup cannot be made or trusted. The module (plugins/modules/db_backup.py)
is its documentation and a ``main()`` that runs it through common.run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from ansible_collections.carbot.migration.plugins.module_utils import db, job_progress
from ansible_collections.carbot.migration.plugins.module_utils.db import sql
from ansible_collections.carbot.migration.plugins.module_utils.errors import CarbotError

KIND = "carbot.migration backup"
CHUNK = 1024 * 1024


class BackupError(CarbotError):
    """The backup or its verification cannot be made or trusted (the message says which and why)."""


# ------------------------------------------------------------------------------------------ files
def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_lines(dump_path):
    """``sha256sum``-style lines for a dump (file or directory), names relative to the backup directory."""
    name = os.path.basename(dump_path.rstrip("/"))
    if os.path.isdir(dump_path):
        return ["%s  %s/%s" % (sha256_file(os.path.join(dump_path, f)), name, f)
                for f in sorted(os.listdir(dump_path))]
    return ["%s  %s" % (sha256_file(dump_path), name)]


def overall_sha256(dump_path, lines):
    if os.path.isdir(dump_path):
        return hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest()
    return lines[0].split()[0]


def size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    return os.path.getsize(path)


def remove_path(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def base_of(dump_path):
    return re.sub(r"\.(dump|dir)/?$", "", dump_path.rstrip("/"))


def safe_name(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


# ------------------------------------------------------------------------------------------ tools
def find_bin_dir(explicit, server_major):
    if explicit:
        return explicit
    candidate = "/usr/lib/postgresql/%d/bin" % server_major
    if os.path.exists(os.path.join(candidate, "pg_dump")):
        return candidate
    newer = []
    for path in glob.glob("/usr/lib/postgresql/*/bin/pg_dump"):
        try:
            major = int(path.split("/")[4])
        except ValueError:
            continue
        if major >= server_major:
            newer.append((major, os.path.dirname(path)))
    if newer:
        return max(newer)[1]
    found = shutil.which("pg_dump")
    return os.path.dirname(found) if found else None


def tool_major(path):
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else 0, out.strip()


class Tools:
    """pg_dump/pg_restore with a connection string that holds no password and a private pgpass file."""

    def __init__(self, module, server_major):
        p = module.params
        self.module = module
        bin_dir = find_bin_dir(p["bin_dir"], server_major)
        if not bin_dir:
            raise BackupError("pg_dump not found: install the PostgreSQL client (postgresql-client-%d) or set bin_dir"
                              % server_major)
        self.pg_dump = os.path.join(bin_dir, "pg_dump")
        self.pg_restore = os.path.join(bin_dir, "pg_restore")
        for tool in (self.pg_dump, self.pg_restore):
            if not os.access(tool, os.X_OK):
                raise BackupError("%s is not there or not executable" % tool)
        major, self.version = tool_major(self.pg_dump)
        if major < server_major:
            raise BackupError("%s is version %d, older than the server (%d): it cannot dump it. Set bin_dir."
                              % (self.pg_dump, major, server_major))
        self.tmpdir = tempfile.mkdtemp(prefix="carbot-backup-")
        self.env = dict(os.environ, PGCONNECT_TIMEOUT=str(p["connect_timeout"]))
        self.env.pop("PGPASSWORD", None)
        if p["login_password"]:
            pgpass = os.path.join(self.tmpdir, "pgpass")
            fd = os.open(pgpass, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                escaped = p["login_password"].replace("\\", "\\\\").replace(":", "\\:")
                handle.write("*:*:*:*:%s\n" % escaped)
            self.env["PGPASSFILE"] = pgpass

    def conninfo(self, dbname):
        p = self.module.params
        parts = {"host": p["login_host"], "port": p["login_port"], "dbname": dbname, "user": p["login_user"],
                 "sslmode": p["ssl_mode"], "application_name": "carbot.migration backup"}
        return " ".join("%s='%s'" % (k, str(v).replace("\\", "\\\\").replace("'", "\\'")) for k, v in parts.items())

    def run(self, argv, what):
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)  # checked below
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr or proc.stdout or "").strip().splitlines() if ln.strip()]
            raise BackupError("%s failed (exit %d): %s" % (
                what, proc.returncode, " | ".join(lines[-5:]) or "no output"))
        return proc.stdout

    def run_verbose(self, argv, what, on_line, on_tick, tick=0.5):
        """Run a tool with ``--verbose``, handing each line of its stderr to ``on_line`` and calling ``on_tick``
        about every ``tick`` seconds while it runs (progress: bytes written). A failure raises BackupError with
        the tool's error lines (not its verbose chatter)."""
        returncode, seen, out = job_progress.run_streaming(argv + ["--verbose"], self.env, on_line, on_tick, tick)
        if returncode != 0:
            raise BackupError("%s failed (exit %d): %s" % (
                what, returncode, " | ".join(error_lines(seen or out)[-5:]) or "no output"))
        return "\n".join(out)

    def cleanup(self):
        shutil.rmtree(self.tmpdir, ignore_errors=True)


VERBOSE_INFO = re.compile(r"^pg_(dump|restore): (?!(error|detail|hint|warning|fatal|while|from TOC)\b)", re.I)


def error_lines(lines):
    """A tool's error lines without its --verbose chatter (all lines when nothing else is left)."""
    lines = [ln for ln in lines if ln.strip()]
    errors = [ln for ln in lines if not VERBOSE_INFO.match(ln)]
    return errors or lines


DUMPED = re.compile(r'dumping contents of table "([^"]+)"')
RESTORED = re.compile(r'(?:finished item \d+ TABLE DATA (\S+) (\S+)|processing data for table "([^"]+)")')


# ------------------------------------------------------------------------------------------ database
def split_table(name):
    """``schema.table`` -> (schema, table), split at the first dot."""
    schema, dot, table = name.partition(".")
    if not dot or not schema or not table:
        raise BackupError("tables entries are schema.table, got %r" % name)
    return schema, table


def table_pattern(name):
    """``pg_dump --table`` pattern that matches exactly this table: both names double-quoted, quotes doubled."""
    return ".".join('"%s"' % part.replace('"', '""') for part in split_table(name))


def tables_of(cur, schemas, tables=None):
    cur.execute("SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
                " ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN"
                " ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'"
                " AND (%s::text[] IS NULL OR n.nspname = ANY(%s::text[])) ORDER BY 1, 2", (schemas, schemas))
    found = ["%s.%s" % row for row in cur.fetchall()]
    if tables:
        missing = [t for t in tables if t not in found]
        if missing:
            raise BackupError("no such table%s: %s" % ("s" if len(missing) > 1 else "", ", ".join(missing)))
        return [t for t in found if t in tables]
    return found


def count_rows(cur, names, progress=None):
    counts = {}
    for i, name in enumerate(names):
        schema, table = name.split(".", 1)
        if progress is not None:
            progress.update(done=i, current=name)
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table)))
        counts[name] = cur.fetchone()[0]
    if progress is not None:
        progress.update(done=len(names), current=None)
    return counts


# ------------------------------------------------------------------------------------------ the work
class Backup:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.dbname = self.p["login_db"]
        self.scratch = self.p["scratch_db"] or "%s_backup_verify" % self.dbname
        if self.scratch == self.dbname:
            module.fail_json(msg="scratch_db must not be the database being backed up")
        self.progress = job_progress.ProgressFile(None if module.check_mode else self.p["progress_file"], "backup")
        self.restore_total = None
        if self.p["mode"] == "backup":
            self.phases = ["snapshot", "dump", "row counts", "verify archive"] + (
                ["restore-verify"] if self.p["verify_restore"] else []) + ["publish"]
        else:
            self.phases = ["verify archive"] + (["restore-verify"] if self.p["verify_restore"] else [])
        self.progress.update(steps=len(self.phases))

    def step(self, phase):
        return self.phases.index(phase) + 1 if phase in self.phases else None

    def verify_archive(self, tools, dump_path, recorded_sha=None, recorded_lines=None):
        """Checksum (against what is recorded, if anything) and pg_restore --list."""
        self.progress.update(phase="verify archive", step=self.step("verify archive"), bytes=None,
                             detail="sha256 and pg_restore --list of %s" % os.path.basename(dump_path))
        lines = checksum_lines(dump_path)
        digest = overall_sha256(dump_path, lines)
        if recorded_lines is not None and sorted(lines) != sorted(recorded_lines):
            bad = sorted(set(recorded_lines) ^ set(lines))
            raise BackupError("checksum mismatch for %s: %s" % (
                dump_path, "; ".join(sorted({ln.split("  ", 1)[-1] for ln in bad}))))
        if recorded_sha is not None and digest != recorded_sha:
            raise BackupError("checksum mismatch for %s: recorded %s, now %s" % (dump_path, recorded_sha, digest))
        toc = tools.run([tools.pg_restore, "--list", dump_path], "pg_restore --list %s" % dump_path)
        entries = [ln for ln in toc.splitlines() if ln.strip() and not ln.startswith(";")]
        data = [ln for ln in entries if " TABLE DATA " in ln]
        if not entries:
            raise BackupError("pg_restore --list found no entries in %s" % dump_path)
        self.restore_total = len(data)
        return digest, lines, {"toc_entries": len(entries), "table_data_entries": len(data)}

    def scratch_restore(self, tools, dump_path, expected):
        """Restore into the scratch database and compare row counts with ``expected``."""
        admin = db.connect(self.p, autocommit=True)
        try:
            with admin.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.scratch)))
                cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(self.scratch)))
            try:
                restored = []

                def on_line(line):
                    match = RESTORED.search(line)
                    if match:
                        name = match.group(3) or "%s.%s" % (match.group(1), match.group(2))
                        restored.append(name)
                        self.progress.update(done=min(len(restored), total or len(restored)), current=name)

                total = self.restore_total
                self.progress.update(phase="restore-verify", step=self.step("restore-verify"), done=0,
                                     total=total, unit="tables", detail="into scratch database %s" % self.scratch)
                tools.run_verbose([tools.pg_restore, "--no-owner", "--no-privileges", "--exit-on-error",
                                   "--jobs", str(max(1, self.p["jobs"])), "--dbname", tools.conninfo(self.scratch),
                                   dump_path], "pg_restore into scratch database %s" % self.scratch,
                                  on_line, lambda: None)
                self.progress.update(phase="compare counts", step=self.step("restore-verify"), done=0,
                                     total=len(expected), unit="tables")
                conn = db.connect(dict(self.p, login_db=self.scratch), autocommit=True)
                try:
                    with conn.cursor() as cur:
                        got = count_rows(cur, sorted(expected), self.progress)
                finally:
                    conn.close()
            finally:
                with admin.cursor() as cur:
                    cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.scratch)))
        finally:
            admin.close()
        mismatches = {t: {"expected": expected[t], "restored": got.get(t)} for t in expected
                      if got.get(t) != expected[t]}
        if mismatches:
            raise BackupError("scratch restore of %s: row counts differ: %s" % (dump_path, ", ".join(
                "%s %s != %s" % (t, m["restored"], m["expected"]) for t, m in sorted(mismatches.items()))))
        return {"database": self.scratch, "tables": len(got), "rows": sum(got.values()), "counts_equal": True}

    # ---- mode=backup --------------------------------------------------------------------------
    def backup(self):
        p = self.p
        started = time.monotonic()
        run_id = p["run_id"] or datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        base = os.path.join(p["backup_dir"], "%s-%s-%s" % (safe_name(self.dbname), stamp, safe_name(run_id)))
        final = base + (".dump" if p["format"] == "custom" else ".dir")
        self.progress.update(phase="snapshot", step=1, detail="connecting to %s" % self.dbname)
        conn = db.connect(p)
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('server_version_num')::int / 10000,"
                        " pg_catalog.pg_database_size(pg_catalog.current_database())")
            server_major, db_size = cur.fetchone()
            tables = tables_of(cur, p["schemas"], p["tables"])
        if self.module.check_mode:
            conn.close()
            return dict(changed=True, path=final, run_id=run_id, verified=False, removed=self.retention(dry=True),
                        would_dump={"database": self.dbname, "host": p["login_host"], "format": p["format"],
                                    "jobs": p["jobs"], "database_size": db_size, "tables": len(tables),
                                    "schemas": p["schemas"] or "all", "only_tables": p["tables"] or "all"},
                        carbot_report={"backup": {"check_mode": True, "path": final, "database_size": db_size}})
        partial = base + ".partial"
        tools = None
        umask = os.umask(0o077)  # pg_dump and the files written here: owner only, from the first byte
        try:
            self.prepare_dir()
            tools = Tools(self.module, server_major)
            with conn.cursor() as cur:
                cur.execute("SELECT pg_catalog.pg_export_snapshot()")
                snapshot = cur.fetchone()[0]
            argv = [tools.pg_dump, "--dbname", tools.conninfo(self.dbname), "--snapshot", snapshot,
                    "--format", p["format"], "--file", partial]
            if p["format"] == "directory":
                argv += ["--jobs", str(max(1, p["jobs"]))]
            if p["compress"] is not None:
                argv += ["--compress", str(p["compress"])]
            for schema in p["schemas"] or []:
                argv += ["--schema", schema]
            for table in p["tables"] or []:
                argv += ["--table", table_pattern(table)]
            dumped = []

            def on_line(line):
                match = DUMPED.search(line)
                if match:
                    dumped.append(match.group(1))
                    self.progress.update(done=min(len(dumped), len(tables)), current=match.group(1),
                                         bytes=self.written(partial))

            self.progress.update(phase="dump", step=self.step("dump"), done=0, total=len(tables), unit="tables",
                                 bytes=0, detail="%s format" % p["format"])
            tools.run_verbose(argv, "pg_dump of %s" % self.dbname, on_line,
                              lambda: self.progress.update(bytes=self.written(partial)))
            dump_seconds = round(time.monotonic() - started, 2)
            self.progress.update(done=len(tables), current=None, bytes=self.written(partial), force=True)
            counted = p["verify_tables"] or (tables if p["verify_restore"] else [])
            self.progress.update(phase="row counts", step=self.step("row counts"), done=0, total=len(counted),
                                 unit="tables", detail="in the dump's snapshot")
            with conn.cursor() as cur:  # the same snapshot as the dump: the counts must match exactly
                counts = count_rows(cur, counted, self.progress)
            conn.rollback()
            conn.close()
            digest, lines, toc = self.verify_archive(tools, partial)
            scratch = self.scratch_restore(tools, partial, counts) if p["verify_restore"] else None
            self.progress.update(phase="publish", step=self.step("publish"), detail=os.path.basename(final))
            os.rename(partial, final)
            lines = checksum_lines(final)  # same digests, final name
            digest = overall_sha256(final, lines)
            manifest = {
                "kind": KIND, "run_id": run_id, "database": self.dbname, "host": p["login_host"],
                "port": p["login_port"], "format": p["format"], "schemas": p["schemas"], "tables": p["tables"],
                "created_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "file": os.path.basename(final), "sha256": digest, "size": size_of(final),
                "dump_seconds": dump_seconds, "pg_dump": tools.version, "server_major": server_major,
                "row_counts": counts, "toc": toc, "scratch_restore": scratch, "verified": True,
            }
            self.write_text(base + ".sha256", "\n".join(lines) + "\n")
            self.write_text(base + ".json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            for path in (final, base + ".sha256", base + ".json"):
                self.make_private(path)  # whatever umask pg_dump honoured
        except BaseException:
            for leftover in (partial, final, base + ".sha256", base + ".json"):
                remove_path(leftover)
            self.progress.finish("failed")
            raise
        finally:
            os.umask(umask)
            conn.close()
            if tools is not None:
                tools.cleanup()
        removed = self.retention(dry=False)
        seconds = round(time.monotonic() - started, 2)
        self.progress.update(bytes=manifest["size"], detail="verified, %s" % os.path.basename(final))
        self.progress.finish("done")
        return dict(changed=True, path=final, sha256=digest, size=manifest["size"], seconds=seconds,
                    verified=True, run_id=run_id, manifest=manifest, manifest_path=base + ".json",
                    checksum_file=base + ".sha256", removed=removed,
                    carbot_report={"backup": {"path": final, "run_id": run_id, "format": p["format"],
                                              "size": manifest["size"], "seconds": seconds, "sha256": digest,
                                              "verified": True, "scratch_restore": bool(scratch),
                                              "removed_by_retention": len(removed)}})

    @staticmethod
    def written(path):
        """Bytes of the dump written so far (0 before pg_dump created it)."""
        try:
            return size_of(path)
        except OSError:
            return 0

    def prepare_dir(self):
        """backup_dir, private (0700) whether it existed or not: a dump holds every secret of the database."""
        path = self.p["backup_dir"]
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise BackupError("cannot create backup_dir %s: %s" % (path, exc.strerror))
        if not os.access(path, os.W_OK | os.X_OK):
            raise BackupError("backup_dir %s is not writable for this user" % path)
        try:
            if os.stat(path).st_mode & 0o777 != 0o700:
                os.chmod(path, 0o700)
        except OSError as exc:
            raise BackupError("backup_dir %s cannot be made private (mode 0700): %s; the dump would be readable by "
                              "other local users" % (path, exc.strerror))

    @staticmethod
    def make_private(path):
        """Files 0600 and directories 0700 (a directory-format dump is a directory of files)."""
        if os.path.isdir(path):
            os.chmod(path, 0o700)
            for root, dirs, files in os.walk(path):
                for name in dirs:
                    os.chmod(os.path.join(root, name), 0o700)
                for name in files:
                    os.chmod(os.path.join(root, name), 0o600)
        elif os.path.exists(path):
            os.chmod(path, 0o600)

    @staticmethod
    def write_text(path, text):
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)

    # ---- manifests and retention --------------------------------------------------------------
    def manifests(self):
        out = []
        for path in glob.glob(os.path.join(self.p["backup_dir"], "*.json")):
            try:
                with open(path) as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("kind") == KIND and data.get("database") == self.dbname:
                out.append((data.get("created_at", ""), path, data))
        return sorted(out, key=lambda item: (item[0], item[1]))

    def retention(self, dry):
        keep = self.p["retention_keep"]
        if keep <= 0:
            return []
        complete = self.manifests()
        if dry:
            keep -= 1  # the backup that would be made counts
        removed = []
        for _stamp, path, data in complete[:max(0, len(complete) - keep)]:
            base = path[:-len(".json")]
            removed.append(os.path.join(self.p["backup_dir"], data.get("file", "")))
            if not dry:
                for part in (os.path.join(self.p["backup_dir"], data.get("file", "")), base + ".sha256", path):
                    if os.path.basename(part):
                        remove_path(part)
        return removed

    # ---- mode=verify --------------------------------------------------------------------------
    def verify(self):
        p = self.p
        started = time.monotonic()
        if p["path"]:
            dump_path = p["path"].rstrip("/")
            manifest_path = base_of(dump_path) + ".json"
            if not os.path.exists(manifest_path):
                raise BackupError("%s has no manifest %s: not a backup made by carbot.migration.db_backup" % (
                    dump_path, manifest_path))
            with open(manifest_path) as handle:
                manifest = json.load(handle)
        else:
            if not p["run_id"]:
                raise BackupError("mode=verify needs path or run_id")
            mine = [m for m in self.manifests() if m[2].get("run_id") == p["run_id"]]
            if not mine:
                raise BackupError("no backup of run %s for database %s in %s: the cutover needs a verified backup "
                                  "from this run" % (p["run_id"], self.dbname, p["backup_dir"]))
            manifest_path, manifest = mine[-1][1:]
            dump_path = os.path.join(p["backup_dir"], manifest["file"])
        if p["run_id"] and manifest.get("run_id") != p["run_id"]:
            raise BackupError("%s belongs to run %s, not to run %s" % (dump_path, manifest.get("run_id"), p["run_id"]))
        if not manifest.get("verified"):
            raise BackupError("%s was never verified" % dump_path)
        if not os.path.exists(dump_path):
            raise BackupError("%s is missing (its manifest %s is there)" % (dump_path, manifest_path))
        checksum_file = base_of(dump_path) + ".sha256"
        try:
            with open(checksum_file) as handle:
                recorded_lines = [ln for ln in handle.read().splitlines() if ln.strip()]
        except OSError:
            raise BackupError("%s is missing: the backup cannot be checked" % checksum_file)
        conn = db.connect(p)
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('server_version_num')::int / 10000")
            server_major = cur.fetchone()[0]
        conn.close()
        tools = Tools(self.module, server_major)
        try:
            digest, _lines, toc = self.verify_archive(tools, dump_path, manifest.get("sha256"), recorded_lines)
            scratch = None
            if p["verify_restore"] and not self.module.check_mode:
                expected = manifest.get("row_counts") or {}
                if p["verify_tables"]:
                    expected = {t: expected[t] for t in p["verify_tables"] if t in expected}
                scratch = self.scratch_restore(tools, dump_path, expected)
        finally:
            tools.cleanup()
        seconds = round(time.monotonic() - started, 2)
        self.progress.finish("done")
        return dict(changed=False, path=dump_path, sha256=digest, size=size_of(dump_path), seconds=seconds,
                    verified=True, run_id=manifest.get("run_id"), manifest=manifest, manifest_path=manifest_path,
                    checksum_file=checksum_file, toc=toc, scratch_restore=scratch, removed=[],
                    carbot_report={"backup": {"path": dump_path, "run_id": manifest.get("run_id"),
                                              "sha256": digest, "verified": True, "checked_again": True}})
