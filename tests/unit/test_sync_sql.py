"""The sync's SQL is generated without a database (issue 16): module_utils/sync_sql.py, apart from installing it.

A Plan is built from the mapping declaration (mapping.TABLES) with made-up column types, the way sync.Plan builds
one from the catalog; the statements are rendered by a small quoting helper of this test (psycopg2's
``as_string`` needs a connection). What is checked is the structure: every table of the declaration gets its
functions and triggers, every identifier is in the three schemas of the plan, the advisory lock of a table is the
one the copy engine takes (keys.lock_id), and the text is the same for the same plan.
"""

import pathlib
import re
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / ".collections"))

from ansible_collections.carbot.migration.plugins.module_utils import keys, mapping, sync, sync_sql  # noqa: E402
from psycopg2 import sql  # noqa: E402

SCHEMAS = ("old_app", "mapping_x", "new_app")


def render(obj):
    """Text of a psycopg2.sql object without a connection: identifiers double-quoted, literals single-quoted."""
    if isinstance(obj, sql.Composed):
        return "".join(render(part) for part in obj.seq)
    if isinstance(obj, sql.SQL):
        return obj.string
    if isinstance(obj, sql.Identifier):
        return ".".join('"%s"' % s.replace('"', '""') for s in obj.strings)
    if isinstance(obj, sql.Literal):
        value = obj.wrapped
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        return "'%s'" % str(value).replace("'", "''")
    if isinstance(obj, sql.Placeholder):
        return "%s"
    raise TypeError("cannot render %r" % (obj,))


def identifiers(obj):
    """Every sql.Identifier in a composed statement."""
    if isinstance(obj, sql.Composed):
        for part in obj.seq:
            yield from identifiers(part)
    elif isinstance(obj, sql.Identifier):
        yield obj.strings


def make_plan(tables=None):
    tables = list(tables if tables is not None else mapping.TABLES)
    legacy_cols = {legacy: {} for legacy in mapping.LEGACY_TABLES}
    view_cols, target_types = {}, {}
    for t in tables:
        if t["kind"] == "row":
            for k in t["source_key"]:
                legacy_cols[t["source"]][k] = "bigint"
        cols = list(t["target_key"]) + [r["column"] for r in t["references"] if r["column"] not in t["target_key"]]
        view_cols[t["target"]] = ["_src_key"] + cols + ["name", "_quarantine_reason"]
        target_types[t["target"]] = dict({c: "bigint" for c in cols}, name="text")
    legacy, mapping_schema, target = SCHEMAS
    return sync_sql.Plan(tables, mapping.LEGACY_TABLES, legacy_cols, view_cols, target_types,
                         reverse_views={t["target"] for t in tables if t["kind"] == "row"},
                         legacy_schema=legacy, mapping_schema=mapping_schema, target_schema=target)


@pytest.fixture(scope="module")
def plan():
    return make_plan()


def test_sync_reexports_the_generation(plan):
    assert sync.function_statements is sync_sql.function_statements
    assert issubclass(sync.Plan, sync_sql.Plan)
    assert sync.SyncError is sync_sql.SyncError


def test_forward_functions_for_every_table_of_the_declaration(plan):
    names = [name for name, _stmt in sync_sql.function_statements(plan, sync_sql.FORWARD)]
    assert len(names) == len(set(names))
    for t in mapping.TABLES:
        assert t["target"] in names, t["target"]
    assert plan.statement_tables() == list(mapping.LEGACY_TABLES)
    for legacy in mapping.LEGACY_TABLES:
        assert "stmt_" + legacy in names, legacy
    assert not [n for n in names if n.startswith("trg_")]  # no row trigger function any more
    assert "no_truncate" in names


def test_reverse_functions_for_every_row_table(plan):
    names = [name for name, _stmt in sync_sql.function_statements(plan, sync_sql.REVERSE)]
    for t in mapping.TABLES:
        assert ("rev_" + t["target"] in names) == (t["kind"] == "row"), t["target"]
    for legacy in mapping.LEGACY_TABLES:  # the forward trigger functions again, with the loop marker
        assert "stmt_" + legacy in names, legacy


def test_reverse_without_its_projections_is_refused():
    plan = make_plan()
    plan.reverse_views = set()
    with pytest.raises(sync_sql.SyncError, match="reverse projections missing in mapping_x"):
        sync_sql.function_statements(plan, sync_sql.REVERSE)


def test_every_function_is_created_in_the_mapping_schema_and_names_only_the_plans_schemas(plan):
    for direction in sync_sql.DIRECTIONS:
        for name, stmt in sync_sql.function_statements(plan, direction):
            assert isinstance(stmt, sql.Composable), name
            text = render(stmt)
            assert text.lstrip().startswith("CREATE OR REPLACE FUNCTION"), (name, text[:80])
            assert '"mapping_x"."%s%s"(' % (sync_sql.FUNCTION_PREFIX, name) in text, name
            qualified = [s for s in identifiers(stmt) if len(s) == 2]
            assert qualified, name
            assert {s[0] for s in qualified} <= set(SCHEMAS), (name, {s[0] for s in qualified})
            # the default schema names never leak into a plan for other schemas
            assert not re.search(r'"(public|carbot_v2|carbot_mapping)"\.', text), name


def test_row_functions_lock_what_the_copy_engine_locks(plan):
    functions = dict(sync_sql.function_statements(plan, sync_sql.FORWARD))
    for t in mapping.TABLES:
        if t["kind"] != "row":
            continue
        text = render(functions[t["target"]])
        lock = keys.lock_id(mapping.TABLES, t["target"])
        assert "pg_advisory_xact_lock(%d, hashtext(" % lock in text, t["target"]
        assert lock == plan.lock_id(t["target"])


