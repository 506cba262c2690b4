# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Table metadata: the mapping declaration resolved against the catalog.

What the copy engine, validation and the sync need about the target tables, below all three: the
declaration (mapping.TABLES) in dependency order, the columns of a relation, a TableSpec per target
table (view, keys, columns, the parents its rows point at) and the quarantine table's key expressions.
Raises errors.TableError (the copy engine's CopyError) naming what is missing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.carbot.migration.plugins.module_utils import keys
from ansible_collections.carbot.migration.plugins.module_utils.errors import TableError

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module through db.require_psycopg2
    sql = None

STATUS_TABLE = "migration_status"
QUARANTINE_TABLE = "migration_quarantine"
QUARANTINE_REASON = "_quarantine_reason"


def order_tables(tables, selected=None):
    """The declarations to copy, in dependency order, restricted to ``selected`` names.

    Raises TableError for unknown names or a dependency cycle.
    """
    by_name = {t["target"]: t for t in tables}
    if selected:
        unknown = sorted(set(selected) - set(by_name))
        if unknown:
            raise TableError("Unknown target tables %s; the mapping declares: %s"
                             % (", ".join(unknown), ", ".join(sorted(by_name))))
        wanted = [by_name[name] for name in by_name if name in set(selected)]
    else:
        wanted = list(tables)
    names = {t["target"] for t in wanted}
    ordered, done, visiting = [], set(), set()

    def visit(decl):
        name = decl["target"]
        if name in done:
            return
        if name in visiting:
            raise TableError("Dependency cycle in the mapping declaration at table %s" % name)
        visiting.add(name)
        for dep in decl.get("depends_on") or []:
            if dep in names:
                visit(by_name[dep])
        visiting.discard(name)
        done.add(name)
        ordered.append(decl)

    for decl in wanted:
        visit(decl)
    return ordered


def load_declaration():
    """mapping.TABLES, imported lazily (the mapping module is written by the schema step)."""
    try:
        from ansible_collections.carbot.migration.plugins.module_utils import mapping
    except ImportError as exc:
        raise TableError("The mapping declaration (module_utils/mapping.py) is not available: %s" % exc)
    return list(mapping.TABLES)


# ------------------------------------------------------------------ catalog reads
def table_columns(cur, schema, table):
    """[(name, type, generated)] of a table or view, in column order; [] when it does not exist."""
    cur.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '' "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (schema, table),
    )
    return [(r[0], r[1], r[2]) for r in cur.fetchall()]


def view_key_columns(view_cols, nkeys):
    """The view's key columns: ``_src_key`` for one key, ``_src_key1``.. for composite keys."""
    names = [c[0] for c in view_cols]
    if nkeys == 1 and "_src_key" in names:
        return ["_src_key"]
    keys = ["_src_key%d" % (i + 1) for i in range(nkeys)]
    if all(k in names for k in keys):
        return keys
    raise TableError("The mapping view has no key column(s) %s (contract: docs/architecture.md)"
                     % ("_src_key" if nkeys == 1 else ", ".join(keys)))


class TableSpec:
    """Everything the engine needs about one target table, resolved from the catalog once."""

    def __init__(self, decl, schemas, view_cols, target_cols, parents=None):
        self.decl = decl
        self.name = decl["target"]
        self.view = decl.get("view") or "map_%s" % self.name
        self.source = decl.get("source")
        self.kind = decl.get("kind", "row")
        self.source_key = list(decl.get("source_key") or [])
        self.target_key = list(decl.get("target_key") or self.source_key)
        self.depends_on = list(decl.get("depends_on") or [])
        self.legacy, self.mapping, self.target = schemas
        nkeys = len(self.source_key) if self.kind == "row" else len(self.target_key)
        self.view_key = list(decl.get("view_key") or view_key_columns(view_cols, nkeys))
        if self.kind == "derived":
            # keyset over the view's own key; nothing to lock
            self.source_key = list(self.view_key)
        target_insertable = {c[0] for c in target_cols if not c[2]}
        mapped = [c[0] for c in view_cols if not c[0].startswith("_src_key") and c[0] != QUARANTINE_REASON]
        missing = [c for c in mapped if c not in target_insertable]
        if missing:
            raise TableError("View %s.%s has columns that %s.%s cannot take: %s"
                             % (self.mapping, self.view, self.target, self.name, ", ".join(missing)))
        self.columns = mapped
        self.has_reason = QUARANTINE_REASON in [c[0] for c in view_cols]
        # (column, parent table, parent key column): the parents a copied row points at, locked by the batch
        self.parent_locks = []
        # (column, parent table, parent key column, sync lock id): required references to row tables, whose
        # parent can enter the target while the batch quarantines its children
        self.entering_locks = []
        for ref in decl.get("references") or []:
            parent = (parents or {}).get(ref["parent"])
            if parent is None or ref["parent"] == self.name or ref["column"] not in self.columns:
                continue
            pkey = list(parent.get("target_key") or parent.get("source_key") or [])
            if len(pkey) != 1:
                continue
            self.parent_locks.append((ref["column"], ref["parent"], pkey[0]))
            if ref.get("required") and parent.get("kind", "row") == "row" and self.kind == "row" and self.has_reason:
                # the advisory lock of the parent's sync function (keys.lock_id), taken shared by the batch
                self.entering_locks.append((ref["column"], ref["parent"], pkey[0],
                                            keys.lock_id(list(parents.values()), ref["parent"])))

    # identifiers --------------------------------------------------------------
    def ident(self, schema, name):
        return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))

    @property
    def source_rel(self):
        return self.ident(self.legacy, self.source)

    @property
    def view_rel(self):
        return self.ident(self.mapping, self.view)

    @property
    def target_rel(self):
        return self.ident(self.target, self.name)


