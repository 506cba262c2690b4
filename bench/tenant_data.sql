-- bench/tenant_data.sql: a legacy dataset shaped like the busy tenant mix of issue 14, written independently of
-- sql/legacy/generate.sql (other value pools, other hashing, other dirt), so that the copy figures are not shown
-- only on the project's own generator. Used by `bench/copy_bench.py --dataset tenant`; never by the tests.
--
-- At carbot.tenant_fraction = 1 (psql: set_config('carbot.tenant_fraction', '1', false) before this file):
--   300 workshops (and their 300 owners in users), 2,000 customers and 2,000 leads per workshop (600,000 each),
--   2,000,000 chat messages in 500,000 conversations of 4 (every 5th conversation belongs to a lead),
--   300,000 appointments: 3.5 M rows. The other 19 legacy tables stay empty. A fraction f scales every count
--   but the workshops (f = 0.1: 300 workshops with 200 customers each).
-- What real legacy data has and the project's generator may not: names with particles, titles, hyphens,
-- apostrophes, fullwidth and combining characters and a zero-width space; upper-case and invalid emails; postal
-- codes with blanks or 4 digits; 'infinity' and '-infinity' timestamps; emoji and RTL text in messages; a chat
-- history as an array, an object, a JSON string holding an array, and SQL NULL; appointments at 00:00 and on
-- 29 February. Deterministic: every value is a function of the row number (md5), no random().
-- Runs with search_path set to the legacy schema; TRUNCATEs the tables it fills.

TRUNCATE users, workshops, customers, leads, chat_messages, appointments;

CREATE FUNCTION pg_temp.h(n bigint, salt text) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT ('x' || substr(md5('tenant/' || salt || '/' || n), 1, 15))::bit(60)::bigint
$$;
CREATE FUNCTION pg_temp.u(n bigint, salt text) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
    SELECT md5('tenant-id/' || salt || '/' || n)::uuid
