"""The throwaway-cluster implementation shared by the role, Molecule and pytest."""

import json
import os
import socket

import psycopg2
import pytest
from ansible_collections.carbot.rehearsal.plugins.module_utils.local_cluster import (
    ClusterError,
    LocalCluster,
    find_bindir,
)


def test_start_is_idempotent_and_keeps_its_port(tmp_path):
    cluster = LocalCluster(str(tmp_path / "pg"))
    assert cluster.ensure_started("pw-1") is True
    port = cluster.port
    try:
        assert cluster.ensure_started("pw-1") is False, "a running cluster must report no change"
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", password="pw-1", dbname="postgres")
        with conn.cursor() as cur:
            cur.execute("SHOW port")
            assert int(cur.fetchone()[0]) == port
            cur.execute("SHOW unix_socket_directories")
            assert cur.fetchone()[0] == cluster.socket_dir
        conn.close()
        assert cluster.ensure_stopped() is True
        assert cluster.ensure_stopped() is False
        assert cluster.ensure_started("pw-1") is True
        assert cluster.port == port, "a restart must come back on the recorded port"
        with open(cluster.state_file) as handle:
            assert json.load(handle)["port"] == port
    finally:
        assert cluster.ensure_absent() is True
    assert not os.path.exists(cluster.base_dir)
    assert cluster.ensure_absent() is False


def test_wrong_password_is_refused(pg_cluster):
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host="127.0.0.1", port=pg_cluster["port"], user="postgres",
                         password="wrong", dbname="postgres")


def test_a_busy_port_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cluster = LocalCluster(str(tmp_path / "pg"))
        try:
            with pytest.raises(ClusterError, match="Port %d on 127.0.0.1 is already in use" % port):
                cluster.ensure_started("pw", port=port)
        finally:
            cluster.ensure_absent()


def test_missing_binaries_name_the_package(tmp_path, monkeypatch):
    from ansible_collections.carbot.rehearsal.plugins.module_utils import local_cluster

    monkeypatch.setenv("CARBOT_PG_BINDIR", str(tmp_path))  # an empty directory: no initdb there
    monkeypatch.setattr(local_cluster.glob, "glob", lambda pattern: [])
    with pytest.raises(ClusterError, match="apt-get install postgresql"):
        find_bindir()


def test_initialising_needs_a_password(tmp_path):
    cluster = LocalCluster(str(tmp_path / "pg"))
    with pytest.raises(ClusterError, match="password is required"):
        cluster.ensure_started("")
