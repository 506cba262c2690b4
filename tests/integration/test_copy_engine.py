"""The copy engine against a real PostgreSQL: correctness, idempotence, crash and resume, live deletes.

The tests bring their own small mapping that follows docs/architecture.md (legacy tables,
target tables with foreign keys, projection views with ``_src_key``/``_quarantine_reason``,
a composite key and a derived table), so that the engine is tested independently of the
real carbot_v2 mapping. ``build_fixture`` is also used by test_validation.py.
"""

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import copy_engine

REPO = pathlib.Path(__file__).resolve().parents[2]
LEGACY, MAPPING, TARGET = "lg", "mp", "tg"

FIXTURE_DDL = """
CREATE SCHEMA lg; CREATE SCHEMA mp; CREATE SCHEMA tg;
CREATE TYPE tg.migration_state AS ENUM ('pending', 'copying', 'copied', 'failed');

-- legacy: no foreign keys, dirt included
CREATE TABLE lg.owners (id uuid PRIMARY KEY, name text, email text, consent boolean, postal_code text);
CREATE TABLE lg.pets (id bigserial PRIMARY KEY, owner_id uuid, species text, note text);
CREATE TABLE lg.visits (owner_id uuid, pet_id bigint, price integer, PRIMARY KEY (owner_id, pet_id));
CREATE TABLE lg.events (id bigserial PRIMARY KEY, owner_id uuid, payload text);

-- target
CREATE TABLE tg.owners (id uuid PRIMARY KEY, name text, email text, marketing_consent boolean NOT NULL,
                        postal_code text, name_len integer GENERATED ALWAYS AS (length(name)) STORED);
CREATE TABLE tg.pets (id bigint PRIMARY KEY, owner_id uuid NOT NULL REFERENCES tg.owners (id),
                      species text, note text);
CREATE TABLE tg.visits (owner_id uuid NOT NULL REFERENCES tg.owners (id),
                        pet_id bigint NOT NULL REFERENCES tg.pets (id),
                        price_cents integer, PRIMARY KEY (owner_id, pet_id));
CREATE TABLE tg.owner_stats (id uuid PRIMARY KEY, owner_id uuid NOT NULL REFERENCES tg.owners (id), pets integer);
CREATE TABLE tg.events (id bigint PRIMARY KEY, owner_id uuid, payload text);
CREATE TABLE tg.migration_status (
    target_table text PRIMARY KEY, source_table text NOT NULL,
    kind text NOT NULL DEFAULT 'row' CHECK (kind IN ('row', 'derived')),
    state tg.migration_state NOT NULL DEFAULT 'pending',
    last_key text[], rows_copied bigint NOT NULL DEFAULT 0, rows_quarantined bigint NOT NULL DEFAULT 0,
    rows_total_estimate bigint, started_at timestamptz, updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz, run_id text, last_error text);
CREATE TABLE tg.migration_quarantine (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, target_table text NOT NULL, source_table text NOT NULL,
    source_pk text NOT NULL, reason text NOT NULL, row_data jsonb NOT NULL, run_id text,
    quarantined_at timestamptz NOT NULL DEFAULT now(), UNIQUE (target_table, source_pk));

-- mapping
CREATE VIEW mp.map_owners AS
  SELECT o.id, nullif(btrim(o.name), '') AS name,
         CASE WHEN lower(btrim(o.email)) ~ '^[^@ ]+@[^@ ]+[.][a-z]+$' THEN lower(btrim(o.email)) END AS email,
         coalesce(o.consent, false) AS marketing_consent,
         CASE WHEN btrim(o.postal_code) ~ '^[0-9]{5}$' THEN btrim(o.postal_code) END AS postal_code,
         o.id AS _src_key, NULL::text AS _quarantine_reason
  FROM lg.owners o;
CREATE VIEW mp.map_pets AS
  SELECT p.id, p.owner_id, p.species, p.note, p.id AS _src_key,
         CASE WHEN o.id IS NULL THEN 'orphan: owner_id not found' END AS _quarantine_reason
  FROM lg.pets p LEFT JOIN lg.owners o ON o.id = p.owner_id;
CREATE VIEW mp.map_visits AS
  SELECT v.owner_id, v.pet_id, v.price AS price_cents, v.owner_id AS _src_key1, v.pet_id AS _src_key2,
         CASE WHEN o.id IS NULL THEN 'orphan: owner_id not found'
              WHEN p.id IS NULL OR po.id IS NULL THEN 'orphan: pet_id not found' END AS _quarantine_reason
  FROM lg.visits v LEFT JOIN lg.owners o ON o.id = v.owner_id
       LEFT JOIN lg.pets p ON p.id = v.pet_id LEFT JOIN lg.owners po ON po.id = p.owner_id;
CREATE VIEW mp.map_owner_stats AS
  SELECT md5('stats' || o.id::text)::uuid AS id, o.id AS owner_id, count(p.id)::integer AS pets,
         md5('stats' || o.id::text)::uuid AS _src_key, NULL::text AS _quarantine_reason
  FROM lg.owners o LEFT JOIN lg.pets p ON p.owner_id = o.id GROUP BY o.id;
CREATE VIEW mp.map_events AS
  SELECT e.id, e.owner_id, e.payload, e.id AS _src_key, NULL::text AS _quarantine_reason FROM lg.events e;
"""