def resolve(conn, tables, legacy_schema, mapping_schema, target_schema, declaration=None):
    """TableSpec for each declaration; TableError naming what is missing.

    ``declaration`` (default: ``tables``) is where the parents of ``references`` are looked up.
    """
    parents = {t["target"]: t for t in (declaration or tables)}
    specs = []
    with conn.cursor() as cur:
        for decl in tables:
            view = decl.get("view") or "map_%s" % decl["target"]
            view_cols = table_columns(cur, mapping_schema, view)
            if not view_cols:
                raise TableError("Mapping view %s.%s does not exist: apply the mapping first (roles/schema)"
                                 % (mapping_schema, view))
            target_cols = table_columns(cur, target_schema, decl["target"])
            if not target_cols:
                raise TableError("Target table %s.%s does not exist: apply the carbot_v2 schema first (roles/schema)"
                                 % (target_schema, decl["target"]))
            if decl.get("kind", "row") == "row" and not table_columns(cur, legacy_schema, decl["source"]):
                raise TableError("Legacy table %s.%s does not exist" % (legacy_schema, decl["source"]))
            specs.append(TableSpec(decl, (legacy_schema, mapping_schema, target_schema), view_cols, target_cols,
                                   parents))
        for name in (STATUS_TABLE, QUARANTINE_TABLE):
            if not table_columns(cur, target_schema, name):
                raise TableError("%s.%s does not exist: apply the carbot_v2 schema first (roles/schema)"
                                 % (target_schema, name))
    return specs


# ------------------------------------------------------------ the quarantine table
class QuarantineKeys:
    """The columns of migration_quarantine (sql/v2/040_migration_tables.sql) and its key expressions.

    Columns used: target_table, source_table, source_pk (text: the key, composite keys as a
    text[] literal), reason, row_data (the legacy row as jsonb; for derived tables, the view
    row), run_id. Other columns keep their defaults. The copy engine's QuarantineWriter writes the
    rows; validation reads them through ``rel``.
    """

    def __init__(self, conn, target_schema, legacy_schema=None):
        with conn.cursor() as cur:
            self.columns = {c[0]: c[1] for c in table_columns(cur, target_schema, QUARANTINE_TABLE)}
        self.rel = sql.SQL("{}.{}").format(sql.Identifier(target_schema), sql.Identifier(QUARANTINE_TABLE))
        self.key_col = "source_pk" if "source_pk" in self.columns else "source_key"
        missing = {"target_table", "source_table", self.key_col, "reason"} - set(self.columns)
        if self.columns and missing:
            raise TableError("%s.%s lacks the columns %s (contract: sql/v2/040_migration_tables.sql)"
                             % (target_schema, QUARANTINE_TABLE, ", ".join(sorted(missing))))

    def key_expr(self, spec, alias):
        """The quarantine key of the view row ``alias``, in the type of the key column."""
        arr = keys.key_text_array(spec.view_key, alias)
        col_type = self.columns.get(self.key_col, "text")
        if col_type.endswith("[]"):
            return arr
        if len(spec.view_key) == 1:
            return sql.SQL("{}.{}::text").format(sql.Identifier(alias), sql.Identifier(spec.view_key[0]))
        return sql.SQL("{}::text").format(arr)

    def exists_sql(self, spec, alias):
        """``EXISTS`` a quarantine row for the view row ``alias``."""
        return sql.SQL("EXISTS (SELECT 1 FROM {rel} x WHERE x.target_table = {t} AND x.{kcol} = {key})").format(
            rel=self.rel, t=sql.Literal(spec.name), kcol=sql.Identifier(self.key_col),
            key=self.key_expr(spec, alias))
