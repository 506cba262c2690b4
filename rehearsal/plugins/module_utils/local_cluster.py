# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Throwaway PostgreSQL clusters for the local rehearsal, Molecule and pytest.

One implementation, three users: the ``local_postgres_cluster`` module (and so
the ``local_postgres`` role, Molecule's create/destroy playbooks) and the
pytest fixtures all call :class:`LocalCluster`.

A cluster lives in a directory of its own::

    <base_dir>/data        PGDATA
    <base_dir>/socket      unix socket directory (not /var/run/postgresql)
    <base_dir>/server.log  the server log
    <base_dir>/cluster.json  port, bindir, version: what a later call needs

PostgreSQL refuses to run as root. When the caller is root the server
commands run as the ``postgres`` OS user, and ``base_dir``'s parents are
opened for traversal (``chmod o+x``), which a ``mktemp -d`` folder needs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

DEFAULT_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "shared_preload_libraries": "'pg_stat_statements'",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "unix_socket_permissions": "0700",
    "timezone": "'UTC'",
}

# A throwaway cluster trades durability for speed: its data can always be
# generated again. The rehearsal of a real night keeps these off (durable=True).
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class ClusterError(Exception):
    """A clear, operator-facing reason why a cluster could not be handled."""


def find_bindir(preferred=None):
    """Return the directory holding initdb/pg_ctl, newest major version first."""
    candidates = []
    if preferred:
        candidates.append(preferred)
    env = os.environ.get("CARBOT_PG_BINDIR")
    if env:
        candidates.append(env)
    found = glob.glob("/usr/lib/postgresql/*/bin")
    found.sort(key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0, reverse=True)
    candidates.extend(found)
    for path in candidates:
        if os.path.isfile(os.path.join(path, "initdb")) and os.path.isfile(os.path.join(path, "pg_ctl")):
            return path
    raise ClusterError(
        "No PostgreSQL server binaries found (looked for initdb and pg_ctl in %s). "
        "Install the server package: 'apt-get install postgresql' (Debian/Ubuntu), "
        "or set CARBOT_PG_BINDIR." % (", ".join(candidates) or "/usr/lib/postgresql/*/bin")
    )


