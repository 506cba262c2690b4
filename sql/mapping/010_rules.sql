-- carbot_migration: the rule functions of the mapping (docs/mapping.md, "Rules").
-- Applied with `SET search_path TO <mapping>, <legacy>, <target>`; no schema is named here.
--
-- Every function is pure: IMMUTABLE, it reads no table and calls only pg_catalog built-ins,
-- never another function of this file (a nested call would be resolved through the caller's
-- search_path at run time, and the sync triggers run in the application's sessions). The
-- views combine the functions; a view binds each function it calls when it is created.
-- tests/unit/test_mapping_rules.py has one case per kind of legacy dirt.

-- Text ------------------------------------------------------------------------------------------

-- The raw legacy value when a rule rejected it (kept is NULL) and it was not blank: what goes
-- into legacy_raw, so that no value is silently lost.
CREATE OR REPLACE FUNCTION set_aside(raw text, kept text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN kept IS NULL AND pg_catalog.btrim(raw) <> '' THEN raw END
$$;

-- Unicode text as the rules judge it: NFKC (fullwidth 'ａ' -> 'a', ligature 'ﬁ' -> 'fi', no-break space ->
-- space) and without the invisible characters that make a blank value look filled or a valid one invalid
-- (zero-width space/joiners U+200B-U+200D, word joiner U+2060, BOM U+FEFF, soft hyphen U+00AD). The same
-- expression stands in clean_text and normalise_email (rule functions never call each other). Text of ASCII
-- characters only (as many bytes as characters) is its own NFKC form and skips the normalisation.
-- Text: Unicode-normalised, trimmed, blank -> NULL. A city of zero-width spaces is blank.
CREATE OR REPLACE FUNCTION clean_text(raw text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NULLIF(pg_catalog.btrim(pg_catalog.regexp_replace(CASE WHEN pg_catalog.octet_length(raw) = pg_catalog.length(raw) THEN raw
                  ELSE pg_catalog.normalize(raw, 'NFKC') END,
                  '[\u200B-\u200D\u2060\uFEFF\u00AD]', '', 'g'), E' \t\r\n'), '')
$$;

-- Email: Unicode-normalised (NFKC, invisible characters removed: 'ａda@example.de' -> 'ada@example.de'),
-- trimmed, lower case; kept only when it has the shape local@domain.tld, else NULL (the view puts the
-- raw value into legacy_raw). 'MAX@WEB.DE ' -> 'max@web.de'; 'max@', 'kein' -> NULL.
CREATE OR REPLACE FUNCTION normalise_email(raw text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- one expression (no FROM: the function stays inlinable). substring(text, pattern) of a pattern without
    -- capturing groups is the whole normalised value or NULL, found by the regex DFA alone (a capturing
    -- regexp_match cost ~3x as much per row: the engine then dissects the match); unlike regexp_substr it
    -- exists before PostgreSQL 15 (the legacy database may run 13 or 14)
    SELECT pg_catalog.substring(
        pg_catalog.lower(pg_catalog.btrim(pg_catalog.regexp_replace(CASE WHEN pg_catalog.octet_length(raw) = pg_catalog.length(raw) THEN raw
                  ELSE pg_catalog.normalize(raw, 'NFKC') END,
            '[\u200B-\u200D\u2060\uFEFF\u00AD]', '', 'g'), E' \t\r\n')),
        '^[^@[:space:]]+@[^@[:space:].]+(?:\.[^@[:space:].]+)+$')
$$;

-- German postal code: trimmed, exactly 5 digits, else NULL (raw kept in legacy_raw).
-- ' 10115' -> '10115'; '1234' -> NULL (not padded: 4 digits are also valid AT/CH codes).
CREATE OR REPLACE FUNCTION normalise_postal_code(raw text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.btrim(raw) ~ '^[0-9]{5}$' THEN pg_catalog.btrim(raw) END
$$;

-- German licence plate to the form 'B-AB 1234' (district, letters, number, optional E/H suffix)
-- when it parses unambiguously: a blank or hyphen must separate district and letters
-- ('BAB1234' could be B-AB or BA-B). Anything else (foreign plates, garbage) is kept as it was,
-- only trimmed; blank -> NULL. 'b ab1234' -> 'B-AB 1234'.
CREATE OR REPLACE FUNCTION normalise_plate(raw text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- The test is a regex without capturing groups (the DFA alone decides it). The parts are then cut with
    -- string functions, not with a capturing regexp_replace: dissecting the captures cost ~90 us a row.
    -- X = upper(btrim(raw)); the district ends at the first blank or hyphen; R = what follows, without the
    -- separators; the number (digits and E/H) is R without its leading letters and separators.
    SELECT CASE
        WHEN raw IS NULL OR pg_catalog.btrim(raw) = '' THEN NULL
        WHEN pg_catalog.upper(pg_catalog.btrim(raw))
             ~ '^[A-ZÄÖÜ]{1,3}[ -]+[A-Z]{1,2}[ -]*[1-9][0-9]{0,3}[EH]?$'
        THEN pg_catalog.left(pg_catalog.upper(pg_catalog.btrim(raw)),
                             pg_catalog.strpos(pg_catalog.translate(pg_catalog.upper(pg_catalog.btrim(raw)), '-', ' '),
                                               ' ') - 1)
             || '-'
             || pg_catalog.rtrim(pg_catalog.left(
                    pg_catalog.ltrim(pg_catalog.substr(pg_catalog.upper(pg_catalog.btrim(raw)),
                        pg_catalog.strpos(pg_catalog.translate(pg_catalog.upper(pg_catalog.btrim(raw)), '-', ' '), ' ')),
                        ' -'),
                    -pg_catalog.length(pg_catalog.ltrim(pg_catalog.upper(pg_catalog.btrim(raw)),
                                                        'ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÜ -'))), ' -')
             || ' '
             || pg_catalog.ltrim(pg_catalog.upper(pg_catalog.btrim(raw)), 'ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÜ -')
        ELSE pg_catalog.btrim(raw)
    END
$$;

-- VIN: blanks removed, upper case, 17 characters of the VIN alphabet (no I, O, Q), else NULL.
CREATE OR REPLACE FUNCTION normalise_vin(raw text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN pg_catalog.upper(pg_catalog.regexp_replace(raw, '\s', '', 'g')) ~ '^[A-HJ-NPR-Z0-9]{17}$'
        THEN pg_catalog.upper(pg_catalog.regexp_replace(raw, '\s', '', 'g'))
    END
$$;

-- Vehicle year: plausible from 1886 (the first car) to the year after the row was created
-- (model years run ahead), else NULL (raw kept). Deterministic: it reads created_at, not now(). An infinite or
-- unknown created_at (legacy rows with 'infinity' exist) bounds the year by 2100 only.
CREATE OR REPLACE FUNCTION valid_vehicle_year(year integer, created_at timestamptz) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN year BETWEEN 1886 AND LEAST(2100,
             CASE WHEN pg_catalog.isfinite(created_at)
                  THEN pg_catalog.date_part('year', pg_catalog.timezone('UTC', created_at))::integer + 1 END, 2100)
        THEN year
    END
$$;

-- Slug: one trailing '-v2' (left by the plan's earlier attempt) removed. The view keeps the
-- legacy slug when the stripped slug is taken by another workshop.
CREATE OR REPLACE FUNCTION strip_slug_suffix(slug text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.regexp_replace(slug, '-v2$', '')
$$;

-- Lead subject: the first line of the request (anliegen), trimmed, at most 120 characters.
CREATE OR REPLACE FUNCTION lead_subject(anliegen text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NULLIF(pg_catalog.btrim(pg_catalog.left(
        pg_catalog.split_part(pg_catalog.btrim(anliegen, E' \t\r\n'), E'\n', 1), 120), E' \t\r\n'), '')
$$;

-- Names ------------------------------------------------------------------------------------------
-- The name as split_name reads it: runs of blanks (the regex class \s) as one space, trimmed; '' for NULL.
CREATE OR REPLACE FUNCTION squeeze_blanks(raw text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.btrim(pg_catalog.regexp_replace(COALESCE(raw, ''), '\s+', ' ', 'g'))
$$;

-- split_name_fast(squeeze_blanks(name)): split_name(name) for the common name, one expression that the planner
-- inlines: no comma, a first word that is not a title, and no word that is a particle (rules 2, 3, 5 below do
-- not apply), so the last word is the last name and the words before it the first name. NULL for every other
-- name, which then needs split_name (the views call COALESCE(split_name_fast(s), split_name(name)) with s =
-- squeeze_blanks(name) computed once per row). It takes the squeezed name (the words split_name splits; the
-- parameter is still called raw: CREATE OR REPLACE cannot rename it where the function exists), so that the
-- regexp_replace runs once per name, not once per use (~1 us each). The title pattern and the particle list
-- are split_name's, tested on lower(s) as split_name tests lower(word), so both judge a word alike in any
-- locale. Two short regexes, not one: one pattern of titles and particles needs a regex DFA larger than the
-- engine's preallocated one, allocated and freed on every call (one minor page fault per name, ~7 us of system
-- time, in a backend whose heap happens to be trimmed between calls); these two do not. Only the first word
-- can be a title (split_name strips leading titles only); a particle anywhere defers (the last word as a
-- particle would not need to: rare). tests/unit/test_mapping_rules.py checks that both agree.
CREATE OR REPLACE FUNCTION split_name_fast(raw text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.strpos(raw, ',') = 0
                 AND pg_catalog.lower(raw) !~
                     '^(?:(?:(?:dr|prof|dipl|ing|med|dent|vet|rer|nat|pol|oec|phil|jur|habil|mag|univ|h\.c)\.-?)+'
                     '|dr|prof|herr|frau)(?: |$)'
                 AND pg_catalog.lower(raw) !~
                     '(?:^| )(?:von|van|vom|zu|zum|zur|de|der|den|del|della|di|da|du|la|le|ten|ter|dos|das|af)(?: |$)'
           THEN ARRAY[NULL,
                      NULLIF(pg_catalog.left(raw, -1 - pg_catalog.length(pg_catalog.split_part(raw, ' ', -1))),
                             ''),
                      NULLIF(pg_catalog.split_part(raw, ' ', -1), '')
                     ]::text[]
           END
$$;

-- split_name(name) -> ARRAY[title, first_name, last_name]. Rules, in order:
--  1. NULL, '' and blanks -> all NULL. Runs of blanks collapse; the name is trimmed.
--  2. 'Family, Given' (a comma) -> last = before the comma, first = after it.
--  3. Leading titles and salutations go to title: Dr., Prof., Dipl.-Ing., Dr. med., Herr, Frau, ...
--  4. One word left -> last name ('Müller', 'Ömer').
--  5. The last name starts at the first name particle after the first word (von, van, van der,
--     de, de la, zu, ...): 'Anna-Lena von Berg' -> 'Anna-Lena' + 'von Berg'; a name that starts
--     with a particle is all last name ('von Berg'). Without a particle the last word is the last
--     name: 'Hans Peter Müller' -> 'Hans Peter' + 'Müller'.
CREATE OR REPLACE FUNCTION split_name(raw text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    s text;
    given text[];
    family text[];
    toks text[];
    titles text[] := '{}';
    n integer;
    i integer;
    p integer;
    title_re constant text :=
        '^(((dr|prof|dipl|ing|med|dent|vet|rer|nat|pol|oec|phil|jur|habil|mag|univ|h\.c)\.-?)+|dr|prof|herr|frau)$';
    particles constant text[] := ARRAY['von', 'van', 'vom', 'zu', 'zum', 'zur', 'de', 'der', 'den', 'del',
                                       'della', 'di', 'da', 'du', 'la', 'le', 'ten', 'ter', 'dos', 'das', 'af'];
BEGIN
    s := pg_catalog.btrim(pg_catalog.regexp_replace(COALESCE(raw, ''), '\s+', ' ', 'g'));
    IF s = '' THEN
        RETURN ARRAY[NULL, NULL, NULL]::text[];
    END IF;
    IF pg_catalog.strpos(s, ',') > 0 THEN
        family := pg_catalog.string_to_array(
            NULLIF(pg_catalog.btrim(pg_catalog.split_part(s, ',', 1)), ''), ' ');
        given := pg_catalog.string_to_array(
            NULLIF(pg_catalog.btrim(pg_catalog.substr(s, pg_catalog.strpos(s, ',') + 1), ' ,'), ''), ' ');
        -- titles may stand before the family name ('Dr. Berg, Anna') or the given name ('Berg, Dr. Anna')
        WHILE pg_catalog.cardinality(family) > 1 AND pg_catalog.lower(family[1]) ~ title_re LOOP
            titles := titles || family[1];
            family := family[2:];
        END LOOP;
        WHILE pg_catalog.cardinality(given) > 0 AND pg_catalog.lower(given[1]) ~ title_re LOOP
            titles := titles || given[1];
            given := given[2:];
        END LOOP;
    ELSE
        toks := pg_catalog.string_to_array(s, ' ');
        WHILE pg_catalog.cardinality(toks) > 0 AND pg_catalog.lower(toks[1]) ~ title_re LOOP
            titles := titles || toks[1];
            toks := toks[2:];
        END LOOP;
        n := COALESCE(pg_catalog.cardinality(toks), 0);
        IF n = 1 THEN
            family := toks;
        ELSIF n > 1 THEN
            p := NULL;
            IF pg_catalog.lower(toks[1]) = ANY (particles) THEN
                p := 1;
            ELSE
                FOR i IN 2 .. n - 1 LOOP
                    IF pg_catalog.lower(toks[i]) = ANY (particles) THEN
                        p := i;
                        EXIT;
                    END IF;
                END LOOP;
            END IF;
            p := COALESCE(p, n);
            given := toks[1:p - 1];
            family := toks[p:n];
        END IF;
    END IF;
    RETURN ARRAY[
        NULLIF(pg_catalog.array_to_string(titles, ' '), ''),
        NULLIF(pg_catalog.array_to_string(given, ' '), ''),
        NULLIF(pg_catalog.array_to_string(family, ' '), '')
    ]::text[];
END
$$;

-- The full name as carbot_v2.customers.full_name generates it (same expression).
CREATE OR REPLACE FUNCTION join_name(title text, first_name text, last_name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NULLIF(pg_catalog.btrim(COALESCE(title || ' ', '') || COALESCE(first_name || ' ', '')
                                   || COALESCE(last_name, '')), '')
$$;

-- Time --------------------------------------------------------------------------------------------
-- A local Europe/Berlin date and time as an instant. PostgreSQL's rule for the DST edges:
-- a time that does not exist (spring forward, 02:30 on the last Sunday of March) is read with
-- the offset before the jump (+01:00), i.e. it becomes 03:30 CEST; an ambiguous time (fall back,
-- 02:30 on the last Sunday of October) is read as standard time (+01:00), the later instant.
-- NULL time -> NULL (the appointment keeps its date). A date a timestamp cannot hold (after 294276-12-30; legacy
-- dates are unchecked) has no instant either: NULL, the date is kept. 'infinity' stays infinite.
CREATE OR REPLACE FUNCTION local_to_instant(local_date date, local_time time without time zone)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN NOT (pg_catalog.isfinite(local_date) AND local_date > '294276-12-30'::date)
                THEN pg_catalog.timezone('Europe/Berlin', local_date + local_time) END
$$;

-- JSON --------------------------------------------------------------------------------------------
-- Chat history to a JSON array, keeping everything: an array stays; an object is wrapped in an
-- array; a JSON string that holds an array or object is parsed (and an object wrapped); any other
-- string or scalar becomes the single element of an array; SQL NULL and JSON null -> NULL.
-- PARALLEL UNSAFE: the EXCEPTION block is a subtransaction, which PostgreSQL refuses anywhere in a parallel
-- query, in the leader too ("cannot start subtransactions during a parallel operation"; RESTRICTED only keeps
-- it out of the workers, and the validation's checksum of map_leads failed on it at scale 3). Every query that
-- calls it stays serial; normalise_chat_history_fast keeps the calls to the strings that need a parse.
-- STRICT: SQL NULL is NULL without a call (the views call it after normalise_chat_history_fast, below).
CREATE OR REPLACE FUNCTION normalise_chat_history(raw jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL UNSAFE AS $$
DECLARE
    parsed jsonb;
BEGIN
    IF raw IS NULL OR pg_catalog.jsonb_typeof(raw) = 'null' THEN
        RETURN NULL;
    ELSIF pg_catalog.jsonb_typeof(raw) = 'array' THEN
        RETURN raw;
    ELSIF pg_catalog.jsonb_typeof(raw) = 'object' THEN
        RETURN pg_catalog.jsonb_build_array(raw);
    ELSIF pg_catalog.jsonb_typeof(raw) = 'string' THEN
        BEGIN
            parsed := (raw #>> '{}')::jsonb;
        EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
            parsed := NULL;  -- not JSON inside: kept as a string element below
        END;
        IF pg_catalog.jsonb_typeof(parsed) = 'array' THEN
            RETURN parsed;
        ELSIF pg_catalog.jsonb_typeof(parsed) = 'object' THEN
            RETURN pg_catalog.jsonb_build_array(parsed);
        END IF;
    END IF;
    RETURN pg_catalog.jsonb_build_array(raw);
END
$$;

-- normalise_chat_history_fast(raw): normalise_chat_history's result, one expression that the planner inlines,
-- for every value but a JSON string that could hold an array or an object (its text starts, after JSON
-- blanks, with '[' or '{': only such a text can parse to one), JSON null and SQL NULL: NULL for those, and
-- the views call COALESCE(normalise_chat_history_fast(x), normalise_chat_history(x)). So the plpgsql function
-- and its subtransaction run only for the strings that need a parse (PostgreSQL 15 has no
-- pg_input_is_valid); any other string cannot parse to an array or object and becomes [string], as the
-- function's EXCEPTION branch or scalar result makes it. tests/unit/test_mapping_rules.py checks both agree.
CREATE OR REPLACE FUNCTION normalise_chat_history_fast(raw jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- '[]' || x is [x] for an object or scalar x, as jsonb_build_array(x) is; jsonb_build_array is STABLE,
    -- and an IMMUTABLE function that calls a STABLE one is not inlined
    SELECT CASE pg_catalog.jsonb_typeof(raw)
        WHEN 'array' THEN raw
        WHEN 'object' THEN '[]'::jsonb || raw
        WHEN 'number' THEN '[]'::jsonb || raw
        WHEN 'boolean' THEN '[]'::jsonb || raw
        WHEN 'string' THEN CASE WHEN (raw #>> '{}') !~ '^[ \t\n\r]*[{[]' THEN '[]'::jsonb || raw END
    END
$$;

-- Closed sets ----------------------------------------------------------------------------------
-- value -> the target enum label (as text; the view casts). Matching ignores case and surrounding
-- blanks. NULL in -> NULL out; an unknown value -> NULL too, and the view tells the two apart
-- (value IS NOT NULL AND map(value) IS NULL = unknown) and quarantines the row with
-- "unknown <table>.<column>: '<value>'". unmapped_values (090_reports.sql) lists them.
-- A new legacy spelling is one more WHEN line here.

CREATE OR REPLACE FUNCTION user_role_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'owner' THEN 'owner' WHEN 'staff' THEN 'staff' WHEN 'admin' THEN 'admin' END
$$;

CREATE OR REPLACE FUNCTION team_role_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'owner' THEN 'owner' WHEN 'mechanic' THEN 'mechanic'
        WHEN 'reception' THEN 'reception' WHEN 'admin' THEN 'admin' END
$$;

CREATE OR REPLACE FUNCTION business_type_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'independent' THEN 'independent' WHEN 'freie werkstatt' THEN 'independent'
        WHEN 'franchise' THEN 'franchise' WHEN 'dealership' THEN 'dealership'
        WHEN 'specialist' THEN 'specialist' END
$$;

CREATE OR REPLACE FUNCTION lead_status_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'new' THEN 'new' WHEN 'neu' THEN 'new'
        WHEN 'contacted' THEN 'contacted' WHEN 'qualified' THEN 'qualified'
        WHEN 'converted' THEN 'won' WHEN 'lost' THEN 'lost' WHEN 'spam' THEN 'spam' END
$$;

CREATE OR REPLACE FUNCTION lead_priority_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'low' THEN 'low' WHEN 'medium' THEN 'medium' WHEN 'high' THEN 'high' WHEN 'urgent' THEN 'urgent' END
$$;

CREATE OR REPLACE FUNCTION lead_source_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'widget' THEN 'widget' WHEN 'whatsapp' THEN 'whatsapp'
        WHEN 'email' THEN 'email' WHEN 'phone' THEN 'phone' END
$$;

CREATE OR REPLACE FUNCTION chat_sender_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'user' THEN 'user' WHEN 'bot' THEN 'bot' WHEN 'agent' THEN 'agent' END
$$;

CREATE OR REPLACE FUNCTION appointment_status_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'scheduled' THEN 'scheduled' WHEN 'confirmed' THEN 'confirmed'
        WHEN 'completed' THEN 'completed' WHEN 'cancelled' THEN 'cancelled' WHEN 'no_show' THEN 'no_show' END
$$;

CREATE OR REPLACE FUNCTION review_source_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'google' THEN 'google' WHEN 'carbot' THEN 'carbot' WHEN 'email' THEN 'email' END
$$;

CREATE OR REPLACE FUNCTION subscription_plan_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'starter' THEN 'starter' WHEN 'professional' THEN 'professional' WHEN 'enterprise' THEN 'enterprise' END
$$;

CREATE OR REPLACE FUNCTION subscription_status_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'trialing' THEN 'trialing' WHEN 'active' THEN 'active'
        WHEN 'past_due' THEN 'past_due' WHEN 'canceled' THEN 'canceled' END
$$;

CREATE OR REPLACE FUNCTION invoice_status_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'draft' THEN 'draft' WHEN 'open' THEN 'open' WHEN 'paid' THEN 'paid'
        WHEN 'void' THEN 'void' WHEN 'uncollectible' THEN 'uncollectible' END
$$;

-- Currency: ISO 4217 letters, upper case ('eur', 'EUR', ' Eur' -> 'EUR'); anything else unknown.
CREATE OR REPLACE FUNCTION currency_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.upper(pg_catalog.btrim(v)) ~ '^[A-Z]{3}$' THEN pg_catalog.upper(pg_catalog.btrim(v)) END
$$;

CREATE OR REPLACE FUNCTION chatbot_language_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v)) WHEN 'de' THEN 'de' WHEN 'en' THEN 'en' END
$$;

CREATE OR REPLACE FUNCTION gdpr_request_type_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'access' THEN 'access' WHEN 'erasure' THEN 'erasure'
        WHEN 'rectification' THEN 'rectification' WHEN 'portability' THEN 'portability' END
$$;

CREATE OR REPLACE FUNCTION gdpr_request_status_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'open' THEN 'open' WHEN 'in_progress' THEN 'in_progress'
        WHEN 'done' THEN 'done' WHEN 'rejected' THEN 'rejected' END
$$;

CREATE OR REPLACE FUNCTION consent_type_map(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(v))
        WHEN 'chat_privacy' THEN 'chat_privacy' WHEN 'marketing' THEN 'marketing' END
$$;

-- "unknown <table>.<column>: '<value>'" (or NULL) for a closed-set column: the value is unknown
-- when the map gave NULL for a non-NULL value, or when the value is NULL and NULL is not allowed.
CREATE OR REPLACE FUNCTION unknown_value(source_column text, v text, mapped text, null_allowed boolean)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN v IS NULL AND NOT null_allowed THEN 'unknown ' || source_column || ': NULL'
        WHEN v IS NOT NULL AND mapped IS NULL THEN 'unknown ' || source_column || ': ' || pg_catalog.quote_literal(v)
    END
$$;
