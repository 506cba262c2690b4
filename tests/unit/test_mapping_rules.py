"""The mapping's rule functions (sql/mapping/010_rules.sql, 020_keys.sql) against a real database.

One case per kind of dirt in shared/legacy-schema.md. The functions are loaded into a fresh
database on their own (they read no table), exactly as schema_apply loads them.
"""

import datetime
import json
import uuid

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import mapping
from conftest import REPO

RULE_FILES = ("010_rules.sql", "020_keys.sql")
UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def rules(make_database):
    """A cursor on a database holding only the rule functions, in schema carbot_migration."""
    db = make_database("rules")
    conn = db.connect(autocommit=False)
    mapping.ensure_schema(conn, "carbot_migration")
    with conn.cursor() as cur:
        for name in RULE_FILES:
            cur.execute(mapping.search_path_statement(["carbot_migration"]))
            cur.execute((REPO / "sql" / "mapping" / name).read_text())
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        # Callers (views, triggers) may run with any search_path: use the functions qualified.
        cur.execute("SET search_path TO pg_catalog")
        yield cur
    conn.close()


def call(cur, expr, *args):
    cur.execute("SELECT carbot_migration." + expr, args)
    return cur.fetchone()[0]


# --- names ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("Max Mustermann", [None, "Max", "Mustermann"]),
    ("Dr. Anna-Lena von Berg", ["Dr.", "Anna-Lena", "von Berg"]),           # title + particle
    ("  Müller ", [None, None, "Müller"]),                                   # blanks, one word
    ("Ömer", [None, None, "Ömer"]),                                          # one word, Unicode
    ("van der Berg, Jan", [None, "Jan", "van der Berg"]),                    # 'Family, Given'
    ("Berg, Dr. Anna", ["Dr.", "Anna", "Berg"]),                             # title after the comma
    ("Prof. Dr. Hans Peter Schmidt", ["Prof. Dr.", "Hans Peter", "Schmidt"]),  # two titles, two given
    ("Dipl.-Ing. Karl de la Cruz", ["Dipl.-Ing.", "Karl", "de la Cruz"]),
    ("von Berg", [None, None, "von Berg"]),                                  # particle first
    ("Max   Mustermann", [None, "Max", "Mustermann"]),                       # runs of blanks
    ("Herr Müller", ["Herr", None, "Müller"]),                               # salutation
    ("", [None, None, None]),
    ("   ", [None, None, None]),
    (None, [None, None, None]),
])
def test_split_name(rules, raw, expected):
    assert call(rules, "split_name(%s)", raw) == expected


SPLIT_CASES = [  # every case above, plus the edges of split_name_fast's test (token boundaries, case, blanks)
    "Max Mustermann", "Dr. Anna-Lena von Berg", "  Müller ", "Ömer", "van der Berg, Jan", "Berg, Dr. Anna",
    "Prof. Dr. Hans Peter Schmidt", "Dipl.-Ing. Karl de la Cruz", "von Berg", "Max   Mustermann", "Herr Müller",
    "", "   ", None, "Herr", "Dennis Berg", "Vanessa Vonnegut", "Daniel Laura Lea", "Hans VON Berg", "DR. Max",
    "Max Dr.", "Anna\tvon\nBerg", "Anna\u00a0von Berg", "Dipl.-Ing.Ing. X", "h.c. Max", "Dr.med. Max Müller",
    "Hans de", "Anna della Robbia", "Della Robbia", "Max Müller,", ",", "Max İng. Müller", "DİPL. Max Müller",
]


@pytest.mark.parametrize("raw", SPLIT_CASES)
def test_split_name_fast_agrees_or_defers(rules, raw):
    """split_name_fast is split_name's result, or NULL (the view then calls split_name)."""
    fast = call(rules, "split_name_fast(carbot_migration.squeeze_blanks(%s))", raw)
    assert fast is None or fast == call(rules, "split_name(%s)", raw)


@pytest.mark.parametrize("raw, expected", [
    ("Max Mustermann", [None, "Max", "Mustermann"]),
    ("Hans  Peter Müller ", [None, "Hans Peter", "Müller"]),
    ("Dennis Vonnegut", [None, "Dennis", "Vonnegut"]),      # 'de', 'von' only as whole tokens
    ("Ömer", [None, None, "Ömer"]),
    ("   ", [None, None, None]),
    (None, [None, None, None]),
])
def test_split_name_fast_takes_the_common_names(rules, raw, expected):
    assert call(rules, "split_name_fast(carbot_migration.squeeze_blanks(%s))", raw) == expected