def free_port(host="127.0.0.1"):
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class LocalCluster:
    """A PostgreSQL cluster in ``base_dir``, started on a free loopback port."""

    def __init__(self, base_dir, bindir=None, os_user="postgres", superuser="postgres"):
        self.base_dir = os.path.abspath(base_dir)
        self.data_dir = os.path.join(self.base_dir, "data")
        self.socket_dir = os.path.join(self.base_dir, "socket")
        self.log_file = os.path.join(self.base_dir, "server.log")
        self.state_file = os.path.join(self.base_dir, "cluster.json")
        self._bindir = bindir
        self.superuser = superuser
        self.as_root = os.geteuid() == 0
        self.os_user = os_user if self.as_root else pwd.getpwuid(os.geteuid()).pw_name

    # -- facts ---------------------------------------------------------------
    @property
    def bindir(self):
        if not self._bindir:
            self._bindir = self.state().get("bindir") or find_bindir()
        return self._bindir

    def state(self):
        try:
            with open(self.state_file) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    @property
    def initialized(self):
        return os.path.isfile(os.path.join(self.data_dir, "PG_VERSION"))

    @property
    def port(self):
        return self.state().get("port")

    def running(self):
        if not self.initialized:
            return False
        result = self._run(["pg_ctl", "status", "-D", self.data_dir], check=False)
        return result.returncode == 0

    def facts(self):
        state = self.state()
        return {
            "base_dir": self.base_dir,
            "data_dir": self.data_dir,
            "socket_dir": self.socket_dir,
            "log_file": self.log_file,
            "host": "127.0.0.1",
            "port": state.get("port"),
            "bindir": state.get("bindir") or self._bindir,
            "version": state.get("version"),
            "superuser": self.superuser,
            "initialized": self.initialized,
            "running": self.running(),
        }

    # -- actions -------------------------------------------------------------
    def ensure_started(self, password, port=0, settings=None, durable=False, timeout=60):
        """Initialise (once) and start the cluster. Returns True when anything changed."""
        changed = False
        if not self.initialized:
            self._initdb(password)
            changed = True
        state = self.state()
        wanted = int(port or 0)
        if self.running():
            if wanted and state.get("port") != wanted:
                raise ClusterError(
                    "Cluster in %s already runs on port %s, not the requested %s; stop it first."
                    % (self.base_dir, state.get("port"), wanted)
                )
            return changed
        chosen = wanted or state.get("port") or free_port()
        if port_in_use(chosen):
            if wanted:
                raise ClusterError(
                    "Port %s on 127.0.0.1 is already in use by another process. Choose another port "
                    "(e.g. CARBOT_DB_PORT=55433) or stop what listens there." % chosen
                )
            chosen = free_port()
        self._configure(chosen, settings or {}, durable)
        self._write_state(port=chosen)
        result = self._run(
            ["pg_ctl", "start", "-w", "-t", str(timeout), "-D", self.data_dir, "-l", self.log_file, "-s"],
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(
                "PostgreSQL in %s did not start (pg_ctl exit %s): %s\nLast lines of %s:\n%s"
                % (self.base_dir, result.returncode, result.stderr.strip(), self.log_file, self._log_tail())
            )
        return True

    def ensure_stopped(self, timeout=60):
        if not self.running():
            return False
        result = self._run(["pg_ctl", "stop", "-w", "-t", str(timeout), "-m", "fast", "-D", self.data_dir, "-s"],
                           check=False)
        if result.returncode != 0:
            raise ClusterError("PostgreSQL in %s did not stop: %s" % (self.base_dir, result.stderr.strip()))
        return True

    def ensure_absent(self):
        changed = self.ensure_stopped()
        if os.path.exists(self.base_dir):
            shutil.rmtree(self.base_dir)
            changed = True
        return changed

    # -- internals -----------------------------------------------------------
    def _run(self, argv, check=True, input_text=None):
        argv = [os.path.join(self.bindir, argv[0])] + list(argv[1:])
        kwargs = {}
        if self.as_root:
            kwargs["user"] = self.os_user
            kwargs["group"] = pwd.getpwnam(self.os_user).pw_gid
            kwargs["extra_groups"] = []
        env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
        env.pop("PGDATA", None)
        result = subprocess.run(argv, input=input_text, capture_output=True, text=True,  # checked below
                                cwd="/", env=env, check=False, **kwargs)
        if check and result.returncode != 0:
            raise ClusterError("%s failed (exit %s): %s" % (
                " ".join(argv), result.returncode, (result.stderr or result.stdout).strip()))
        return result

    def _prepare_dirs(self):
        os.makedirs(self.base_dir, exist_ok=True)
        if self.as_root:
            try:
                entry = pwd.getpwnam(self.os_user)
            except KeyError:
                raise ClusterError(
                    "Running as root, but there is no '%s' OS user to run PostgreSQL as. "
                    "Install the server package ('apt-get install postgresql'), which creates it." % self.os_user
                )
            # Open every parent for traversal (a mktemp -d folder is 0700).
            path = self.base_dir
            while True:
                parent = os.path.dirname(path)
                if parent == path:
                    break
                mode = os.stat(parent).st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
                path = parent
            os.chown(self.base_dir, entry.pw_uid, entry.pw_gid)
            os.chmod(self.base_dir, 0o700)
        for sub in (self.socket_dir,):
            os.makedirs(sub, exist_ok=True)
            if self.as_root:
                entry = pwd.getpwnam(self.os_user)
                os.chown(sub, entry.pw_uid, entry.pw_gid)
            os.chmod(sub, 0o700)

    def _initdb(self, password):
        if not password:
            raise ClusterError("A superuser password is required to initialise a cluster.")
        self._prepare_dirs()
        version = self._run(["initdb", "--version"]).stdout.split("(PostgreSQL)")[-1].split()[0]
        fd, pwfile = tempfile.mkstemp(prefix="pwfile-", dir=self.base_dir)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
            if self.as_root:
                entry = pwd.getpwnam(self.os_user)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            self._run([
                "initdb", "-D", self.data_dir, "-U", self.superuser, "--pwfile", pwfile,
                "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8",
                "--locale=C.UTF-8", "--no-instructions",
            ])
        finally:
            os.unlink(pwfile)
        self._write_state(bindir=self.bindir, version=version)

    def _configure(self, port, settings, durable):
        merged = dict(DEFAULT_SETTINGS)
        if not durable:
            merged.update(FAST_SETTINGS)
        merged.update({k: str(v) for k, v in settings.items()})
        merged["port"] = str(port)
        merged["unix_socket_directories"] = "'%s'" % self.socket_dir
        lines = ["# Written by carbot.migration local_cluster; changes are overwritten on start."]
        lines += ["%s = %s" % (key, value) for key, value in sorted(merged.items())]
        conf = os.path.join(self.data_dir, "carbot_local.conf")
        with open(conf, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        main_conf = os.path.join(self.data_dir, "postgresql.conf")
        with open(main_conf) as handle:
            text = handle.read()
        if "include_if_exists = 'carbot_local.conf'" not in text:
            with open(main_conf, "a") as handle:
                handle.write("\ninclude_if_exists = 'carbot_local.conf'\n")
        if self.as_root:
            entry = pwd.getpwnam(self.os_user)
            os.chown(conf, entry.pw_uid, entry.pw_gid)

    def _write_state(self, **values):
        state = self.state()
        state.update(values)
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(state, handle, indent=2, sort_keys=True)
        os.replace(tmp, self.state_file)

    def _log_tail(self, lines=20):
        try:
            with open(self.log_file) as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return "(no log)"


def wait_until_accepting(host, port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if port_in_use(port, host):
            return True
        time.sleep(0.2)
    return False