# Deterministic data (same rows in every database), with the dirt the mapping must handle.
FIXTURE_DATA = """
INSERT INTO lg.owners
  SELECT md5('o' || i)::uuid,
         CASE WHEN i % 50 = 0 THEN NULL WHEN i % 31 = 0 THEN '  Ömer ' ELSE 'Owner ' || i END,
         CASE WHEN i % 40 = 0 THEN 'kein' WHEN i % 7 = 0 THEN ' MAX' || i || '@WEB.DE '
              ELSE 'o' || i || '@example.de' END,
         CASE WHEN i % 3 = 0 THEN true WHEN i % 3 = 1 THEN false END,
         CASE WHEN i % 25 = 0 THEN '1234' ELSE lpad((10000 + i)::text, 5, '0') END
  FROM generate_series(1, {owners}) i;
INSERT INTO lg.pets (id, owner_id, species, note)
  SELECT i, CASE WHEN i % 97 = 0 THEN md5('gone' || i)::uuid ELSE md5('o' || (1 + i % {owners}))::uuid END,
         (ARRAY['dog', 'cat', 'bird'])[1 + i % 3], repeat('n', i % 20)
  FROM generate_series(1, {pets}) i;
SELECT setval('lg.pets_id_seq', {pets});
INSERT INTO lg.visits
  SELECT md5('o' || (1 + i % {owners}))::uuid, i, i * 10 FROM generate_series(1, {pets}) i
  UNION ALL SELECT md5('ghost' || i)::uuid, i, 1 FROM generate_series(1, 5) i;
INSERT INTO lg.events (id, owner_id, payload)
  SELECT i, md5('o' || (1 + i % {owners}))::uuid, 'event ' || i FROM generate_series(1, {events}) i;
SELECT setval('lg.events_id_seq', {events});
ANALYZE;
"""

TABLES = [
    {"target": "owners", "view": "map_owners", "source": "owners", "source_key": ["id"], "target_key": ["id"],
     "kind": "row", "reads": ["owners"], "depends_on": []},
    {"target": "pets", "view": "map_pets", "source": "pets", "source_key": ["id"], "target_key": ["id"],
     "kind": "row", "reads": ["pets", "owners"], "depends_on": ["owners"]},
    {"target": "visits", "view": "map_visits", "source": "visits", "source_key": ["owner_id", "pet_id"],
     "target_key": ["owner_id", "pet_id"], "kind": "row", "reads": ["visits", "pets", "owners"],
     "depends_on": ["owners", "pets"]},
    {"target": "owner_stats", "view": "map_owner_stats", "source": "owners", "source_key": ["id"],
     "target_key": ["id"], "kind": "derived", "reads": ["owners", "pets"], "depends_on": ["owners"]},
    {"target": "events", "view": "map_events", "source": "events", "source_key": ["id"], "target_key": ["id"],
     "kind": "row", "reads": ["events"], "depends_on": []},
]

SIZES = {"owners": 1500, "pets": 3000, "events": 4000}


def build_fixture(db, **sizes):
    """Create the fixture schemas and fill them; returns ``db``."""
    sizes = dict(SIZES, **sizes)
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute(FIXTURE_DDL)
        cur.execute(FIXTURE_DATA.format(**{k: int(v) for k, v in sizes.items()}))
    conn.close()
    return db


def module_params(db, **extra):
    """The module-style connection parameters db.connect() takes."""
    params = {"login_host": db.host, "login_port": db.port, "login_db": db.dbname, "login_user": db.user,
              "login_password": db.password, "ssl_mode": "disable", "lock_timeout_ms": 3000,
              "statement_timeout_ms": 0}
    params.update(extra)
    return params