def test_trigger_tables_follow_the_declaration(plan):
    forward = sync_sql.trigger_tables(plan, sync_sql.FORWARD)
    assert [table for _s, table, _f in forward] == list(mapping.LEGACY_TABLES)
    assert {schema for schema, _t, _f in forward} == {"old_app"}
    reverse = sync_sql.trigger_tables(plan, sync_sql.REVERSE)
    assert [table for _s, table, _f in reverse] == [t["target"] for t in mapping.TABLES if t["kind"] == "row"]
    assert {schema for schema, _t, _f in reverse} == {"new_app"}


def test_trigger_names():
    assert sync_sql.trigger_names(sync_sql.FORWARD) == sync_sql.TRIGGER_NAMES[sync_sql.FORWARD] + (
        sync_sql.STATEMENT_TRIGGERS["UPDATE"], sync_sql.STATEMENT_TRIGGERS["DELETE"])
    assert sync_sql.trigger_names(sync_sql.FORWARD)[0] == sync_sql.STATEMENT_TRIGGERS["INSERT"]
    assert sync_sql.trigger_names(sync_sql.REVERSE, raw=("r1",))[-1] == "r1"


def test_generation_is_deterministic(plan):
    for direction in sync_sql.DIRECTIONS:
        first = [(n, render(s)) for n, s in sync_sql.function_statements(plan, direction)]
        again = [(n, render(s)) for n, s in sync_sql.function_statements(make_plan(), direction)]
        assert first == again


def test_tables_with_children_are_synced_per_statement_through_the_per_key_function(plan):
    """Every table that is not set-based gets a statement trigger that calls the per-key function (docs/sync.md,
    "Per statement, keyed"), users, workshops and chat_messages included (issue 14)."""
    keyed = sync_sql.keyed_statement_tables(mapping.TABLES, mapping.LEGACY_TABLES)
    assert keyed == ["users", "workshops", "customers", "vehicles", "leads", "chat_messages", "services",
                     "appointments", "subscriptions"]
    assert not set(keyed) & set(plan.set_based_tables())
    assert sorted(keyed + plan.set_based_tables()) == sorted(mapping.LEGACY_TABLES)
    functions = dict(sync_sql.function_statements(plan, sync_sql.FORWARD))
    text = render(functions["stmt_appointments"])
    assert '"mapping_x"."carbot_sync_appointments"(v_ck."id", false)' in text  # INSERT: the per-key function
    # a block per event, two per row of the fallback (the first try, the second try that quarantines)
    assert text.count("EXCEPTION WHEN data_exception") == 3 + 2 * 4
    lock = keys.lock_id(mapping.TABLES, "appointments")
    assert "pg_advisory_xact_lock(%d, hashtext((k.\"id\")::text))" % lock in text  # an UPDATE's staying rows
    assert "stmt_users" in functions and "trg_users" not in functions


def test_chat_messages_statement_trigger_keeps_the_sessions_around_the_messages(plan):
    """The chat session of a message's conversation: an INSERT widens it incrementally before the messages, an
    UPDATE re-aggregates new conversations before and old ones after, a DELETE after; the fallback row by row."""
    text = render(dict(sync_sql.function_statements(plan, sync_sql.FORWARD))["stmt_chat_messages"])
    sessions, messages = '"mapping_x"."carbot_sync_chat_sessions"(', '"mapping_x"."carbot_sync_chat_messages"('
    branches = {op: text[text.index("IF TG_OP = '%s' THEN BEGIN" % op):] for op in ("INSERT", "UPDATE", "DELETE")}
    for op, branch in branches.items():
        step = branch[:branch.index("EXCEPTION WHEN")]
        if op == "INSERT":
            assert "v_cv.lo, true)" in step and "v_cv.hi, true)" in step
            assert step.index(sessions) < step.index(messages)
        elif op == "UPDATE":
            assert step.index(sessions) < step.index(messages) < step.rindex(sessions)
            assert "NULL, false)" in step and ", true)" not in step.replace("v_key_0, true)", "")
        else:
            assert step.index(messages) < step.index(sessions)
    # the fallback quarantines a failing row with its session calls in its block
    fallback = branches["INSERT"][branches["INSERT"].index("EXCEPTION WHEN"):]
    assert "v_row.created_at, true)" in fallback


def test_extra_dependencies_are_synced_over_the_statements_rows(plan):
    """users and workshops: the keys EXTRA_DEPENDENCIES selects, over the statement's old and new rows, after the
    statement's own keys (excluded when they are the same table's) and again, guarded, in the fallback."""
    functions = dict(sync_sql.function_statements(plan, sync_sql.FORWARD))
    for legacy, deps in sync_sql.EXTRA_DEPENDENCIES.items():
        text = render(functions["stmt_" + legacy])
        assert "OLD." not in text and "NEW." not in text, legacy
        assert "(SELECT * FROM ot UNION ALL SELECT * FROM nt) r" in text, legacy
        for target, _query in deps:
            assert text.count('"mapping_x"."carbot_sync_%s"(v_ck."id", true)' % target) >= 2, (legacy, target)
    users = render(functions["stmt_users"])
    assert '"mapping_x".normalise_email(r.email)' in users
    assert "EXCEPT SELECT \"id\" FROM (SELECT \"id\" FROM ot UNION ALL SELECT \"id\" FROM nt) o" in users
