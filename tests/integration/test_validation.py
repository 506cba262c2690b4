"""Validation against a real PostgreSQL: passes on a good copy, names what is wrong otherwise.

Uses the small contract-following mapping of test_copy_engine.py (legacy ``lg``, mapping ``mp``,
target ``tg``).
"""

import uuid

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import validation
from test_copy_engine import LEGACY, MAPPING, TABLES, TARGET, build_fixture, make_engine

CONSENT = [{"target": "owners", "legacy_column": "consent", "target_column": "marketing_consent"}]


def validate(db, checks=validation.DEFAULT_CHECKS, **kwargs):
    conn = db.connect(autocommit=False)
    try:
        kwargs.setdefault("consent_columns", CONSENT)
        kwargs.setdefault("chunk_rows", 500)
        return validation.Validator(conn, LEGACY, MAPPING, TARGET, tables=TABLES, **kwargs).run(checks)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def template(make_database):
    """One copied database, cloned per test (CREATE DATABASE ... TEMPLATE) so each test may break it."""
    db = build_fixture(make_database("valtpl"))
    make_engine(db).run()
    return db


@pytest.fixture
def copied(template):
    name = "val_%s" % uuid.uuid4().hex[:10]
    database = type(template)
    admin = database(template.host, template.port, "postgres", template.user, template.password).connect()
    with admin.cursor() as cur:
        cur.execute('CREATE DATABASE "%s" TEMPLATE "%s"' % (name, template.dbname))  # generated names
    admin.close()
    return database(template.host, template.port, name, template.user, template.password)


def owner_key(db, where):
    return str(db.scalar("SELECT id FROM lg.owners WHERE %s ORDER BY id LIMIT 1" % where))


def test_good_copy_passes_every_check(copied):
    result = validate(copied)
    assert result["failed"] is False, result["msg"]
    assert result["failed_checks"] == []
    counts = result["checks"]["counts"]["tables"]
    assert counts["pets"]["quarantined"] > 0 and counts["pets"]["difference"] == 0
    assert result["checks"]["checksums"]["tables"]["events"]["chunks"] > 1
    fks = result["checks"]["integrity"]["foreign_keys"]
    assert len(fks) == 4 and all(f["violations"] == 0 for f in fks)
    consent = result["checks"]["consent"]["tables"]["owners"]
    assert consent["target"]["true"] == consent["legacy"]["true"] == 500
    assert consent["target"]["null"] == 0 and consent["fabricated"] == 0
    quality = {(q["table"], q["column"]): q for q in result["checks"]["quality"]["columns"]}
    assert quality[("owners", "email")]["invalid"] == 0 and quality[("owners", "postal_code")]["values"] > 0
    assert set(result["elapsed"]) == set(validation.DEFAULT_CHECKS)


def test_changed_target_row_is_named_with_a_masked_sample(copied):
    key = owner_key(copied, "name LIKE 'Owner %' AND email LIKE 'o%@example.de'")
    copied.query("UPDATE tg.owners SET name = 'Erika Musterfrau', email = 'erika@beispiel.de' WHERE id = %s",
                 (key,))
    result = validate(copied, ["counts", "checksums"])
    assert result["failed_checks"] == ["checksums"]
    owners = result["checks"]["checksums"]["tables"]["owners"]
    assert owners["different_keys"] == [key] and owners["missing"] == owners["extra"] == 0
    sample = owners["samples"][0]
    assert sample["key"] == key
    assert sample["columns"]["name"]["found"] == "E. M."
    assert sample["columns"]["email"]["found"] == "e***@b***.de"
    assert sample["columns"]["email"]["expected"].endswith("@e***.de")
    assert "Erika" not in str(result) and "beispiel" not in str(result)
    assert "owners: 1 different: %s" % key in result["msg"]


def test_missing_and_extra_rows(copied):
    copied.query("DELETE FROM tg.events WHERE id IN (123, 2001)")
    copied.query("INSERT INTO tg.events VALUES (999999, NULL, 'ghost')")
    result = validate(copied, ["counts", "checksums"])
    assert result["failed_checks"] == ["counts", "checksums"]
    counts = result["checks"]["counts"]["tables"]["events"]
    assert (counts["source_rows"], counts["target_rows"], counts["difference"]) == (4000, 3999, 1)
    events = result["checks"]["checksums"]["tables"]["events"]
    assert events["missing_keys"] == ["123", "2001"]
    assert events["extra_keys"] == ["999999"]
    assert "events: 2 missing in target: 123, 2001; 1 extra in target: 999999" in result["msg"]
    assert "events: 4000 lg.events rows != 3999 in tg.events + 0 quarantined (difference +1)" in result["msg"]