def make_engine(db, **kwargs):
    kwargs.setdefault("workers", 2)
    return copy_engine.CopyEngine(module_params(db), legacy_schema=LEGACY, mapping_schema=MAPPING,
                                  target_schema=TARGET, tables=TABLES, **kwargs)


def table_checksum(db, schema, table, key):
    return db.scalar(
        "SELECT count(*)::text || ':' || coalesce(md5(string_agg(md5(t::text), '' ORDER BY %s)), '') FROM %s.%s t"
        % (", ".join(key), schema, table))


def all_checksums(db):
    out = {t["target"]: table_checksum(db, TARGET, t["target"], t["target_key"]) for t in TABLES}
    out["quarantine"] = db.scalar(
        "SELECT count(*)::text || ':' || md5(string_agg(target_table || source_pk || reason || row_data::text, '' "
        "ORDER BY target_table, source_pk)) FROM tg.migration_quarantine")
    return out


def assert_counts_add_up(db):
    for t in TABLES:
        if t["kind"] != "row":
            continue
        legacy = db.scalar("SELECT count(*) FROM lg.%s" % t["source"])
        target = db.scalar("SELECT count(*) FROM tg.%s" % t["target"])
        quarantined = db.scalar("SELECT count(*) FROM tg.migration_quarantine WHERE target_table = %s",
                                (t["target"],))
        assert legacy == target + quarantined, (t["target"], legacy, target, quarantined)
    dupes = db.scalar("SELECT count(*) - count(DISTINCT (target_table, source_pk)) FROM tg.migration_quarantine")
    assert dupes == 0


@pytest.fixture
def fixture_db(make_database):
    return build_fixture(make_database("copy"))


def test_order_tables_follows_dependencies():
    shuffled = [TABLES[2], TABLES[3], TABLES[1], TABLES[4], TABLES[0]]
    names = [t["target"] for t in copy_engine.order_tables(shuffled)]
    assert names.index("owners") < names.index("pets") < names.index("visits")
    assert names.index("owners") < names.index("owner_stats")
    assert [t["target"] for t in copy_engine.order_tables(TABLES, ["visits", "owners"])] == ["owners", "visits"]
    with pytest.raises(copy_engine.CopyError, match="Unknown target tables nope"):
        copy_engine.order_tables(TABLES, ["nope"])
    cyclic = [{"target": "a", "depends_on": ["b"]}, {"target": "b", "depends_on": ["a"]}]
    with pytest.raises(copy_engine.CopyError, match="cycle"):
        copy_engine.order_tables(cyclic)


def test_copy_is_complete_and_second_run_copies_nothing(fixture_db, tmp_path):
    db = fixture_db
    progress = tmp_path / "progress.jsonl"
    result = make_engine(db, batch_size=700, progress_file=str(progress)).run()
    assert result["failed"] == [] and result["skipped"] == []
    assert_counts_add_up(db)
    # the mapped projection and the target agree, row for row
    for t in TABLES:
        cols = [c for c in copy_engine.TableSpec(
            t, (LEGACY, MAPPING, TARGET),
            _cols(db, MAPPING, t["view"]), _cols(db, TARGET, t["target"])).columns]
        key = ", ".join(t["target_key"])
        diff = db.scalar(
            "SELECT count(*) FROM ((SELECT %(c)s FROM mp.%(v)s WHERE _quarantine_reason IS NULL EXCEPT ALL "
            "SELECT %(c)s FROM tg.%(t)s) UNION ALL (SELECT %(c)s FROM tg.%(t)s EXCEPT ALL "
            "SELECT %(c)s FROM mp.%(v)s WHERE _quarantine_reason IS NULL)) d"
            % {"c": ", ".join(cols), "v": t["view"], "t": t["target"]})
        assert diff == 0, (t["target"], key)
    pets = result["tables"]["pets"]
    assert pets["quarantined"] == db.scalar("SELECT count(*) FROM lg.pets WHERE id % 97 = 0") > 0
    assert pets["copied"] + pets["quarantined"] == pets["source_rows"] == 3000
    assert result["tables"]["visits"]["quarantined"] >= 5
    assert db.scalar("SELECT count(*) FROM tg.owner_stats") == 1500
    status = dict(db.query("SELECT target_table, state::text FROM tg.migration_status"))
    assert set(status.values()) == {"copied"}
    # progress lines with rows done/total, rows/s, ETA
    records = [json.loads(line) for line in progress.read_text().splitlines()]
    assert {"rows_done", "rows_total", "rows_per_second", "eta_seconds"} <= set(records[-1])
    assert any(r["table"] == "events" and r["state"] == "copied" and r["rows_done"] == 4000 for r in records)
    progress_rows = copy_engine.read_progress(db.connect(), TARGET)
    assert {r["table"]: r["rows_done"] for r in progress_rows}["pets"] == 3000
    assert len(copy_engine.format_progress(progress_rows)) == 1 + len(TABLES)

    before = all_checksums(db)
    again = make_engine(db).run()
    assert again["rows_copied"] == 0 and again["rows_quarantined"] == 0
    assert again["tables"]["pets"]["already_present"] == pets["copied"]
    assert all_checksums(db) == before