def test_split_name_fast_agrees_on_random_names(rules):
    """200k names drawn from titles, particles, commas, odd blanks and Unicode: split_name_fast never differs."""
    rules.execute("""
        SELECT count(*) FILTER (WHERE f IS NOT NULL), count(*) FILTER (WHERE f IS NOT NULL AND f <> s)
          FROM (SELECT carbot_migration.split_name_fast(carbot_migration.squeeze_blanks(name)) AS f,
                       carbot_migration.split_name(name) AS s
                  FROM (SELECT (SELECT string_agg(w[1 + (hashint8(g * 16 + i) & 2147483647) % 40],
                                                  CASE WHEN hashint8(g * 32 + i) % 4 = 0 THEN '' ELSE ' ' END)
                                  FROM generate_series(1, 1 + g % 6) i) AS name
                          FROM generate_series(1, 200000) g,
                               (SELECT ARRAY['Dr.', 'DR.', 'prof', 'Herr', 'FRAU', 'Dipl.-Ing.', 'med.', 'h.c.', 'von',
                                             'VON', 'van', 'der', 'de', 'Della', 'di', 'zu', 'af', 'Müller', 'Anna',
                                             'Hans-Peter', 'Ömer', 'İng.', 'Dİ', '', ' ', ',', ' ,', ', ', E'\t',
                                             E'\n', chr(160), 'Dennis', 'Vonnegut', 'Laura', 'Daniel', 'x', 'ß',
                                             'Dr.,', 'a.b', 'Lea'] AS w) words) n) r""")
    taken, differ = rules.fetchone()
    assert differ == 0
    assert taken > 10000


def test_join_name_spells_the_name_back(rules):
    assert call(rules, "join_name(%s, %s, %s)", "Dr.", "Anna-Lena", "von Berg") == "Dr. Anna-Lena von Berg"
    assert call(rules, "join_name(%s, %s, %s)", None, None, "Müller") == "Müller"
    assert call(rules, "join_name(%s, %s, %s)", None, None, None) is None


# --- emails -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("MAX@WEB.DE ", "max@web.de"),      # case and blanks
    ("anna.berg@t-online.de", "anna.berg@t-online.de"),
    ("max@", None),                     # invalid: no domain
    ("kein", None),                     # invalid: no @
    ("max@web", None),                  # invalid: no top-level domain
    ("max @web.de", None),              # invalid: blank inside
    ("", None),
    (None, None),
    ("\uff41da@example.de", "ada@example.de"),      # fullwidth 'ａ': NFKC
    ("\ufb01nn@ex\u00e4mple.de", "finn@ex\u00e4mple.de"),  # ligature 'ﬁ': NFKC
    ("max\u200b@web.de", "max@web.de"),           # zero-width space inside
    ("\ufeffMAX@WEB.DE\u00a0", "max@web.de"),      # BOM and no-break space around
    ("\u200b\u200b", None),                       # nothing but invisible characters
    ("kein\u200b", None),                         # invalid stays invalid
])
def test_normalise_email(rules, raw, expected):
    assert call(rules, "normalise_email(%s)", raw) == expected


@pytest.mark.parametrize("raw, expected", [
    (" Leipzig ", "Leipzig"), ("\u200b\u200b\u200b", None), ("\u00a0Berlin\u200d", "Berlin"),
    ("\uff2d\uff55\uff4e\uff43\uff48\uff45\uff4e", "Munchen"), ("", None), (None, None),
])
def test_clean_text_normalises_unicode_and_blanks(rules, raw, expected):
    assert call(rules, "clean_text(%s)", raw) == expected


def test_set_aside_keeps_rejected_values_only(rules):
    assert call(rules, "set_aside(%s, %s)", "max@", None) == "max@"          # rejected: kept raw
    assert call(rules, "set_aside(%s, %s)", "MAX@WEB.DE ", "max@web.de") is None  # normalised: nothing lost
    assert call(rules, "set_aside(%s, %s)", "  ", None) is None               # blank carries nothing
    assert call(rules, "set_aside(%s, %s)", None, None) is None


