# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""search_path values and settings (the cutover's switch: modules search_path and version_role).

A *setting* is one row of ``pg_db_role_setting`` for ``search_path``. PostgreSQL applies, at the start of a
session, the most specific one: role-in-database, then role (all databases), then database (all roles), then
``ALTER ROLE ALL``, then postgresql.conf. ``ALTER DATABASE ... SET`` is therefore overridden by any role-level
setting of the app role, and it never reaches sessions that already run.

A search_path value is handled as a list of schema names (the way ``SplitIdentifierString`` in PostgreSQL reads
it), and written back element by element, so that restoring gives back exactly the same list (including quoted
names such as ``"$user"``). Every identifier goes through ``psycopg2.sql.Identifier``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - db.require_psycopg2 reports the missing psycopg2
    sql = None

# search_path values


def split_search_path(value):
    """A search_path value (as stored in pg_db_role_setting) as a list of schema names.

    Mirrors PostgreSQL's SplitIdentifierString: comma-separated, blanks around elements ignored,
    double-quoted names kept verbatim (``""`` is a quote), unquoted names folded to lower case.
    """
    if value is None:
        return None
    if value.strip() == "":
        return []
    names, i, n = [], 0, len(value)
    while True:
        while i < n and value[i].isspace():
            i += 1
        if i < n and value[i] == '"':
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise ValueError("unterminated quoted name in search_path %r" % value)
                if value[i] == '"':
                    if i + 1 < n and value[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(value[i])
                i += 1
            names.append("".join(buf))
        else:
            start = i
            while i < n and value[i] != "," and not value[i].isspace():
                i += 1
            if i == start:
                raise ValueError("empty element in search_path %r" % value)
            names.append(value[start:i].lower())
        while i < n and value[i].isspace():
            i += 1
        if i >= n:
            return names
        if value[i] != ",":
            raise ValueError("unexpected %r in search_path %r" % (value[i], value))
        i += 1


def _needs_quotes(name):
    if not name or not (name[0].islower() or name[0] == "_"):
        return True
    return any(not (c.islower() or c.isdigit() or c in "_$") for c in name)


def format_search_path(names):
    """The display form of a list of schema names (as SHOW search_path prints it); None stays None."""
    if names is None:
        return None
    out = []
    for name in names:
        out.append('"%s"' % name.replace('"', '""') if _needs_quotes(name) else name)
    return ", ".join(out)


def _set_path_sql(prefix, names):
    """``<prefix> SET search_path TO %s, %s ...`` (one parameter per name) or ``<prefix> RESET search_path``.

    search_path is a GUC_LIST_QUOTE setting: PostgreSQL quotes each string element as an identifier
    when needed, so passing the bare names as parameters reproduces the list exactly.
    """
    if names is None:
        return sql.SQL("{} RESET search_path").format(prefix), []
    if not names:
        return sql.SQL("{} SET search_path TO ''").format(prefix), []
    return sql.SQL("{} SET search_path TO {}").format(
        prefix, sql.SQL(", ").join(sql.Placeholder() * len(names))), list(names)


def set_database_path_sql(dbname, names):
    return _set_path_sql(sql.SQL("ALTER DATABASE {}").format(sql.Identifier(dbname)), names)


def set_role_database_path_sql(role, dbname, names):
    return _set_path_sql(sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), sql.Identifier(dbname)),
                         names)


SETTINGS_SQL = """
SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE r.rolname END AS role,
       CASE WHEN s.setdatabase = 0 THEN NULL ELSE d.datname END AS database,
       substr(cfg, length('search_path=') + 1) AS value
  FROM pg_catalog.pg_db_role_setting s
  LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
  LEFT JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
 CROSS JOIN LATERAL pg_catalog.unnest(s.setconfig) AS cfg
 WHERE cfg LIKE 'search\\_path=%%'
   AND (s.setdatabase = 0 OR d.datname = %s)
 ORDER BY 1 NULLS FIRST, 2 NULLS FIRST
"""


def read_path_settings(cur, dbname):
    """Every search_path setting that can apply to sessions in ``dbname``.

    Returns a dict: ``database`` (the ALTER DATABASE value as a list, or None), ``all_roles`` (ALTER ROLE ALL
    SET), and ``roles``: {role: {"role": list or None, "role_in_database": list or None}}.
    """
    cur.execute(SETTINGS_SQL, (dbname,))
    out = {"database": None, "all_roles": None, "roles": {}}
    for role, database, value in cur.fetchall():
        names = split_search_path(value)
        if role is None and database is not None:
            out["database"] = names
        elif role is None:
            out["all_roles"] = names
        else:
            entry = out["roles"].setdefault(role, {"role": None, "role_in_database": None})
            entry["role_in_database" if database is not None else "role"] = names
    return out


def effective_setting(settings, role):
    """Which setting a new session of ``role`` gets: (level, names); level None means postgresql.conf."""
    entry = settings["roles"].get(role) or {}
    if entry.get("role_in_database") is not None:
        return "role_in_database", entry["role_in_database"]
    if entry.get("role") is not None:
        return "role", entry["role"]
    if settings["database"] is not None:
        return "database", settings["database"]
    if settings["all_roles"] is not None:
        return "all_roles", settings["all_roles"]
    return None, None


def overrides(settings, dbname):
    """Role-level settings that beat the database-level one, as a list of dicts (for the report)."""
    found = []
    for role in sorted(settings["roles"]):
        entry = settings["roles"][role]
        for level in ("role", "role_in_database"):
            if entry[level] is not None:
                found.append({"role": role, "level": level, "database": dbname if level == "role_in_database" else None,
                              "value": format_search_path(entry[level]), "names": entry[level]})
    return found