def _cols(db, schema, rel):
    conn = db.connect()
    with conn.cursor() as cur:
        cols = copy_engine.table_columns(cur, schema, rel)
    conn.close()
    return cols


def test_check_mode_reports_and_copies_nothing(fixture_db):
    db = fixture_db
    preview = make_engine(db).preview()
    assert preview["owners"]["would_copy"] == 1500
    assert preview["pets"]["would_quarantine"] == db.scalar("SELECT count(*) FROM lg.pets WHERE id % 97 = 0")
    assert preview["pets"]["would_copy"] + preview["pets"]["would_quarantine"] == 3000
    assert db.scalar("SELECT count(*) FROM tg.owners") == 0
    assert db.scalar("SELECT count(*) FROM tg.migration_status") == 0
    make_engine(db, selected=["owners"]).run()
    preview = make_engine(db).preview()
    assert preview["owners"]["would_copy"] == 0 and preview["pets"]["would_copy"] > 0


def test_selected_tables_and_missing_view_is_a_clear_error(fixture_db):
    db = fixture_db
    db.query("DROP VIEW mp.map_events")
    with pytest.raises(copy_engine.CopyError, match="Mapping view mp.map_events does not exist"):
        make_engine(db).run()
    result = make_engine(db, selected=["owners", "owner_stats"]).run()
    assert set(result["tables"]) == {"owners", "owner_stats"}
    assert db.scalar("SELECT count(*) FROM tg.pets") == 0


def test_dropped_connection_is_retried(make_database):
    """A batch whose connection is terminated is retried on a new connection, nothing lost or doubled."""
    db = build_fixture(make_database("drop"), events=20000)
    stop = threading.Event()

    def killer():
        admin = db.connect()
        while not stop.is_set():
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = 'carbot.migration copy events' AND state = 'active'")
            time.sleep(0.03)
        admin.close()

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        result = make_engine(db, batch_size=100, adaptive=False, selected=["events"], retry_base=0.01,
                             max_retries=50).run()
    finally:
        stop.set()
        thread.join()
    assert result["failed"] == []
    assert result["retries"] > 0, "no connection was dropped: the test proved nothing"
    assert db.scalar("SELECT count(*) FROM tg.events") == 20000


RUNNER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {collections!r})
    from ansible_collections.carbot.migration.plugins.module_utils import copy_engine
    cfg = json.load(open(sys.argv[1]))
    engine = copy_engine.CopyEngine(cfg.pop("params"), **cfg)
    print(json.dumps(engine.run(), default=str))