# --- postal codes, plates, VIN, years ---------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("10115", "10115"), (" 10115", "10115"), ("1234", None), ("10115 Berlin", None), ("", None), (None, None),
])
def test_normalise_postal_code(rules, raw, expected):
    assert call(rules, "normalise_postal_code(%s)", raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("B-AB 1234", "B-AB 1234"),
    ("b ab1234", "B-AB 1234"),
    ("hh-x 12e", "HH-X 12E"),           # electric-car suffix
    ("M  AB  7", "M-AB 7"),
    ("BAB1234", "BAB1234"),             # ambiguous (B-AB or BA-B): kept as it was
    ("W-12345A", "W-12345A"),           # foreign plate: kept
    ("  ", None),
    (None, None),
])
def test_normalise_plate(rules, raw, expected):
    assert call(rules, "normalise_plate(%s)", raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("wvwzzz1jz3w386752", "WVWZZZ1JZ3W386752"),
    ("WVW ZZZ1JZ3W386752", "WVWZZZ1JZ3W386752"),
    ("garbage", None),
    ("WVWZZZ1JZ3W38675O", None),        # letter O is not in the VIN alphabet
    (None, None),
])
def test_normalise_vin(rules, raw, expected):
    assert call(rules, "normalise_vin(%s)", raw) == expected


@pytest.mark.parametrize("year, created, expected", [
    (2015, datetime.datetime(2024, 5, 1, tzinfo=UTC), 2015),
    (2025, datetime.datetime(2024, 5, 1, tzinfo=UTC), 2025),    # next model year
    (2031, datetime.datetime(2024, 5, 1, tzinfo=UTC), None),    # future
    (0, datetime.datetime(2024, 5, 1, tzinfo=UTC), None),
    (1999, None, 1999),
    (None, None, None),
    (2020, "infinity", 2020),                                   # infinite created_at: bounded by 2100 only
    (2020, "-infinity", 2020),
    (2101, "infinity", None),
])
def test_valid_vehicle_year(rules, year, created, expected):
    assert call(rules, "valid_vehicle_year(%s, %s)", year, created) == expected


# --- closed sets --------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("new", "new"), ("contacted", "contacted"), ("qualified", "qualified"), ("converted", "won"),
    ("lost", "lost"), ("spam", "spam"),                     # the plan turned these into 'new'
    ("neu", "new"), ("NEU ", "new"),                        # German legacy spelling
    (None, None),                                           # unknown stays unknown
    ("bogus", None),                                        # unknown value: quarantined by the view
])
def test_lead_status_map(rules, raw, expected):
    assert call(rules, "lead_status_map(%s)", raw) == expected


def test_unknown_value_tells_unknown_from_null(rules):
    assert call(rules, "unknown_value(%s, %s, %s, %s)", "leads.status", "bogus", None, True) == \
        "unknown leads.status: 'bogus'"
    assert call(rules, "unknown_value(%s, %s, %s, %s)", "leads.status", None, None, True) is None
    assert call(rules, "unknown_value(%s, %s, %s, %s)", "leads.source", None, None, False) == \
        "unknown leads.source: NULL"
    assert call(rules, "unknown_value(%s, %s, %s, %s)", "leads.status", "neu", "new", True) is None


def test_other_closed_sets(rules):
    assert call(rules, "business_type_map(%s)", "Freie Werkstatt") == "independent"
    assert call(rules, "business_type_map(%s)", "dealership") == "dealership"
    assert call(rules, "business_type_map(%s)", "Kette") is None
    assert call(rules, "lead_priority_map(%s)", "URGENT") == "urgent"
    assert call(rules, "appointment_status_map(%s)", "no_show") == "no_show"
    assert call(rules, "chatbot_language_map(%s)", "DE") == "de"
    assert call(rules, "subscription_status_map(%s)", "cancelled") is None   # legacy spells it 'canceled'


@pytest.mark.parametrize("raw, expected", [("eur", "EUR"), ("EUR", "EUR"), (" Eur ", "EUR"), ("euro", None),
                                           ("", None), (None, None)])
def test_currency_map(rules, raw, expected):
    assert call(rules, "currency_map(%s)", raw) == expected


# --- slugs, subjects ---------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("meister-berlin-v2", "meister-berlin"), ("meister-berlin", "meister-berlin"),
    ("v2-meister", "v2-meister"), ("meister-v2-v2", "meister-v2"), ("meister-v20", "meister-v20"),
])
def test_strip_slug_suffix(rules, raw, expected):
    assert call(rules, "strip_slug_suffix(%s)", raw) == expected


def test_lead_subject(rules):
    assert call(rules, "lead_subject(%s)", "  Bremsen quietschen\nseit gestern, bitte Termin") == "Bremsen quietschen"
    assert len(call(rules, "lead_subject(%s)", "x" * 500)) == 120
    assert call(rules, "lead_subject(%s)", " \n ") is None