$$;
CREATE FUNCTION pg_temp.pick(arr text[], n bigint, salt text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT arr[1 + pg_temp.h(n, salt) % cardinality(arr)]
$$;
CREATE FUNCTION pg_temp.ts(n bigint, salt text) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN n % 99991 = 7 THEN 'infinity'::timestamptz
                WHEN n % 99991 = 11 THEN '-infinity'::timestamptz
                ELSE '2019-03-01 00:00:00+00'::timestamptz + (pg_temp.h(n, salt) % 211000000) * interval '1 second'
           END
$$;

CREATE TEMP TABLE tenant_n AS
SELECT greatest(0.001, coalesce(nullif(current_setting('carbot.tenant_fraction', true), '')::numeric, 1)) AS f;

-- users: the workshops' owners ------------------------------------------------------------------------------
INSERT INTO users (id, email, full_name, role, password_hash, last_login_at, created_at, updated_at)
SELECT pg_temp.u(w, 'user'),
       CASE WHEN w % 7 = 0 THEN 'Inhaber.' || w || '@Werkstatt-Mail.DE' ELSE 'inhaber' || w || '@werkstatt-mail.de' END,
       pg_temp.pick(ARRAY['Jürgen Weiß', 'Dr. Ayşe Demir', 'Zoë van der Berg', 'Łukasz Nowak', 'Renée O''Connor'], w, 'un'),
       'owner', 'bcrypt$' || md5(w::text), pg_temp.ts(w, 'ul'), pg_temp.ts(w, 'uc'), pg_temp.ts(w, 'uu')
  FROM generate_series(1, 300) w;

-- workshops ----------------------------------------------------------------------------------------------
INSERT INTO workshops (id, owner_id, name, slug, owner_email, phone, address, city, postal_code, business_type,
                       opening_hours, services, logo_url, website, is_active, created_at, updated_at)
SELECT pg_temp.u(w, 'ws'), pg_temp.u(w, 'user'),
       pg_temp.pick(ARRAY['Kfz-Meisterbetrieb', 'Autohaus', 'Reifen & Service', 'Karosserie- und Lackzentrum'], w, 'wn')
           || ' ' || pg_temp.pick(ARRAY['Schmidt', 'Öztürk', 'Große', 'Nguyễn', 'Dubois'], w, 'wn2') || ' ' || w,
       'werkstatt-' || w,
       CASE WHEN w % 7 = 0 THEN 'INHABER.' || w || '@werkstatt-mail.de' ELSE 'inhaber' || w || '@werkstatt-mail.de' END,
       '+49 30 ' || (1000000 + w), 'Industriestraße ' || w,
       pg_temp.pick(ARRAY['Berlin', 'München', 'Köln', 'Frankfurt am Main', 'Görlitz', 'Halle (Saale)'], w, 'wc'),
       CASE WHEN w % 11 = 0 THEN ' ' || lpad((10000 + w * 37)::text, 5, '0') ELSE lpad((10000 + w * 37)::text, 5, '0') END,
       pg_temp.pick(ARRAY['independent', 'Freie Werkstatt', ' FRANCHISE', 'dealership', 'Specialist'], w, 'wb'),
       jsonb_build_object('mo', '08:00-18:00', 'sa', CASE WHEN w % 2 = 0 THEN '09:00-13:00' END),
       ARRAY['inspektion', 'reifenwechsel', 'hu_au'],
       NULL, 'https://werkstatt-' || w || '.example', w % 50 <> 0, pg_temp.ts(w, 'wcr'), pg_temp.ts(w, 'wup')
  FROM generate_series(1, 300) w;

-- customers: 2,000 per workshop at fraction 1 ----------------------------------------------------------------
INSERT INTO customers (id, workshop_id, name, email, phone, address, city, postal_code, active, marketing_consent,
                       created_at, updated_at)
SELECT pg_temp.u(c, 'cust'), pg_temp.u(1 + c % 300, 'ws'),
       CASE WHEN c % 1000 = 3 THEN NULL
            WHEN c % 1000 = 5 THEN '   '
            WHEN c % 997 = 1 THEN 'Ｍａｘ Ｍüller'                      -- fullwidth
            WHEN c % 991 = 1 THEN 'Anna' || chr(8203) || ' Schulz'     -- zero-width space
            WHEN c % 983 = 1 THEN 'Rene' || chr(769) || ' Fischer'     -- combining acute
            ELSE pg_temp.pick(ARRAY['Dr.', '', '', '', '', '', 'Prof. Dr.', 'Frau', 'Herr', ''], c, 'ct')
                 || CASE WHEN pg_temp.h(c, 'ct') % 10 IN (0, 6, 7, 8) THEN ' ' ELSE '' END
                 || pg_temp.pick(ARRAY['Hans', 'Anna-Lena', 'Jürgen', 'Ömer', 'Zoë', 'Łukasz', 'Marie Luise', 'Kai',
                                       'Sören', 'Aylin', 'José', 'Siobhán'], c, 'cf')
                 || ' ' || pg_temp.pick(ARRAY['Müller', 'von der Heide', 'Schmidt-Rottluff', 'O''Brien', 'de la Cruz',
                                              'Nguyễn', 'Weiß', 'zu Guttenberg', 'Yılmaz', 'Schulze'], c, 'cl')
       END,
       CASE WHEN c % 40 = 0 THEN NULL
            WHEN c % 53 = 0 THEN 'kein'
            WHEN c % 61 = 0 THEN ' Kunde.' || c || '@Example.DE '
            ELSE 'kunde' || c || '@example.de' END,
       CASE WHEN c % 30 = 0 THEN NULL ELSE '0' || (1500000000 + c) END,
       'Hauptstraße ' || (c % 180 + 1),
       pg_temp.pick(ARRAY['Berlin', 'München', 'Köln', 'Düsseldorf', 'Görlitz', ' Leipzig'], c, 'cc'),
       CASE WHEN c % 97 = 0 THEN '1010' WHEN c % 89 = 0 THEN ' 10115 ' ELSE lpad((c % 89999 + 10000)::text, 5, '0') END,
       c % 23 <> 0, CASE WHEN c % 3 = 0 THEN NULL ELSE c % 3 = 1 END,
       pg_temp.ts(c, 'ccr'), pg_temp.ts(c, 'cup')
  FROM generate_series(1, (SELECT round(600000 * f) FROM tenant_n)::bigint) c;

-- chat_messages: conversations of 4; conversation k belongs to workshop 1 + k % 300 --------------------------
INSERT INTO chat_messages (id, workshop_id, kunde_id, lead_id, sender, message, metadata, created_at)
SELECT m, pg_temp.u(1 + k % 300, 'ws'), 'web-' || md5('conv/' || k),
       CASE WHEN k % 5 = 0 THEN pg_temp.u(k / 5, 'lead') END,
       CASE m % 4 WHEN 1 THEN 'user' WHEN 2 THEN 'bot' WHEN 3 THEN 'user' ELSE 'bot' END,
       CASE WHEN m % 4 = 1 THEN pg_temp.pick(ARRAY['Hallo, mein Auto macht Geräusche 🚗💥',
                                                     'Brauche einen Termin für HU/AU', 'مرحبا، أحتاج موعدًا',
                                                     'Kann ich morgen um 8:00 vorbeikommen?', ''], m, 'mt')
            WHEN m % 4 = 2 THEN 'Gern! Wann passt es Ihnen?'
            WHEN m % 4 = 3 THEN 'Dienstag ' || (m % 12 + 7) || ' Uhr'
            ELSE 'Danke, bis dann 👍' END,
       CASE WHEN m % 9 = 0 THEN jsonb_build_object('intent', 'termin', 'confidence', (m % 100) / 100.0) END,
       CASE WHEN m % 400009 = 5 THEN 'infinity'::timestamptz
            ELSE '2022-01-01 00:00:00+00'::timestamptz + (pg_temp.h(k, 'conv') % 90000000) * interval '1 second'
                 + (m % 4) * interval '47 seconds' END
  FROM (SELECT m, (m - 1) / 4 AS k
          FROM generate_series(1, (SELECT round(2000000 * f) FROM tenant_n)::bigint) m) s;
SELECT setval(pg_get_serial_sequence('chat_messages', 'id'), greatest(1, (SELECT max(id) FROM chat_messages)));

-- leads: 2,000 per workshop at fraction 1; the first fifth of them own a conversation --------------------------
INSERT INTO leads (id, workshop_id, kunde_id, name, email, telefon, anliegen, fahrzeug, status, priority, lead_score,
                   chatverlauf, source, consent_given, consent_at, "timestamp", created_at, updated_at)
SELECT pg_temp.u(l, 'lead'), pg_temp.u(1 + (l * 5) % 300, 'ws'),
       CASE WHEN l * 5 < (SELECT round(500000 * f) FROM tenant_n) THEN 'web-' || md5('conv/' || (l * 5)) END,
       pg_temp.pick(ARRAY['Max Mustermann', 'Ayşe', 'Dr. Jürgen von Berg', NULL, 'Zoë O''Neil'], l, 'ln'),
       CASE WHEN l % 17 = 0 THEN 'keine@' WHEN l % 13 = 0 THEN NULL ELSE 'Lead' || l || '@Mail.example' END,
       '+49 170 ' || (l % 9000000 + 1000000),
       pg_temp.pick(ARRAY[E'Inspektion fällig\nbitte Rückruf', 'Bremsen quietschen', E'  \n  ', 'Reifenwechsel 4x',
                          'Klimaanlage ❄️ defekt'], l, 'la'),
       pg_temp.pick(ARRAY['VW Golf 7', 'BMW 320d', 'Škoda Octavia', NULL], l, 'lf'),
       pg_temp.pick(ARRAY['neu', 'New', ' contacted', 'qualified', 'converted', 'LOST', 'spam'], l, 'ls'),
       pg_temp.pick(ARRAY['high', 'Medium', 'low', NULL, 'URGENT'], l, 'lp'),
       CASE WHEN l % 29 = 0 THEN -5 WHEN l % 31 = 0 THEN 250 ELSE (l % 100)::integer END,
       CASE l % 6
            WHEN 0 THEN jsonb_build_array(jsonb_build_object('role', 'user', 'text', 'Hallo'),
                                          jsonb_build_object('role', 'bot', 'text', 'Willkommen'))
            WHEN 1 THEN jsonb_build_object('role', 'user', 'text', 'nur eine Nachricht')
            WHEN 2 THEN to_jsonb('[{"role": "user", "text": "als String gespeichert"}]'::text)
            WHEN 3 THEN to_jsonb('kein JSON {'::text)
            WHEN 4 THEN 'null'::jsonb
       END,
       pg_temp.pick(ARRAY['widget', 'WhatsApp', 'phone', 'email ', 'widget'], l, 'lso'),
       CASE WHEN l % 4 = 0 THEN NULL ELSE l % 4 <> 1 END,
       CASE WHEN l % 4 IN (2, 3) THEN pg_temp.ts(l, 'lca') END,
       pg_temp.ts(l, 'lts'), pg_temp.ts(l, 'lcr'), pg_temp.ts(l, 'lup')
  FROM generate_series(1, (SELECT round(600000 * f) FROM tenant_n)::bigint) l;

-- appointments: half per customer of the same workshop ------------------------------------------------------
INSERT INTO appointments (id, workshop_id, customer_id, vehicle_id, lead_id, appointment_date, appointment_time,
                          duration_minutes, status, notes, created_at, updated_at)
SELECT pg_temp.u(a, 'appt'), pg_temp.u(1 + c % 300, 'ws'), pg_temp.u(c, 'cust'), NULL,
       CASE WHEN a % 10 = 0 THEN pg_temp.u(a % (SELECT round(600000 * f) FROM tenant_n)::bigint + 1, 'lead') END,
       CASE WHEN a % 1009 = 0 THEN DATE '2024-02-29' ELSE DATE '2023-01-02' + (pg_temp.h(a, 'ad') % 1100)::integer END,
       CASE WHEN a % 211 = 0 THEN TIME '00:00' WHEN a % 223 = 0 THEN NULL
            ELSE TIME '07:30' + (pg_temp.h(a, 'at') % 20) * interval '30 minutes' END,
       CASE WHEN a % 101 = 0 THEN 0 ELSE 30 + (a % 4) * 30 END,
       pg_temp.pick(ARRAY['scheduled', 'Confirmed', 'completed', 'cancelled', 'no_show', ' SCHEDULED'], a, 'as'),
       CASE WHEN a % 3 = 0 THEN 'Ölwechsel + Bremsen prüfen' END,
       pg_temp.ts(a, 'acr'), pg_temp.ts(a, 'aup')
  FROM (SELECT a, 1 + pg_temp.h(a, 'ac') % (SELECT round(600000 * f) FROM tenant_n)::bigint AS c
          FROM generate_series(1, (SELECT round(300000 * f) FROM tenant_n)::bigint) a) s;