""")


def test_kill_9_mid_table_and_resume(make_database, tmp_path):
    """kill -9 the copy while it is inside a table, rerun, compare with a clean run: identical."""
    sizes = {"events": 60000}
    crashed = build_fixture(make_database("crash"), **sizes)
    clean = build_fixture(make_database("clean"), **sizes)

    runner = tmp_path / "run_copy.py"
    runner.write_text(RUNNER.format(collections=str(REPO / ".collections")))
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({
        "params": module_params(crashed), "legacy_schema": LEGACY, "mapping_schema": MAPPING,
        "target_schema": TARGET, "tables": TABLES, "batch_size": 150, "adaptive": False, "workers": 2}))
    proc = subprocess.Popen([sys.executable, str(runner), str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 60
        seen = 0
        while time.time() < deadline and proc.poll() is None:
            rows = crashed.query("SELECT coalesce(rows_copied, 0) FROM tg.migration_status "
                                 "WHERE target_table = 'events' AND state = 'copying'")
            seen = rows[0][0] if rows else 0
            if seen > 3000:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the copy ended before it could be killed: %s" % proc.communicate()[1]
    finally:
        if proc.poll() is None:  # also when the polling above failed: no copy left running into later tests
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    at_kill = crashed.scalar("SELECT count(*) FROM tg.events")
    assert 0 < at_kill < 60000, at_kill
    # the checkpoint is exactly what was committed
    assert crashed.scalar("SELECT rows_copied FROM tg.migration_status WHERE target_table = 'events'") == at_kill

    resumed = make_engine(crashed, batch_size=500).run()
    assert resumed["failed"] == []
    assert resumed["tables"]["events"]["copied"] == 60000 - at_kill
    make_engine(clean).run()
    assert all_checksums(crashed) == all_checksums(clean)
    assert_counts_add_up(crashed)
    assert make_engine(crashed).run()["rows_copied"] == 0


def test_live_deletes_never_come_back(make_database):
    """The application deletes legacy rows while the copy runs; the sync trigger deletes by key.

    Nothing deleted may be in the target afterwards, and nothing that survives may be missing.
    """
    db = build_fixture(make_database("live"), events=30000)
    db.query("""
        CREATE FUNCTION lg.sync_delete_event() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN DELETE FROM tg.events WHERE id = OLD.id; RETURN OLD; END $$;
        CREATE TRIGGER sync_delete AFTER DELETE ON lg.events FOR EACH ROW EXECUTE FUNCTION lg.sync_delete_event();
    """)
    stop = threading.Event()
    deleted = []

    def app():
        conn = db.connect()
        rng = random.Random(7)
        with conn.cursor() as cur:
            while not stop.is_set():
                ids = rng.sample(range(1, 30001), 5)
                cur.execute("DELETE FROM lg.events WHERE id = ANY(%s) RETURNING id", (ids,))
                deleted.extend(r[0] for r in cur.fetchall())
        conn.close()

    thread = threading.Thread(target=app)
    thread.start()
    try:
        result = make_engine(db, batch_size=200, adaptive=False, selected=["events"]).run()
    finally:
        stop.set()
        thread.join()
    assert result["failed"] == []
    assert len(deleted) > 100, "the application deleted too little to prove anything"
    back = db.scalar("SELECT count(*) FROM tg.events WHERE id = ANY(%s)", (deleted,))
    assert back == 0, "%d deleted rows came back" % back
    assert db.scalar("SELECT count(*) FROM tg.events") == db.scalar("SELECT count(*) FROM lg.events")
    missing = db.scalar("SELECT count(*) FROM lg.events l "
                        "WHERE NOT EXISTS (SELECT 1 FROM tg.events t WHERE t.id = l.id)")
    assert missing == 0


def test_real_mapping_copy_resume_and_validate(make_database, tmp_path):
    """The real carbot_v2 schema and mapping (sql/v2, sql/mapping, mapping.TABLES) on generated legacy data."""
    from ansible_collections.carbot.migration.plugins.module_utils import mapping, validation
    from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data

    generator = REPO / "sql" / "legacy" / "generate.sql"
    assert generator.is_file(), "the legacy generator %s is missing" % generator
    assert list((REPO / "sql" / "mapping").glob("*.sql")), "sql/mapping has no SQL files"
    db = make_database("real")
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute((REPO / "sql" / "legacy" / "schema.sql").read_text())
    conn.commit()
    legacy_data.generate(conn, generator.read_text(), 42, 0.01, "public")
    mapping.apply_all(conn, str(REPO / "sql"))
    conn.commit()
    conn.close()
    params = module_params(db)

    # a first run stopped after two tables, then the full run: resumes, copies each row once
    first = copy_engine.CopyEngine(params, selected=["organizations", "users"], workers=2).run()
    assert first["failed"] == [] and first["rows_copied"] > 0
    result = copy_engine.CopyEngine(params, batch_size=300).run()
    assert result["failed"] == [] and result["skipped"] == []
    assert result["tables"]["users"]["copied"] == 0
    assert result["tables"]["chat_sessions"]["copied"] > 0
    assert result["tables"]["appointment_services"]["copied"] > 0
    assert copy_engine.CopyEngine(params).run()["rows_copied"] == 0

    conn = db.connect(autocommit=False)
    mapping.add_foreign_keys(conn, "carbot_v2")
    conn.commit()
    report = validation.Validator(conn).run()
    conn.close()
    assert report["failed"] is False, report["msg"]
    assert report["checks"]["integrity"]["foreign_keys"], "the foreign keys were checked"
    assert report["checks"]["consent"]["tables"]["leads"]["fabricated"] == 0