# --- deterministic ids ---------------------------------------------------------------------------------
@pytest.mark.parametrize("namespace, name", [
    (uuid.NAMESPACE_DNS, "carbot.example"),
    (uuid.NAMESPACE_URL, "urn:carbot:migration"),
    (mapping.ID_NAMESPACE, "organization:max@web.de"),
    (mapping.ID_NAMESPACE, "chat_session:0f0e.../Ömer 🚗"),
    (mapping.ID_NAMESPACE, ""),
])
def test_uuid_v3_equals_python(rules, namespace, name):
    assert call(rules, "uuid_v3(%s::uuid, %s)", str(namespace), name) == str(uuid.uuid3(namespace, name))


def test_id_namespace_agrees_with_python(rules):
    assert call(rules, "id_namespace()") == str(mapping.ID_NAMESPACE)
    assert mapping.ID_NAMESPACE == uuid.uuid3(uuid.NAMESPACE_URL, "urn:carbot:migration")


def test_derived_ids_agree_with_python(rules):
    assert call(rules, "organization_uuid(%s)", "max@web.de") == str(mapping.organization_id("max@web.de"))
    wid = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    assert call(rules, "chat_session_uuid(%s::uuid, %s)", wid, "k-42") == str(mapping.chat_session_id(wid, "k-42"))
    assert call(rules, "chat_session_uuid(%s::uuid, %s)", wid, "k-42") == \
        call(rules, "uuid_v3(carbot_migration.id_namespace(), %s)", "chat_session:%s/k-42" % wid)


# --- local times around DST ---------------------------------------------------------------------------
@pytest.mark.parametrize("day, time, expected_utc", [
    ("2024-07-01", "10:00", datetime.datetime(2024, 7, 1, 8, 0, tzinfo=UTC)),      # CEST, +02
    ("2024-01-15", "10:00", datetime.datetime(2024, 1, 15, 9, 0, tzinfo=UTC)),     # CET, +01
    # spring forward: 02:30 does not exist; read with the offset before the jump (+01) = 03:30 CEST
    ("2024-03-31", "02:30", datetime.datetime(2024, 3, 31, 1, 30, tzinfo=UTC)),
    # fall back: 02:30 happens twice; read as standard time (+01), the later instant
    ("2024-10-27", "02:30", datetime.datetime(2024, 10, 27, 1, 30, tzinfo=UTC)),
    ("2024-10-27", None, None),
])
def test_local_to_instant(rules, day, time, expected_utc):
    got = call(rules, "local_to_instant(%s::date, %s::time)", day, time)
    assert got == expected_utc


# --- chat history shapes -----------------------------------------------------------------------------
MSG = {"role": "user", "content": "Hallo 👋", "ts": "2024-05-01T10:00:00Z"}


@pytest.mark.parametrize("raw, expected", [
    ([MSG], [MSG]),                                   # the normal shape
    (MSG, [MSG]),                                     # an object: wrapped
    (json.dumps([MSG]), [MSG]),                       # a JSON string holding an array: parsed
    (json.dumps(MSG), [MSG]),                         # a JSON string holding an object: parsed, wrapped
    ("Kunde hat angerufen", ["Kunde hat angerufen"]),  # a plain string: kept as the only element
    ("[{broken", ["[{broken"]),                       # invalid JSON inside: kept as a string
    (5, [5]),
    ([], []),
])
def test_normalise_chat_history(rules, raw, expected):
    assert call(rules, "normalise_chat_history(%s::jsonb)", json.dumps(raw)) == expected


def test_normalise_chat_history_nulls(rules):
    assert call(rules, "normalise_chat_history(%s::jsonb)", None) is None
    assert call(rules, "normalise_chat_history(%s::jsonb)", "null") is None


CHAT_CASES = [  # every case above, plus the edges of normalise_chat_history_fast's test (JSON blanks, brackets)
    [MSG], MSG, json.dumps([MSG]), json.dumps(MSG), "Kunde hat angerufen", "[{broken", 5, [], {}, "", " ", True,
    False, 0, -1.5, "[]", "{}", " \t\n\r[1]", "\u00a0[1]", "\ufeff{}", "x[1]", '"[1]"', "[", "{", "]", "}",
    "[1] x", " {\"a\": [1]} ", "null", "5", "true", '"text"', "Hallo 👋", "\\[1]", "\r\n{\"a\":1}",
]


