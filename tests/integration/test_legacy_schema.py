"""sql/legacy/schema.sql matches shared/legacy-schema.md column for column.

The expected structure is parsed from the spec at test time (not copied into this file), so a change
of the spec that schema.sql does not follow fails here. In the spec every `### table` section lists its
columns as backticked `name type [PK|UNIQUE|NULL|NOT NULL]` items; a column without a type is a
timestamp ("Timestamps are `timestamptz` unless noted"); a composite key is written PK `(a, b)`.
"""

import re

import pytest
from conftest import REPO

SPEC = REPO.parent / "shared" / "legacy-schema.md"

# Spec type -> PostgreSQL format_type() spelling.
TYPE_NAMES = {
    "timestamptz": "timestamp with time zone",
    "bigserial": "bigint",
    "time without time zone": "time without time zone",
}
FLAGS = ("PK", "UNIQUE", "NULL", "NOT")


def parse_spec(text):
    """{table: {"columns": [(name, type, flags)], "pk": [cols], "unique": [col]}} from the spec text."""
    tables = {}
    sections = re.split(r"^### ", text, flags=re.M)[1:]
    for section in sections:
        header, _, body = section.partition("\n")
        table = header.split()[0]
        body = re.split(r"^## ", body, flags=re.M)[0]
        columns, pk, unique = [], [], []
        composite = re.search(r"PK `\(([^)]*)\)`", body)
        for span in re.findall(r"`([^`]+)`", body):
            if span.startswith("(") or span.startswith("{"):
                continue
            tokens = span.split()
            name = tokens[0]
            if not re.fullmatch(r"[a-z_]+", name):
                continue
            type_words = []
            for token in tokens[1:]:
                if token in FLAGS:
                    break
                type_words.append(token)
            flags = set(tokens[1 + len(type_words):])
            spec_type = " ".join(type_words) or "timestamptz"
            columns.append((name, TYPE_NAMES.get(spec_type, spec_type), flags))
            if "PK" in flags:
                pk.append(name)
            if "UNIQUE" in flags:
                unique.append(name)
        if composite:
            pk = [c.strip() for c in composite.group(1).split(",")]
        tables[table] = {"columns": columns, "pk": pk, "unique": unique,
                         "serial": [n for n, t, f in columns if t == "bigint"]}
    return tables


@pytest.fixture(scope="module")
def spec():
    # CI always has shared/ beside the clone: a missing spec is a broken checkout, never a reason to skip
    # (a skip here once kept five tests silently out of a green `make test`).
    if not SPEC.is_file():
        pytest.fail("the spec %s is missing: shared/ must sit beside the repository clone (../shared)" % SPEC)
    return parse_spec(SPEC.read_text(encoding="utf-8"))


def test_the_spec_parses_into_25_tables(spec):
    assert len(spec) == 25, sorted(spec)
    assert all(t["pk"] for t in spec.values()), [n for n, t in spec.items() if not t["pk"]]
    assert spec["appointment_services"]["pk"] == ["appointment_id", "service_id"]
    assert ("timestamp", "timestamp with time zone", set()) in spec["leads"]["columns"]


def catalog(db):
    rows = db.query("""
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND c.relkind = 'r'
        ORDER BY c.relname, a.attnum""")
    out = {}
    for table, column, typ, notnull, default in rows:
        out.setdefault(table, []).append((column, typ, notnull, default))
    return out


def key_columns(db, kind):
    """{table: [[cols of each constraint]]} for primary keys ('p') or unique constraints ('u')."""
    rows = db.query("""
        SELECT c.relname, array_agg(a.attname ORDER BY k.pos)
        FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, pos)
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
        WHERE n.nspname = 'public' AND con.contype = %s
        GROUP BY c.relname, con.oid""", (kind,))
    out = {}
    for table, cols in rows:
        out.setdefault(table, []).append(list(cols))
    return out


def test_exactly_the_25_tables_of_the_spec(legacy_db, spec):
    assert sorted(catalog(legacy_db)) == sorted(spec)


def test_columns_names_order_types_and_nullability(legacy_db, spec):
    actual = catalog(legacy_db)
    problems = []
    for table, expected in spec.items():
        got = actual.get(table, [])
        if [c[0] for c in got] != [c[0] for c in expected["columns"]]:
            problems.append("%s: columns %s, spec %s"
                            % (table, [c[0] for c in got], [c[0] for c in expected["columns"]]))
            continue
        for (name, typ, flags), (_, got_type, notnull, default) in zip(expected["columns"], got):
            if got_type != typ:
                problems.append("%s.%s: type %s, spec %s" % (table, name, got_type, typ))
            must_be_not_null = name in expected["pk"] or "NOT" in flags
            if notnull != must_be_not_null:
                problems.append("%s.%s: NOT NULL is %s, spec says %s" % (table, name, notnull, must_be_not_null))
            if name in expected["serial"] and not (default or "").startswith("nextval("):
                problems.append("%s.%s: bigserial without a sequence default" % (table, name))
    assert not problems, "\n".join(problems)


def test_primary_keys(legacy_db, spec):
    pks = key_columns(legacy_db, "p")
    wrong = {t: (pks.get(t), s["pk"]) for t, s in spec.items() if pks.get(t) != [s["pk"]]}
    assert not wrong, wrong


def test_unique_constraints(legacy_db, spec):
    uniques = key_columns(legacy_db, "u")
    wrong = {t: (uniques.get(t, []), s["unique"]) for t, s in spec.items()
             if sorted(uniques.get(t, [])) != sorted([c] for c in s["unique"])}
    assert not wrong, wrong
    assert sum(len(s["unique"]) for s in spec.values()) == 4  # users.email, slug, two stripe ids


def test_no_foreign_keys_like_production(legacy_db):
    assert legacy_db.scalar("SELECT count(*) FROM pg_constraint WHERE contype = 'f'") == 0


def test_schema_sql_is_idempotent(legacy_db):
    text = (REPO / "sql/legacy/schema.sql").read_text()
    conn = legacy_db.connect()
    with conn.cursor() as cur:
        cur.execute(text)
    conn.close()
    assert legacy_db.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 25