def test_composite_key_difference_is_named(copied):
    owner, pet = copied.query("SELECT owner_id::text, pet_id FROM tg.visits ORDER BY 1, 2 LIMIT 1")[0]
    copied.query("UPDATE tg.visits SET price_cents = -1 WHERE owner_id = %s AND pet_id = %s", (owner, pet))
    result = validate(copied, ["checksums"])
    assert result["checks"]["checksums"]["tables"]["visits"]["different_keys"] == [[owner, str(pet)]]


def test_quarantine_count_mismatch(copied):
    copied.query("DELETE FROM tg.migration_quarantine WHERE id = "
                 "(SELECT min(id) FROM tg.migration_quarantine WHERE target_table = 'pets')")
    result = validate(copied, ["counts", "checksums"])
    assert result["failed_checks"] == ["counts"]
    pets = result["checks"]["counts"]["tables"]["pets"]
    assert pets["difference"] == 1
    assert "pets: 3000 lg.pets rows != %d in tg.pets + %d quarantined (difference +1)" % (
        pets["target_rows"], pets["quarantined"]) in result["msg"]


def test_fabricated_consent(copied):
    key = owner_key(copied, "consent IS NULL")
    copied.query("UPDATE tg.owners SET marketing_consent = true WHERE id = %s", (key,))
    result = validate(copied, ["consent"])
    assert result["failed"] is True
    owners = result["checks"]["consent"]["tables"]["owners"]
    assert owners["fabricated"] == 1 and owners["target"]["true"] == owners["legacy"]["true"] + 1
    assert "owners: 1 rows with marketing_consent = true whose legacy consent is not true" in result["msg"]
    assert key in result["msg"]


def test_integrity_counts_orphans_also_under_not_valid_constraints(copied):
    copied.query("ALTER TABLE tg.pets DROP CONSTRAINT pets_owner_id_fkey")
    key = str(copied.scalar("SELECT owner_id FROM tg.pets ORDER BY id LIMIT 1"))
    n = copied.scalar("SELECT count(*) FROM tg.pets WHERE owner_id = %s", (key,))
    copied.query("""
        SET session_replication_role = replica;
        DELETE FROM tg.owners WHERE id = %s;
        SET session_replication_role = origin;
        ALTER TABLE tg.pets ADD CONSTRAINT pets_owner_id_fkey FOREIGN KEY (owner_id)
            REFERENCES tg.owners (id) NOT VALID;""", (key,))
    result = validate(copied, ["integrity"])
    assert result["failed"] is True
    fk = {f["constraint"]: f for f in result["checks"]["integrity"]["foreign_keys"]}
    assert fk["pets_owner_id_fkey"]["violations"] == n and fk["pets_owner_id_fkey"]["validated"] is False
    assert result["checks"]["integrity"]["not_valid"] == ["pets_owner_id_fkey"]
    assert "pets_owner_id_fkey: %d rows of pets (owner_id) without a parent in owners (constraint NOT VALID)" % n \
        in result["msg"]


def test_quality_finds_invalid_values_and_masks_them(copied):
    copied.query("UPDATE tg.owners SET email = 'max@kaputt', postal_code = '1234' WHERE id = %s",
                 (owner_key(copied, "email LIKE 'o%@example.de'"),))
    result = validate(copied, ["quality"])
    failures = result["checks"]["quality"]["failures"]
    assert len(failures) == 2
    assert "owners.email: 1 invalid email values (of" in failures[0] and "m***@k***" in failures[0]
    assert "owners.postal_code: 1 invalid postal_code values" in failures[1]
    assert validate(copied, ["quality"], quality_max_invalid=1)["failed"] is False


def test_unmapped_values_and_unread_tables(copied):
    copied.query("CREATE VIEW mp.unmapped_values AS SELECT 'leads'::text AS legacy_table, 'status'::text AS "
                 "legacy_column, 'neu'::text AS value, 3 AS rows")
    copied.query("CREATE TABLE lg.forgotten (id int); INSERT INTO lg.forgotten VALUES (1), (2)")
    result = validate(copied, ["unmapped"])
    unmapped = result["checks"]["unmapped"]
    assert unmapped["unmapped_values"] == [{"legacy_table": "leads", "legacy_column": "status", "value": "neu",
                                            "rows": 3}]
    assert unmapped["unread_tables"] == [{"table": "forgotten", "rows": 2}]
    assert "forgotten (2 rows)" in result["msg"]