@pytest.mark.parametrize("raw", CHAT_CASES + [None])
def test_normalise_chat_history_fast_agrees_or_defers(rules, raw):
    """normalise_chat_history_fast is normalise_chat_history's result, or NULL (the view then calls it)."""
    value = None if raw is None else json.dumps(raw)
    fast = call(rules, "normalise_chat_history_fast(%s::jsonb)", value)
    slow = call(rules, "normalise_chat_history(%s::jsonb)", value)
    assert fast is None or fast == slow
    rules.execute("SELECT COALESCE(carbot_migration.normalise_chat_history_fast(%s::jsonb), "
                  "carbot_migration.normalise_chat_history(%s::jsonb))", (value, value))
    assert rules.fetchone()[0] == slow


@pytest.mark.parametrize("raw", [[MSG], MSG, "Kunde hat angerufen", 5, True, "x[1]", '"[1]"', "", "\u00a0[1]"])
def test_normalise_chat_history_fast_takes_what_needs_no_parse(rules, raw):
    assert call(rules, "normalise_chat_history_fast(%s::jsonb)", json.dumps(raw)) is not None


def test_normalise_chat_history_null_json_and_sql_null(rules):
    assert call(rules, "normalise_chat_history_fast(%s::jsonb)", "null") is None
    assert call(rules, "normalise_chat_history_fast(%s::jsonb)", None) is None
    rules.execute("SELECT COALESCE(carbot_migration.normalise_chat_history_fast(x), "
                  "carbot_migration.normalise_chat_history(x)) FROM (VALUES (NULL::jsonb), ('null')) v(x)")
    assert rules.fetchall() == [(None,), (None,)]


def test_normalise_chat_history_fast_agrees_on_random_strings(rules):
    """50k JSON strings drawn from brackets, braces, quotes, JSON and other blanks: the fast path never differs."""
    rules.execute("""
        SELECT count(*) FILTER (WHERE f IS NOT NULL), count(*) FILTER (WHERE f IS DISTINCT FROM s AND f IS NOT NULL),
               count(*) FILTER (WHERE f IS NULL AND s IS NULL)
          FROM (SELECT carbot_migration.normalise_chat_history_fast(v) AS f,
                       carbot_migration.normalise_chat_history(v) AS s
                  FROM (SELECT to_jsonb((SELECT string_agg(w[1 + (hashint8(g * 16 + i) & 2147483647) % 20], '')
                                           FROM generate_series(1, 1 + g % 5) i)) AS v
                          FROM generate_series(1, 50000) g,
                               (SELECT ARRAY['[', ']', '{', '}', '"', ' ', E'\t', E'\n', E'\r', chr(160), chr(65279),
                                             '1', ',', ':', '"a"', 'x', 'null', 'true', '\\', 'ü'] AS w) words) n) r""")
    taken, differ, both_null = rules.fetchone()
    assert differ == 0
    assert both_null == 0
    assert taken > 10000


# --- purity --------------------------------------------------------------------------------------------
def test_every_rule_is_immutable(rules):
    rules.execute("SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                  "WHERE n.nspname = 'carbot_migration' AND p.provolatile <> 'i'")
    assert rules.fetchall() == []


def test_normalise_chat_history_never_runs_inside_a_parallel_query(rules):
    """Its EXCEPTION block is a subtransaction, which PostgreSQL refuses anywhere in a parallel query, in the
    leader too ("cannot start subtransactions during a parallel operation"): the validation's checksum of
    map_leads failed on it at scale 3, where leads is large enough for a parallel scan. PARALLEL UNSAFE keeps
    every query that calls it serial. Forced here: a parallel scan of a table of JSON strings that hold arrays."""
    rules.execute("CREATE TEMP TABLE chat_strings AS SELECT pg_catalog.to_jsonb('[' || g || ']') AS raw "
                  "FROM pg_catalog.generate_series(1, 2000) g")
    rules.execute("SELECT proparallel FROM pg_catalog.pg_proc WHERE oid = "
                  "'carbot_migration.normalise_chat_history(jsonb)'::pg_catalog.regprocedure")
    assert rules.fetchone()[0] == "u"
    settings = {"parallel_setup_cost": "0", "parallel_tuple_cost": "0", "min_parallel_table_scan_size": "0",
                "max_parallel_workers_per_gather": "2", "force_parallel_mode": "on"}
    for name, value in settings.items():
        rules.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
    try:
        rules.execute("SELECT pg_catalog.count(*) FROM chat_strings WHERE pg_catalog.jsonb_array_length("
                      "COALESCE(carbot_migration.normalise_chat_history_fast(raw), "
                      "carbot_migration.normalise_chat_history(raw))) = 1")
        assert rules.fetchone()[0] == 2000
    finally:
        for name in settings:
            rules.execute("SELECT pg_catalog.set_config(%s, NULL, false)", (name,))
        rules.execute("DROP TABLE chat_strings")
