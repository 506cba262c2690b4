# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sessions that still run with the old search_path: listing them, and ending them (the switch's O(sessions))."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


SESSIONS_SQL = """
SELECT pid, usename, state, backend_start
  FROM pg_catalog.pg_stat_activity
 WHERE datname = %s AND usename = ANY(%s) AND pid <> pg_catalog.pg_backend_pid()
   AND backend_type = 'client backend'
   AND backend_start < %s::timestamptz
 ORDER BY pid
"""


def old_sessions(cur, dbname, roles, since):
    """Sessions of ``roles`` in ``dbname`` that started before ``since``: they still have the path they
    started with (settings apply at session start only)."""
    cur.execute(SESSIONS_SQL, (dbname, list(roles), since))
    return [{"pid": pid, "role": role, "state": state, "backend_start": start.isoformat()}
            for pid, role, state, start in cur.fetchall()]


def terminate(cur, pids):
    """pg_terminate_backend for each pid; returns the pids that were signalled."""
    done = []
    for pid in pids:
        cur.execute("SELECT pg_catalog.pg_terminate_backend(%s)", (pid,))
        if cur.fetchone()[0]:
            done.append(pid)
    return done
