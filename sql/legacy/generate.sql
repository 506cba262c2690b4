-- Deterministic synthetic data for the legacy CarBot schema (../../shared/legacy-schema.md).
--
-- Parameters (custom settings, set with set_config before running this file):
--   carbot.seed   integer 0 .. 9e12  same seed + same scale => byte-identical data
--   carbot.scale  numeric > 0        1.0 = the upper production estimates (see volumes below)
-- Optional tenant shape (unset or '' = the default mix below; bench/README.md, "data shape"):
--   carbot.workshops                  integer > 0  workshops instead of round(500 * scale)
--   carbot.customers_per_workshop     integer > 0  customers = workshops * this (on average: the workshops
--                                                  of child rows stay skewed towards low numbers)
--   carbot.leads_per_workshop         integer > 0  leads = workshops * this
--   carbot.messages_per_conversation  integer > 0  average chat messages per conversation (default 8:
--                                                  conversations of 2..14 messages; m gives max(1, m-6)..2m-max(1, m-6))
-- Every other volume still follows the scale (chat_messages included: the shape sets how they group).
-- Runs with search_path set to the legacy schema (no schema is named here). TRUNCATEs the 25
-- tables first, then fills them set-based (generate_series + INSERT ... SELECT, no row loops),
-- then moves the bigserial sequences past max(id) so that later application inserts never collide.
--
-- Determinism: no random(), no now(). Every value is derived from
--   pg_temp.r(n, salt) = hashint8extended(n, seed*1000 + salt) mapped to [0,1)
-- (n = row number of the table, salt = one constant per field), ids are md5(seed:table:n)::uuid and
-- "now" is the fixed instant 2025-11-01 00:00:00+00. Execution order and plan shape do not matter.
-- Helper functions live in pg_temp (gone at session end); the legacy schema gets nothing but rows.
--
-- Volumes at scale 1.0 (each round(base * scale), with small floors so that tiny scales stay coherent;
-- mirrored by plugins/module_utils/legacy_data.py:expected_volumes):
--   workshops 500 (>= 8) + 1% "gone" workshops (>= 1) that no longer exist but whose child rows remain
--   users 1,500   team_members 1,200   customers 100,000   vehicles 1.2/customer   leads 50,000
--   lead_notes 30,000   chat_messages 500,000 (conversations of 2..14 messages)   analytics_events 1,000,000
--   services 20/workshop   appointments 30,000   appointment_services ~1.5/appointment (~45,000)
--   workshop_closures 2,000   reviews 8,000   subscriptions 1-2/workshop (~1.2)   invoices 10,000
--   chatbot_settings 1/workshop   faq_entries 15/workshop   email_templates 5/workshop
--   notifications 50,000   api_keys 300   webhooks 200   audit_logs 200,000   gdpr_requests 100
--   consent_log 60,000
--
-- Dirt, per table (proportions of that table's rows). Every kind is also forced onto a fixed small row
-- number, so that it exists at any scale (in tiny tables at tiny scales it is then more than the %):
--   users         email mixed case (~50% not lower case); emails differing only in case (0.3%);
--                 full_name NULL (3%); password_hash NULL (1%, invited, never activated)
--   workshops     owner_id NULL (0.5%) or dangling (0.5%); one owner owning several workshops in different
--                 cities with owner_email in a different case (4%); postal_code ' 10115' (1%), 4 digits
--                 ('1067', lost leading zero or cut, 1%), NULL (1%); business_type NULL (5%) and
--                 'Freie Werkstatt' (3%); website without scheme (10%); services '{}' (3%) / NULL (10%);
--                 opening_hours in two jsonb shapes (5% free text) / NULL (10%)
--   team_members  orphan workshop (0.5%); dangling user (0.5%); accepted_at NULL (10%)
--   customers     orphans: workshop gone (0.5%); duplicates of the previous customer in the same workshop
--                 (0.5%); name NULL (1%), '' (0.5%), padded '  Müller ' (1.5%), single name 'Ömer' (1.5%),
--                 'van der Berg, Jan' order (1.5%), titles 'Dr. Anna-Lena von Berg' (1%), 'Max Mustermann'
--                 (0.5%), ALL CAPS (1%), lower case (0.5%), nobiliary particles (part of normal names);
--                 email NULL (8%), 'max@' (0.5%), 'kein'/'keine Angabe'/'-' (0.5%), 'MAX@WEB.DE ' (1%),
--                 mixed case (3%), umlaut local part (0.2%), no TLD (0.3%); phone in 6 formats / NULL (10%);
--                 city lower case / trailing blank (2%); postal_code ' 10115' / 4 digits / '10115 Berlin'
--                 (0.5% each); marketing_consent NULL (30%); updated_at < created_at (0.2%)
--   vehicles      orphan customer (0.3%); workshop differs from the customer's (0.3%); make spelled
--                 'VW'/'vw'/'Mercedes' vs 'Volkswagen'/'Mercedes-Benz' (~15%); year 0 (0.5%), future
--                 (0.3%), two digits (0.2%), NULL (3%); plates 'B-AB 1234' (normal), 'b ab1234' (2%),
--                 'BAB1234' (1%), 'B AB 1234' (1%), 'unbekannt' (0.2%), NULL (5%); VIN garbage (2%) / NULL
--                 (30%); mileage negative (0.3%), 9999999 (0.1%), NULL (10%); fuel_type NULL (10%), English
--                 'petrol'/'diesel' and 'Super E10' (~3% each) next to 'Benzin'/'Diesel'
--   leads         orphans: workshop gone (0.3%); status new/contacted/qualified/converted/lost/spam plus
--                 NULL (2%) and 'neu' (3%); priority NULL (8%); lead_score < 0 (1%), > 100 (1%), NULL (5%);
--                 chatverlauf array (80%), JSON string (4%), object (2%), NULL (14%); consent_given NULL
--                 (20%); consent_at NULL although consent_given (3%); name/email/phone dirt as customers
--   lead_notes    orphan lead (0.5%); user NULL (15%) or dangling (0.3%)
--   chat_messages conversations = (workshop_id, kunde_id); emoji (~10%), arbitrary Unicode (0.5%: RTL,
--                 CJK, combining marks, ZWJ, U+2028, BOM, control characters, random code points of all
--                 planes; never NUL), very long texts 6-60 kB (0.05%), '' and blank (0.3%), HTML/SQL-ish
--                 text; lead_id dangling (0.1%); metadata NULL (30%); orphans via the conversation's
--                 workshop (0.3%)
--   analytics     orphan workshop (0.3%); kunde_id NULL (30%); legacy event_type 'WidgetOpen' (0.5%);
--                 event_data NULL (25%); ip_address IPv4 (80%), IPv6 (10%), private/loopback (0.6%), NULL
--   services      for gone workshops too (orphans); price NULL (5%) / 0 (2%); duration NULL (5%)
--   appointments  local date + time; times in DST gaps (2025-03-30 02:30 does not exist in Europe/Berlin,
--                 2025-10-26 02:30 is ambiguous; 0.1%); '00:00' placeholder (0.5%); customer NULL (5%);
--                 vehicle NULL (8%) or dangling (0.3%); 'completed' in the future (0.2%)
--   appointment_services  missing service (1%); orphan appointment (0.3%); price NULL (10%)
--   workshop_closures     orphan (0.5%); duplicate (workshop, date) (1%); reason NULL (20%)
--   reviews       rating 0 (0.5%) and 6 (0.5%); customer NULL (25%) or deleted (1%); comment NULL (30%)
--   subscriptions gone workshops keep theirs; trialing without stripe_subscription_id
--   invoices      currency 'eur' (75%) / 'EUR' (25%); subscription_id NULL (2%); amount 0 (1%) and
--                 negative (0.3%); paid without paid_at (0.5%); stripe_invoice_id NULL for drafts
--   chatbot_settings  language NULL (8%); colour in 4 notations; settings NULL (10%); orphans (gone ws)
--   faq_entries / email_templates  orphans (gone workshops); sort_order NULL (10%) / duplicated
--   notifications orphan workshop (0.5%); user NULL (30%) or dangling (0.3%)
--   api_keys / webhooks  orphan workshop (1%); webhook url http:// / localhost (3%), events '{}' / NULL
--   audit_logs    workshop NULL (5%) / gone (0.5%); entity_id uuid / number / NULL; changes NULL (30%)
--   gdpr_requests workshop NULL (10%); requester_email mixed case / trailing blank
--   consent_log   orphans via conversation workshop (0.3%); source NULL (10%)

-- Session settings that could otherwise change the data (day arithmetic on timestamptz depends on TimeZone).
SET LOCAL timezone = 'UTC';
SET LOCAL datestyle = 'ISO, YMD';
SET LOCAL intervalstyle = 'postgres';
SET LOCAL extra_float_digits = 1;
SET LOCAL jit = off;  -- compiling these wide expressions costs more than it saves (~0.3 s per statement)

-- Parameters, volumes and the deterministic helper functions (in pg_temp, with the seed baked in). ----
DO $gen$
DECLARE
    v_seed  bigint := nullif(current_setting('carbot.seed', true), '')::bigint;
    v_scale numeric := nullif(current_setting('carbot.scale', true), '')::numeric;
    w bigint; g bigint; c bigint; l bigint; cm bigint; k bigint;
    v_ws bigint := nullif(current_setting('carbot.workshops', true), '')::bigint;
    v_cpw bigint := nullif(current_setting('carbot.customers_per_workshop', true), '')::bigint;
    v_lpw bigint := nullif(current_setting('carbot.leads_per_workshop', true), '')::bigint;
    v_mpc bigint := coalesce(nullif(current_setting('carbot.messages_per_conversation', true), '')::bigint, 8);
    m_lo bigint; m_hi bigint;
    vols text;
BEGIN
    IF v_seed IS NULL OR v_scale IS NULL THEN
        RAISE EXCEPTION 'set carbot.seed and carbot.scale first (SELECT set_config(''carbot.seed'', ''42'', false))';
    END IF;
    IF v_scale <= 0 OR v_seed < 0 OR v_seed > 9000000000000 THEN
        RAISE EXCEPTION 'carbot.scale must be > 0 and carbot.seed in 0..9e12 (got %, %)', v_scale, v_seed;
    END IF;
    IF v_ws <= 0 OR v_cpw <= 0 OR v_lpw <= 0 OR v_mpc <= 0 THEN
        RAISE EXCEPTION 'carbot.workshops, carbot.customers_per_workshop, carbot.leads_per_workshop and '
                        'carbot.messages_per_conversation must be > 0 (got %, %, %, %)', v_ws, v_cpw, v_lpw, v_mpc;
    END IF;
    w  := coalesce(v_ws, greatest(8, round(500 * v_scale)));
    g  := greatest(1, round(w * 0.01));
    c  := coalesce(w * v_cpw, greatest(50, round(100000 * v_scale)));
    l  := coalesce(w * v_lpw, greatest(50, round(50000 * v_scale)));
    cm := greatest(200, round(500000 * v_scale));
    m_lo := greatest(1, v_mpc - 6);
    m_hi := 2 * v_mpc - m_lo;
    k  := greatest(l + 1, ceil(cm * 1.1 / v_mpc));
    vols := format($v$
        SELECT CASE t
            WHEN 'workshops' THEN %s WHEN 'gone' THEN %s WHEN 'users' THEN %s WHEN 'team_members' THEN %s
            WHEN 'customers' THEN %s WHEN 'vehicles' THEN %s WHEN 'leads' THEN %s WHEN 'lead_notes' THEN %s
            WHEN 'chat_messages' THEN %s WHEN 'conversations' THEN %s WHEN 'analytics_events' THEN %s
            WHEN 'appointments' THEN %s WHEN 'workshop_closures' THEN %s WHEN 'reviews' THEN %s
            WHEN 'invoices' THEN %s WHEN 'notifications' THEN %s WHEN 'api_keys' THEN %s
            WHEN 'webhooks' THEN %s WHEN 'audit_logs' THEN %s WHEN 'gdpr_requests' THEN %s
            WHEN 'consent_log' THEN %s WHEN 'msg_lo' THEN %s WHEN 'msg_hi' THEN %s END::bigint $v$,
        w, g, greatest(round(1500 * v_scale), 2 * w + 4), greatest(round(1200 * v_scale), w + 4),
        c, round(c * 1.2), l, greatest(20, round(30000 * v_scale)),
        cm, k, greatest(200, round(1000000 * v_scale)),
        greatest(50, round(30000 * v_scale)), greatest(10, round(2000 * v_scale)), greatest(20, round(8000 * v_scale)),
        greatest(20, round(10000 * v_scale)), greatest(20, round(50000 * v_scale)), greatest(4, round(300 * v_scale)),
        greatest(4, round(200 * v_scale)), greatest(50, round(200000 * v_scale)), greatest(4, round(100 * v_scale)),
        greatest(50, round(60000 * v_scale)), m_lo, m_hi);
    EXECUTE format('CREATE OR REPLACE FUNCTION pg_temp.vol(t text) RETURNS bigint LANGUAGE sql IMMUTABLE AS %L',
                   vols);
    -- uniform [0,1) from (seed, row number, field salt)
    EXECUTE format($f$CREATE OR REPLACE FUNCTION pg_temp.r(n bigint, salt int) RETURNS float8
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
        'SELECT (hashint8extended(n, %s::bigint + salt) & 9007199254740991)::float8 / 9007199254740992.0'$f$,
        v_seed * 1000);
    -- deterministic ids: md5(seed:table:n)::uuid
    EXECUTE format($f$CREATE OR REPLACE FUNCTION pg_temp.id(tbl text, n bigint) RETURNS uuid
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $b$SELECT md5(%L || tbl || ':' || n::text)::uuid$b$$f$,
        v_seed::text || ':');
    EXECUTE format($f$CREATE OR REPLACE FUNCTION pg_temp.h(tbl text, n bigint) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $b$SELECT md5(%L || tbl || ':' || n::text)$b$$f$,
        v_seed::text || ':h:');
END
$gen$;

-- integer in [lo, hi]
CREATE OR REPLACE FUNCTION pg_temp.ri(n bigint, salt int, lo bigint, hi bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT lo + floor(pg_temp.r(n, salt) * (hi - lo + 1))::bigint$$;

-- element of a text array chosen by x in [0,1)
CREATE OR REPLACE FUNCTION pg_temp.pick(arr text[], x float8) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT arr[1 + floor(x * cardinality(arr))::int]$$;

-- a fixed instant 'days' days or less before "now" (2025-11-01 00:00:00+00), whole seconds
CREATE OR REPLACE FUNCTION pg_temp.ago(n bigint, salt int, days int) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT to_timestamp(1761955200 - floor(pg_temp.r(n, salt) * days * 86400))$$;

-- the workshop number of a child row: skewed towards low numbers (big workshops); with probability p
-- (and always for row 'forced') one of the gone workshops (W+1 .. W+G): an orphan.
CREATE OR REPLACE FUNCTION pg_temp.ws(n bigint, salt int, p float8, forced bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT CASE WHEN n = forced OR pg_temp.r(n, salt + 1) < p
              THEN pg_temp.vol('workshops') + 1 + floor(pg_temp.r(n, salt + 2) * pg_temp.vol('gone'))::bigint
              ELSE 1 + floor(power(pg_temp.r(n, salt), 1.4) * pg_temp.vol('workshops'))::bigint END$$;

CREATE OR REPLACE FUNCTION pg_temp.translit(x text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
    lower(x), 'ä', 'ae'), 'ö', 'oe'), 'ü', 'ue'), 'ß', 'ss'), 'ı', 'i'), 'ş', 's'), 'ç', 'c'), 'ś', 's'),
    ' ', ''), '-', ''), 'ğ', 'g')$$;

CREATE OR REPLACE FUNCTION pg_temp.first_name(n bigint, salt int) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT pg_temp.pick(ARRAY[
    'Thomas','Michael','Andreas','Stefan','Christian','Markus','Daniel','Alexander','Jan','Lukas','Felix',
    'Jonas','Leon','Paul','Maximilian','Tobias','Sebastian','Matthias','Jürgen','Klaus','Uwe','Frank','Peter',
    'Wolfgang','Dieter','Hans-Peter','Karl-Heinz','Björn','Sören','Jörg','Mehmet','Ömer','Ali','Mustafa',
    'Piotr','Tomasz','Dmitri','Luca','Marco','Nikola','Anna','Julia','Laura','Lea','Sarah','Lisa','Katharina',
    'Sabine','Petra','Monika','Claudia','Andrea','Stefanie','Nicole','Susanne','Birgit','Ursula','Hannah',
    'Emma','Mia','Sophie','Marie','Anna-Lena','Lena','Jana','Ayşe','Elif','Fatma','Zeynep','Agnieszka',
    'Katarzyna','Olga','Natalia','Giulia','Maria','Chiara','Ewa','Jens','Kerstin','Heike'], pg_temp.r(n, salt))$$;

CREATE OR REPLACE FUNCTION pg_temp.last_name(n bigint, salt int) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT pg_temp.pick(ARRAY[
    'Müller','Schmidt','Schneider','Fischer','Weber','Meyer','Wagner','Becker','Schulz','Hoffmann','Schäfer',
    'Koch','Bauer','Richter','Klein','Wolf','Schröder','Neumann','Schwarz','Zimmermann','Braun','Krüger',
    'Hofmann','Hartmann','Lange','Schmitt','Werner','Schmitz','Krause','Meier','Lehmann','Schmid','Schulze',
    'Maier','Köhler','Herrmann','König','Walter','Mayer','Huber','Kaiser','Fuchs','Peters','Lang','Scholz',
    'Möller','Weiß','Jung','Hahn','Schubert','Vogel','Friedrich','Keller','Günther','Frank','Berger','Winkler',
    'Roth','Beck','Lorenz','Baumann','Franke','Albrecht','Schuster','Simon','Ludwig','Böhm','Winter','Kraus',
    'Martin','Schumacher','Krämer','Vogt','Stein','Jäger','Otto','Sommer','Groß','Seidel','Heinrich','Brandt',
    'Haas','Schreiber','Graf','Schulte','Dietrich','Ziegler','Kuhn','Kühn','Pohl','Engel','Horn','Busch',
    'Bergmann','Voigt','Sauer','Arnold','Wolff','Pfeiffer','Yılmaz','Kaya','Demir','Şahin','Çelik','Öztürk',
    'Kowalski','Nowak','Wiśniewski','Nguyen','Popescu','Ivanov','Rossi','von Berg','von der Heide',
    'van der Berg','de Vries','zu Salm'], pg_temp.r(n, salt))$$;

-- 'Berlin|B|10115|14199': city, plate prefix, postal code range
CREATE OR REPLACE FUNCTION pg_temp.city(i bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT (ARRAY[
    'Berlin|B|10115|14199','Hamburg|HH|20095|22769','München|M|80331|81929','Köln|K|50667|51149',
    'Frankfurt am Main|F|60306|60599','Stuttgart|S|70173|70629','Düsseldorf|D|40210|40629','Leipzig|L|04103|04357',
    'Dortmund|DO|44135|44388','Essen|E|45127|45359','Bremen|HB|28195|28779','Dresden|DD|01067|01328',
    'Hannover|H|30159|30669','Nürnberg|N|90402|90491','Duisburg|DU|47051|47279','Bochum|BO|44787|44894',
    'Wuppertal|W|42103|42399','Bielefeld|BI|33602|33739','Bonn|BN|53111|53229','Münster|MS|48143|48167',
    'Mannheim|MA|68159|68309','Karlsruhe|KA|76131|76229','Augsburg|A|86150|86199','Wiesbaden|WI|65183|65207',
    'Mönchengladbach|MG|41061|41239','Gelsenkirchen|GE|45879|45899','Aachen|AC|52062|52080',
    'Braunschweig|BS|38100|38126','Kiel|KI|24103|24159','Chemnitz|C|09111|09247','Halle (Saale)|HAL|06108|06132',
    'Magdeburg|MD|39104|39130','Freiburg im Breisgau|FR|79098|79117','Krefeld|KR|47798|47839',
    'Mainz|MZ|55116|55131','Lübeck|HL|23552|23570','Erfurt|EF|99084|99099','Rostock|HRO|18055|18147',
    'Kassel|KS|34117|34134','Potsdam|P|14467|14482','Saarbrücken|SB|66111|66133','Regensburg|R|93047|93059',
    'Würzburg|WÜ|97070|97084','Ulm|UL|89073|89081','Göttingen|GÖ|37073|37085','Osnabrück|OS|49074|49090'
    ])[1 + (i % 46)::int]$$;

CREATE OR REPLACE FUNCTION pg_temp.street(n bigint, salt int) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT pg_temp.pick(ARRAY[
    'Hauptstraße','Bahnhofstraße','Gartenstraße','Schulstraße','Dorfstraße','Bergstraße','Lindenstraße',
    'Kirchstraße','Waldstraße','Ringstraße','Friedrichstraße','Goethestraße','Schillerstraße','Mozartstraße',
    'Am Markt','Industriestraße','Gewerbering','Kantstraße','Berliner Straße','Münchner Straße',
    'Hamburger Allee','Rosenweg','Birkenweg','Eichendorffstraße','Mühlenweg','Feldstraße','Raiffeisenstraße',
    'Max-Planck-Straße','Carl-Benz-Straße','Robert-Bosch-Straße','Im Gewerbegebiet','An der B 27',
    'Kölner Landstraße','Frankfurter Ring','Otto-Hahn-Straße','Siemensstraße','Daimlerstraße'], pg_temp.r(n, salt))
    || ' ' || pg_temp.ri(n, salt + 1, 1, 180)::text
    || CASE WHEN pg_temp.r(n, salt + 2) < 0.08 THEN 'a' ELSE '' END$$;

-- German phone numbers in the formats people type
CREATE OR REPLACE FUNCTION pg_temp.phone(n bigint, salt int) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT CASE floor(pg_temp.r(n, salt) * 6)::int
    WHEN 0 THEN '+49 ' || pg_temp.ri(n, salt + 1, 151, 179)::text || ' ' || pg_temp.ri(n, salt + 2, 1000000, 9999999)::text
    WHEN 1 THEN '0' || pg_temp.ri(n, salt + 1, 151, 179)::text || ' ' || pg_temp.ri(n, salt + 2, 1000000, 9999999)::text
    WHEN 2 THEN '0' || pg_temp.ri(n, salt + 1, 151, 179)::text || pg_temp.ri(n, salt + 2, 1000000, 9999999)::text
    WHEN 3 THEN '0' || pg_temp.ri(n, salt + 1, 30, 89)::text || '/' || pg_temp.ri(n, salt + 2, 100000, 9999999)::text
    WHEN 4 THEN '(0' || pg_temp.ri(n, salt + 1, 201, 991)::text || ') ' || pg_temp.ri(n, salt + 2, 10, 99)::text
                || ' ' || pg_temp.ri(n, salt + 3, 10, 99)::text || ' ' || pg_temp.ri(n, salt + 4, 10, 99)::text
    ELSE '+49' || pg_temp.ri(n, salt + 1, 151, 179)::text || pg_temp.ri(n, salt + 2, 1000000, 9999999)::text
    END$$;

-- a clean e-mail address for a person
CREATE OR REPLACE FUNCTION pg_temp.mail(n bigint, salt int, fn text, ln text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT CASE WHEN pg_temp.r(n, salt) < 0.25 THEN left(pg_temp.translit(fn), 1) ELSE pg_temp.translit(fn) || '.' END
    || pg_temp.translit(ln)
    || CASE WHEN pg_temp.r(n, salt + 1) < 0.3 THEN pg_temp.ri(n, salt + 2, 60, 99)::text ELSE '' END
    || '@' || pg_temp.pick(ARRAY['web.de','gmx.de','gmail.com','t-online.de','outlook.de','yahoo.de','freenet.de',
                                 'icloud.com','gmx.net','posteo.de','mail.de','hotmail.com'], pg_temp.r(n, salt + 3))$$;

-- vehicle model catalogue: make|model|WMI
CREATE OR REPLACE FUNCTION pg_temp.model(i bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT (ARRAY[
    'Volkswagen|Golf|WVW','Volkswagen|Golf|WVW','Volkswagen|Passat|WVW','Volkswagen|Polo|WVW','Volkswagen|Tiguan|WVG',
    'Volkswagen|Transporter T6|WV2','Volkswagen|Touran|WVG','Volkswagen|Caddy|WV1','Volkswagen|ID.3|WVW',
    'Mercedes-Benz|C-Klasse|WDD','Mercedes-Benz|E-Klasse|WDD','Mercedes-Benz|A-Klasse|WDD','Mercedes-Benz|Sprinter|WDB',
    'Mercedes-Benz|Vito|WDF','Mercedes-Benz|GLC|W1N','BMW|3er|WBA','BMW|1er|WBA','BMW|5er|WBA','BMW|X1|WBA','BMW|X3|WBX',
    'Audi|A3|WAU','Audi|A4|WAU','Audi|A6|WAU','Audi|Q3|WAU','Audi|Q5|WA1','Opel|Astra|W0L','Opel|Corsa|W0L',
    'Opel|Insignia|W0L','Opel|Zafira|W0L','Ford|Focus|WF0','Ford|Fiesta|WF0','Ford|Transit|WF0','Ford|Kuga|WF0',
    'Skoda|Octavia|TMB','Skoda|Fabia|TMB','Skoda|Superb|TMB','Skoda|Kodiaq|TMB','Seat|Leon|VSS','Seat|Ibiza|VSS',
    'Renault|Clio|VF1','Renault|Megane|VF1','Toyota|Yaris|VNK','Toyota|Corolla|SB1','Toyota|RAV4|JTM',
    'Hyundai|i30|TMA','Hyundai|Tucson|TMA','Fiat|500|ZFA','Fiat|Ducato|ZFA','Tesla|Model 3|LRW','Tesla|Model Y|XP7',
    'Dacia|Sandero|UU1','Dacia|Duster|UU1','Peugeot|208|VF3','Peugeot|308|VF3','Kia|Ceed|U5Y','Kia|Sportage|U5Y',
    'Mazda|CX-5|JMZ','Volvo|XC60|YV1','Porsche|911|WP0','Citroën|C3|VF7'])[1 + (i % 60)::int]$$;

-- a customer's name with the dirt real rows carry (rows 6..10 are the spec's literal examples)
CREATE OR REPLACE FUNCTION pg_temp.person(n bigint, salt int, fn text, ln text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT CASE
    WHEN pg_temp.r(n, salt) < 0.010 THEN NULL
    WHEN pg_temp.r(n, salt) < 0.015 THEN ''
    WHEN pg_temp.r(n, salt) < 0.030 THEN '  ' || ln || ' '
    WHEN pg_temp.r(n, salt) < 0.045 THEN fn
    WHEN pg_temp.r(n, salt) < 0.060 THEN ln || ', ' || fn
    WHEN pg_temp.r(n, salt) < 0.070 THEN pg_temp.pick(ARRAY['Dr. ','Prof. Dr. ','Dipl.-Ing. ','Dr. med. '],
                                                      pg_temp.r(n, salt + 1)) || fn || ' ' || ln
    WHEN pg_temp.r(n, salt) < 0.075 THEN pg_temp.pick(ARRAY['Max Mustermann','Erika Mustermann','Test Test',
                                                            'asdf'], pg_temp.r(n, salt + 1))
    WHEN pg_temp.r(n, salt) < 0.085 THEN upper(fn || ' ' || ln)
    WHEN pg_temp.r(n, salt) < 0.090 THEN lower(fn || ' ' || ln)
    ELSE fn || ' ' || ln END$$;

-- an e-mail field with the dirt real rows carry
CREATE OR REPLACE FUNCTION pg_temp.dirty_mail(n bigint, salt int, em text, fn text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT CASE
    WHEN pg_temp.r(n, salt) < 0.080 THEN NULL
    WHEN pg_temp.r(n, salt) < 0.085 THEN pg_temp.translit(fn) || '@'
    WHEN pg_temp.r(n, salt) < 0.090 THEN pg_temp.pick(ARRAY['kein','keine Angabe','-','n/a'], pg_temp.r(n, salt + 1))
    WHEN pg_temp.r(n, salt) < 0.100 THEN upper(em) || ' '
    WHEN pg_temp.r(n, salt) < 0.130 THEN initcap(em)
    WHEN pg_temp.r(n, salt) < 0.132 THEN lower(fn) || '@web.de'
    WHEN pg_temp.r(n, salt) < 0.135 THEN split_part(em, '.', 1) || '@' || split_part(split_part(em, '@', 2), '.', 1)
    ELSE em END$$;

CREATE OR REPLACE FUNCTION pg_temp.plz(lo text, hi text, x float8) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT lpad((lo::int + floor(x * (hi::int - lo::int + 1))::int)::text, 5, '0')$$;

-- mixed case, as people type it
CREATE OR REPLACE FUNCTION pg_temp.case_variant(n bigint, e text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT CASE WHEN pg_temp.r(n, 204) < 0.5 THEN lower(e)
              WHEN pg_temp.r(n, 204) < 0.8 THEN initcap(e)
              WHEN pg_temp.r(n, 204) < 0.9 THEN upper(e)
              ELSE upper(left(e, 3)) || substr(e, 4) END$$;

-- a user's e-mail address: unique through the user number, mixed case
CREATE OR REPLACE FUNCTION pg_temp.user_email(u bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT pg_temp.case_variant(u, pg_temp.translit(pg_temp.first_name(u, 200)) || '.'
    || pg_temp.translit(pg_temp.last_name(u, 201)) || u::text || '@'
    || pg_temp.pick(ARRAY['web.de','gmx.de','gmail.com','t-online.de','outlook.de','autohaus-mail.de'],
                    pg_temp.r(u, 203)))$$;

CREATE OR REPLACE FUNCTION pg_temp.user_msg(x float8) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT pg_temp.pick(ARRAY[
    'Hallo, ich bräuchte einen Termin für die Inspektion.', 'Was kostet ein Ölwechsel bei einem Golf 7?',
    'Mein Auto macht komische Geräusche beim Bremsen 😟', 'Habt ihr am Samstag geöffnet?',
    'Ich brauche neue Winterreifen ❄️🚗', 'TÜV läuft nächsten Monat ab, geht das noch diese Woche?', 'Danke! 👍',
    'Die Motorkontrollleuchte ist an, was soll ich tun?', 'Können Sie mich zurückrufen? 0171 2345678', 'ok', '??',
    'Klimaanlage riecht muffig', 'Wie lange dauert ein Zahnriemenwechsel?',
    'Wo finde ich euch? Navi findet die Straße nicht',
    'Guten Tag, Unfallschaden hinten links, Versicherung zahlt. Brauche ich einen Gutachter?',
    'hallo ist da jemand', 'Termin am 24.12. möglich? 🎄', 'Ich spreche wenig Deutsch, English ok?',
    'Merhaba, randevu almak istiyorum', 'Cześć, czy mogę umówić wizytę?', 'Reifen einlagern kostet wie viel €?',
    'Mein Kennzeichen ist B-XY 123', 'kann ich mit Karte zahlen 💳', '🚗💨🔧',
    'Vielen Dank für die schnelle Hilfe!! 🙏😊', 'Morgen 8 Uhr passt', 'Geht auch Dienstag nachmittag?',
    'Bremsen vorne und hinten bitte, Audi A4 Bj 2015', 'wie teuer ist HU+AU', 'Batterie ist leer, Pannenhilfe?'],
    x)$$;

CREATE OR REPLACE FUNCTION pg_temp.bot_msg(x float8) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT pg_temp.pick(ARRAY[
    'Hallo! 👋 Ich bin der digitale Assistent der Werkstatt. Wie kann ich helfen?',
    'Gerne! Für welches Fahrzeug (Marke, Modell, Baujahr) möchten Sie einen Termin?',
    'Ein Ölwechsel kostet je nach Fahrzeug zwischen 79 € und 149 €.',
    'Wir haben Mo–Fr 8:00–18:00 und Sa 9:00–13:00 geöffnet.',
    'Ich habe Ihre Anfrage an unser Team weitergeleitet. Wir melden uns innerhalb von 24 Stunden. ✅',
    'Bitte nennen Sie mir Ihre Telefonnummer, damit wir Sie zurückrufen können.',
    'Für die HU/AU (TÜV) haben wir diese Woche noch Termine frei: Do 10:00, Fr 14:30.',
    'Entschuldigung, das habe ich nicht verstanden. Können Sie das anders formulieren?',
    'Sorry, I can answer in English too. How can I help?', 'Ihr Termin ist bestätigt: {{datum}} um {{uhrzeit}} Uhr. 📅',
    'Bitte beachten Sie unsere Datenschutzerklärung: https://www.carbot.example/datenschutz',
    'Hallo, hier ist Jens aus der Werkstatt. Ich schaue mir das an.',
    'Wir können Ihnen morgen um 9 Uhr einen Termin anbieten.', 'Alles klar, bis dann! 🔧'], x)$$;

-- arbitrary Unicode as it arrives through a web widget (never NUL: PostgreSQL text cannot hold it)
CREATE OR REPLACE FUNCTION pg_temp.odd_text(x float8) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT pg_temp.pick(ARRAY[
    E'Zeile 1\nZeile 2\r\nZeile 3\tmit Tab', E'Null\u200Bbreite\u200BLeerzeichen und BOM \uFEFF am Ende',
    E'Trenner\u2028Zeile\u2029Absatz', 'Ça coûte combien? ¿Cuánto cuesta? Сколько стоит? 多少钱？ كم السعر؟',
    '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕿𝖊𝖝𝖙 🧑‍🔧👨‍👩‍👧‍👦🏳️‍🌈🇩🇪', E'NFD: Mu\u0308ller, Stra\u00DFe, e\u0301; NFC: Müller',
    E'Steuerzeichen \u0007 \u001B[31mrot\u001B[0m \u0008', '<script>alert("xss")</script> ''; DROP TABLE leads; --',
    E'\uFFFD\uFFFD kaputt kodiert: MÃ¼ller, StraÃŸe', E'RTL \u202Eabc\u202C und \u200Fمرحبا\u200E',
    'Emoji: 😀😃😄😁😆😅😂🤣🥲☺️😊😇🙂🙃😉😌😍🥰😘', E'gesch\u00ADützt mit wei\u00A0chem Leerzeichen',
    'ﷺ ﷽ ꧅ 𒀱 𓀀 ⸻ ‱', 'Ｆｕｌｌｗｉｄｔｈ ＡＢＣ１２３ ｶﾀｶﾅ'], x)$$;

CREATE OR REPLACE FUNCTION pg_temp.anliegen(x float8) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT pg_temp.pick(ARRAY[
    'Inspektion fällig', 'Bremsen quietschen', 'TÜV/HU Termin', 'Reifenwechsel auf Winterreifen', 'Ölwechsel',
    'Klimaanlage kühlt nicht', 'Motorkontrollleuchte leuchtet', 'Zahnriemenwechsel', 'Unfallschaden hinten links',
    'Auspuff klappert', 'Kostenvoranschlag für Kupplung', 'Scheibe hat Steinschlag', 'Batterie leer',
    'Rückruf wegen Termin', 'Angebot Sommerreifen 205/55 R16', 'Inspektion + HU zusammen', 'Auto zieht nach rechts'],
    x)$$;

-- service catalogue: name|category|base price cents|minutes
CREATE OR REPLACE FUNCTION pg_temp.svc(i bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT (ARRAY[
    'Inspektion|Wartung|18900|120','Ölwechsel|Wartung|8900|45','HU/AU (TÜV)|Prüfung|13900|60',
    'Reifenwechsel|Reifen|4900|30','Reifeneinlagerung|Reifen|5900|15','Bremsen vorne|Reparatur|24900|90',
    'Bremsen hinten|Reparatur|21900|90','Klimaservice|Wartung|9900|60','Zahnriemenwechsel|Reparatur|59900|240',
    'Achsvermessung|Reifen|8900|60','Batterietest|Prüfung|1900|15','Fehlerspeicher auslesen|Diagnose|4900|30',
    'Scheibenreparatur|Karosserie|8900|45','Unfallinstandsetzung|Karosserie|0|480','Lackierung|Karosserie|45000|480',
    'Auspuffreparatur|Reparatur|19900|90','Kupplung erneuern|Reparatur|89900|360','Stoßdämpfer|Reparatur|39900|180',
    'Zündkerzen|Wartung|11900|60','Fahrzeugaufbereitung|Pflege|14900|180','E-Auto Check|Prüfung|7900|60',
    'Wischerblätter|Wartung|2900|15','Urlaubscheck|Prüfung|2900|30','Lichttest|Prüfung|0|15',
    'Ersatzwagen|Service|3900|0','Hol- und Bringservice|Service|2500|0','Standheizung nachrüsten|Umbau|149900|480',
    'Anhängerkupplung|Umbau|79900|240','Getriebeölwechsel|Wartung|24900|90','Dieselpartikelfilter reinigen|Reparatur|34900|180'
    ])[1 + (i % 30)::int]$$;

CREATE OR REPLACE FUNCTION pg_temp.has2subs(w bigint) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT w = 2 OR pg_temp.r(w, 1500) < 0.2$$;

TRUNCATE users, workshops, team_members, customers, vehicles, leads, lead_notes, chat_messages,
    analytics_events, services, appointments, appointment_services, workshop_closures, reviews, subscriptions,
    invoices, chatbot_settings, faq_entries, email_templates, notifications, api_keys, webhooks, audit_logs,
    gdpr_requests, consent_log;

-- Entity keys shared by several tables (numbers, not rows): who belongs to which workshop. -----------
-- Workshops: owner user number, city index. A "chain" workshop is owned by the owner of the previous one
-- and lies in another city.
CREATE TEMP TABLE _ws ON COMMIT DROP AS
SELECT w, chain,
       CASE WHEN chain THEN w - 1 ELSE w END AS owner_no,
       CASE WHEN chain THEN (floor(pg_temp.r(w - 1, 310) * 46)::bigint + 1 + pg_temp.ri(w, 311, 0, 4)) % 46
            ELSE floor(pg_temp.r(w, 310) * 46)::bigint END AS city_no
FROM (SELECT w, w <= pg_temp.vol('workshops') AND (w = 3 OR (w > 3 AND pg_temp.r(w, 301) < 0.04
                 AND pg_temp.r(w - 1, 301) >= 0.04 AND w - 1 <> 3)) AS chain
      FROM generate_series(1, pg_temp.vol('workshops') + pg_temp.vol('gone')) w) s;
ANALYZE _ws;

-- Customers: the duplicate's source row and the workshop (duplicates stay in the source's workshop).
CREATE TEMP TABLE _cust ON COMMIT DROP AS
SELECT c, src, pg_temp.ws(src, 100, 0.005, 1) AS ws
FROM (SELECT c, CASE WHEN c > 1 AND (c = 3 OR pg_temp.r(c, 110) < 0.005) THEN c - 1 ELSE c END AS src
      FROM generate_series(1, pg_temp.vol('customers')) c) s;
CREATE UNIQUE INDEX ON _cust (c);
ANALYZE _cust;

-- Vehicles: owner customer (0.3% gone) and workshop (the customer's; 0.3% another one).
CREATE TEMP TABLE _veh ON COMMIT DROP AS
SELECT v.v, v.cust,
       CASE WHEN v.v = 2 OR pg_temp.r(v.v, 606) < 0.003
            THEN 1 + (coalesce(cu.ws, 0) + pg_temp.ri(v.v, 607, 1, 5)) % pg_temp.vol('workshops')
            ELSE coalesce(cu.ws, pg_temp.ws(v.v, 603, 0, 0)) END AS ws
FROM (SELECT v, CASE WHEN v = 1 OR pg_temp.r(v, 601) < 0.003
                     THEN pg_temp.vol('customers') + v
                     ELSE 1 + floor(pg_temp.r(v, 600) * pg_temp.vol('customers'))::bigint END AS cust
      FROM generate_series(1, pg_temp.vol('vehicles')) v) v
LEFT JOIN _cust cu ON cu.c = v.cust;
CREATE UNIQUE INDEX ON _veh (v);
ANALYZE _veh;

-- Chat conversations (workshop_id, kunde_id): conversation k <= #leads is the chat of lead k.
-- Messages get consecutive ids: off = messages of all earlier conversations.
CREATE TEMP TABLE _conv ON COMMIT DROP AS
SELECT k, ws, kid, t0, nmsg,
       coalesce(sum(nmsg) OVER (ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::bigint AS off
FROM (SELECT k, pg_temp.ws(k, 800, 0.003, 1) AS ws,
             substr(pg_temp.h('kunde', k), 1, 8) || '-' || substr(pg_temp.h('kunde', k), 9, 4) || '-'
                 || substr(pg_temp.h('kunde', k), 13, 12) AS kid,
             1761955200 - 3600 - floor(pg_temp.r(k, 801) * 730 * 86400)::bigint AS t0,
             pg_temp.ri(k, 802, pg_temp.vol('msg_lo'), pg_temp.vol('msg_hi')) AS nmsg
      FROM generate_series(1, pg_temp.vol('conversations')) k) s;
CREATE UNIQUE INDEX ON _conv (k);
ANALYZE _conv;

-- Leads per workshop (to link appointments to a lead of their own workshop).
CREATE TEMP TABLE _lead_ws ON COMMIT DROP AS
SELECT c.ws, row_number() OVER (PARTITION BY c.ws ORDER BY c.k) AS rn, c.k AS lead_no
FROM _conv c WHERE c.k <= pg_temp.vol('leads');
CREATE UNIQUE INDEX ON _lead_ws (ws, rn);
CREATE TEMP TABLE _lead_ws_n ON COMMIT DROP AS SELECT ws, count(*) AS n FROM _lead_ws GROUP BY ws;

-- users ----------------------------------------------------------------------------------------------
INSERT INTO users (id, email, full_name, role, password_hash, last_login_at, created_at, updated_at)
SELECT pg_temp.id('users', u),
       CASE WHEN u > 1 AND (u = 7 OR pg_temp.r(u, 205) < 0.003)      -- differs only in case from user u-1
            THEN CASE WHEN prev_em = lower(prev_em) THEN upper(prev_em) ELSE lower(prev_em) END
            ELSE em END,
       CASE WHEN u = 5 OR pg_temp.r(u, 206) < 0.03 THEN NULL ELSE pg_temp.first_name(u, 200) || ' ' || pg_temp.last_name(u, 201) END,
       CASE WHEN u <= pg_temp.vol('workshops') THEN 'owner'
            WHEN pg_temp.r(u, 207) < 0.03 THEN 'admin' ELSE 'staff' END,
       CASE WHEN u = 9 OR pg_temp.r(u, 208) < 0.01 THEN NULL
            ELSE CASE WHEN pg_temp.r(u, 209) < 0.2 THEN '$2a$10$' ELSE '$2b$12$' END
                 || substr(translate(encode(decode(pg_temp.h('pw', u) || pg_temp.h('pw2', u) || pg_temp.h('pw3', u), 'hex'), 'base64'), '+=', '.'), 1, 53)
            END,
       CASE WHEN pg_temp.r(u, 210) < 0.15 THEN NULL ELSE pg_temp.ago(u, 211, 120) END,
       pg_temp.ago(u, 212, 1500) - interval '120 days',
       pg_temp.ago(u, 213, 120)
FROM generate_series(1, pg_temp.vol('users')) u
CROSS JOIN LATERAL (SELECT pg_temp.user_email(u) AS em, pg_temp.user_email(u - 1) AS prev_em OFFSET 0) p;

-- workshops ------------------------------------------------------------------------------------------
INSERT INTO workshops (id, owner_id, name, slug, owner_email, phone, address, city, postal_code, business_type,
                       opening_hours, services, logo_url, website, is_active, created_at, updated_at)
SELECT pg_temp.id('workshops', x.w),
       CASE WHEN x.w = 5 OR pg_temp.r(x.w, 320) < 0.005 THEN NULL
            WHEN x.w = 6 OR pg_temp.r(x.w, 320) < 0.010 THEN pg_temp.id('users', pg_temp.vol('users') + x.w)
            ELSE pg_temp.id('users', x.owner_no) END,
       x.name,
       trim(both '-' from regexp_replace(replace(replace(replace(replace(lower(x.name), 'ä', 'ae'), 'ö', 'oe'),
            'ü', 'ue'), 'ß', 'ss'), '[^a-z0-9]+', '-', 'g')) || '-' || x.w::text,
       CASE WHEN x.w = 6 OR (x.w <> 5 AND pg_temp.r(x.w, 320) >= 0.005 AND pg_temp.r(x.w, 320) < 0.010)
                THEN pg_temp.user_email(pg_temp.vol('users') + x.w)
            WHEN x.chain THEN CASE WHEN u.email = lower(u.email) THEN upper(u.email) ELSE lower(u.email) END
            ELSE u.email END,
       pg_temp.phone(x.w, 340),
       pg_temp.street(x.w, 341),
       split_part(x.ci, '|', 1),
       CASE WHEN x.w = 2 OR pg_temp.r(x.w, 343) < 0.01 THEN ' ' || x.plz
            WHEN x.w = 4 OR pg_temp.r(x.w, 343) < 0.02
                THEN CASE WHEN left(x.plz, 1) = '0' THEN substr(x.plz, 2) ELSE left(x.plz, 4) END
            WHEN x.w = 7 OR pg_temp.r(x.w, 343) < 0.03 THEN NULL
            ELSE x.plz END,
       CASE WHEN x.w = 1 OR pg_temp.r(x.w, 350) < 0.03 THEN 'Freie Werkstatt'
            WHEN x.w = 8 OR pg_temp.r(x.w, 350) < 0.08 THEN NULL
            WHEN pg_temp.r(x.w, 350) < 0.60 THEN 'independent'
            WHEN pg_temp.r(x.w, 350) < 0.75 THEN 'franchise'
            WHEN pg_temp.r(x.w, 350) < 0.88 THEN 'dealership'
            ELSE 'specialist' END,
       CASE WHEN pg_temp.r(x.w, 351) < 0.10 THEN NULL
            WHEN pg_temp.r(x.w, 351) < 0.15 THEN '{"Mo-Fr": "8-17 Uhr", "Sa": "nach Vereinbarung"}'::jsonb
            WHEN pg_temp.r(x.w, 351) < 0.60 THEN '{"mon": ["08:00", "18:00"], "tue": ["08:00", "18:00"],
                "wed": ["08:00", "18:00"], "thu": ["08:00", "18:00"], "fri": ["08:00", "17:00"]}'::jsonb
            ELSE '{"mon": ["07:30", "17:30"], "tue": ["07:30", "17:30"], "wed": ["07:30", "17:30"],
                "thu": ["07:30", "17:30"], "fri": ["07:30", "16:00"], "sat": ["09:00", "13:00"]}'::jsonb END,
       CASE WHEN pg_temp.r(x.w, 352) < 0.10 THEN NULL
            WHEN pg_temp.r(x.w, 352) < 0.13 THEN '{}'::text[]
            ELSE (ARRAY['Inspektion', 'Ölwechsel', 'HU/AU', 'Reifenservice', 'Klimaservice', 'Bremsen',
                        'Unfallinstandsetzung'])[1:3 + pg_temp.ri(x.w, 353, 0, 4)::int] END,
       CASE WHEN pg_temp.r(x.w, 354) < 0.4 THEN NULL
            ELSE 'https://cdn.carbot.example/logos/' || pg_temp.h('logo', x.w) || '.png' END,
       CASE WHEN pg_temp.r(x.w, 355) < 0.2 THEN NULL
            WHEN pg_temp.r(x.w, 355) < 0.3 THEN 'www.' || x.dom || '.de'
            ELSE 'https://www.' || x.dom || '.de' END,
       pg_temp.r(x.w, 356) >= 0.05,
       pg_temp.ago(x.w, 357, 1500) - interval '400 days',
       pg_temp.ago(x.w, 358, 300)
FROM (SELECT s.w, s.chain, s.owner_no, s.ci, s.name, pg_temp.plz(split_part(s.ci, '|', 3), split_part(s.ci, '|', 4),
             pg_temp.r(s.w, 342)) AS plz,
             pg_temp.translit(replace(split_part(s.name, ' ', 1), '&', '')) || '-'
                 || pg_temp.translit(pg_temp.last_name(s.owner_no, 331)) AS dom
      FROM (SELECT t.w, t.chain, t.owner_no, pg_temp.city(t.city_no) AS ci,
                   CASE floor(pg_temp.r(t.owner_no, 330) * 8)::int
                       WHEN 0 THEN 'Autohaus ' || pg_temp.last_name(t.owner_no, 331)
                       WHEN 1 THEN 'Kfz-Meisterbetrieb ' || pg_temp.last_name(t.owner_no, 331)
                       WHEN 2 THEN 'Autowerkstatt ' || pg_temp.last_name(t.owner_no, 331) || ' GmbH'
                       WHEN 3 THEN pg_temp.last_name(t.owner_no, 331) || ' & Söhne Kfz-Service'
                       WHEN 4 THEN 'Bosch Car Service ' || pg_temp.last_name(t.owner_no, 331)
                       WHEN 5 THEN 'Reifen ' || pg_temp.last_name(t.owner_no, 331) || ' GmbH & Co. KG'
                       WHEN 6 THEN 'KFZ ' || pg_temp.last_name(t.owner_no, 331) || ' e.K.'
                       ELSE 'Autoservice ' || pg_temp.last_name(t.owner_no, 331) END
                   || CASE WHEN t.chain THEN ' ' || split_part(pg_temp.city(t.city_no), '|', 1) ELSE '' END AS name
            FROM _ws t WHERE t.w <= pg_temp.vol('workshops') OFFSET 0) s OFFSET 0) x
LEFT JOIN users u ON u.id = pg_temp.id('users', x.owner_no);

-- team_members ---------------------------------------------------------------------------------------
INSERT INTO team_members (id, workshop_id, user_id, role, invited_at, accepted_at)
SELECT pg_temp.id('team_members', x.t),
       pg_temp.id('workshops', x.ws),
       CASE WHEN x.t <= pg_temp.vol('workshops') THEN pg_temp.id('users', o.owner_no)
            WHEN x.t = pg_temp.vol('workshops') + 2 OR pg_temp.r(x.t, 402) < 0.005
                THEN pg_temp.id('users', pg_temp.vol('users') + 1000 + x.t)
            ELSE pg_temp.id('users', pg_temp.vol('workshops') + 1
                 + (x.t - pg_temp.vol('workshops') - 1) % (pg_temp.vol('users') - pg_temp.vol('workshops'))) END,
       CASE WHEN x.t <= pg_temp.vol('workshops') THEN 'owner'
            WHEN pg_temp.r(x.t, 403) < 0.55 THEN 'mechanic'
            WHEN pg_temp.r(x.t, 403) < 0.85 THEN 'reception'
            ELSE 'admin' END,
       to_timestamp(x.inv),
       CASE WHEN pg_temp.r(x.t, 405) < 0.10 THEN NULL ELSE to_timestamp(x.inv + pg_temp.ri(x.t, 406, 60, 864000)) END
FROM (SELECT t, CASE WHEN t <= pg_temp.vol('workshops') THEN t
                     ELSE pg_temp.ws(t, 400, 0.005, pg_temp.vol('workshops') + 1) END AS ws,
             1761955200 - 864000 - floor(pg_temp.r(t, 404) * 1000 * 86400)::bigint AS inv
      FROM generate_series(1, pg_temp.vol('team_members')) t) x
LEFT JOIN _ws o ON o.w = x.t;

-- customers ------------------------------------------------------------------------------------------
INSERT INTO customers (id, workshop_id, name, email, phone, address, city, postal_code, active, marketing_consent,
                       created_at, updated_at)
SELECT pg_temp.id('customers', c.c),
       pg_temp.id('workshops', c.ws),
       CASE c.c WHEN 4 THEN NULL WHEN 5 THEN '' WHEN 6 THEN '  Müller ' WHEN 7 THEN 'Ömer'
                WHEN 8 THEN 'van der Berg, Jan' WHEN 9 THEN 'Dr. Anna-Lena von Berg' WHEN 10 THEN 'Max Mustermann'
                ELSE pg_temp.person(c.src, 510, p.fn, p.ln) END,
       CASE c.c WHEN 11 THEN 'max@' WHEN 12 THEN 'kein' WHEN 13 THEN 'MAX@WEB.DE '
                ELSE pg_temp.dirty_mail(c.src, 520, p.em, p.fn) END,
       CASE WHEN pg_temp.r(c.src, 530) < 0.10 THEN NULL ELSE pg_temp.phone(c.src, 531) END,
       CASE WHEN p.no_addr THEN NULL ELSE pg_temp.street(c.src, 541) END,
       CASE WHEN p.no_addr THEN NULL
            WHEN pg_temp.r(c.src, 542) < 0.01 THEN lower(split_part(p.ci, '|', 1))
            WHEN pg_temp.r(c.src, 542) < 0.02 THEN split_part(p.ci, '|', 1) || ' '
            ELSE split_part(p.ci, '|', 1) END,
       CASE WHEN p.no_addr THEN NULL
            WHEN c.c = 15 OR pg_temp.r(c.src, 543) < 0.005 THEN ' ' || p.plz
            WHEN c.c = 16 OR pg_temp.r(c.src, 543) < 0.010
                THEN CASE WHEN left(p.plz, 1) = '0' THEN substr(p.plz, 2) ELSE left(p.plz, 4) END
            WHEN c.c = 17 OR pg_temp.r(c.src, 543) < 0.015 THEN p.plz || ' ' || split_part(p.ci, '|', 1)
            ELSE p.plz END,
       pg_temp.r(c.c, 550) >= 0.04,
       CASE WHEN c.c = 14 OR pg_temp.r(c.src, 551) < 0.30 THEN NULL WHEN pg_temp.r(c.src, 551) < 0.60 THEN true
            ELSE false END,
       to_timestamp(p.ce),
       CASE WHEN c.c = 18 OR pg_temp.r(c.c, 553) < 0.002 THEN to_timestamp(p.ce - 86400)
            ELSE to_timestamp(p.ce + floor(pg_temp.r(c.c, 554) * (1761955200 - p.ce))) END
FROM _cust c
LEFT JOIN _ws wc ON wc.w = c.ws
CROSS JOIN LATERAL (
    SELECT q.fn, q.ln, pg_temp.mail(c.src, 502, q.fn, q.ln) AS em, q.ci, q.no_addr, q.ce,
           pg_temp.plz(split_part(q.ci, '|', 3), split_part(q.ci, '|', 4), pg_temp.r(c.src, 544)) AS plz
    FROM (SELECT pg_temp.first_name(c.src, 500) AS fn, pg_temp.last_name(c.src, 501) AS ln,
                 pg_temp.city(CASE WHEN pg_temp.r(c.src, 545) < 0.85 THEN coalesce(wc.city_no, 0)
                                   ELSE floor(pg_temp.r(c.src, 546) * 46)::bigint END) AS ci,
                 pg_temp.r(c.src, 540) < 0.15 AS no_addr,
                 1761955200 - 86400 - floor(pg_temp.r(c.c, 552) * 1095 * 86400)::bigint AS ce
          OFFSET 0) q
    OFFSET 0) p;

-- vehicles -------------------------------------------------------------------------------------------
INSERT INTO vehicles (id, customer_id, workshop_id, make, model, year, license_plate, vin, mileage_km, fuel_type,
                      created_at, updated_at)
SELECT pg_temp.id('vehicles', v.v),
       pg_temp.id('customers', v.cust),
       pg_temp.id('workshops', v.ws),
       CASE split_part(x.m, '|', 1)
           WHEN 'Volkswagen' THEN pg_temp.pick(ARRAY['VW', 'VW', 'Volkswagen', 'Volkswagen', 'vw', 'VW '],
                                               pg_temp.r(v.v, 611))
           WHEN 'Mercedes-Benz' THEN pg_temp.pick(ARRAY['Mercedes-Benz', 'Mercedes-Benz', 'Mercedes', 'MB'],
                                                  pg_temp.r(v.v, 611))
           ELSE CASE WHEN pg_temp.r(v.v, 611) < 0.02 THEN upper(split_part(x.m, '|', 1))
                     ELSE split_part(x.m, '|', 1) END END,
       CASE WHEN pg_temp.r(v.v, 612) < 0.03 THEN NULL ELSE split_part(x.m, '|', 2) END,
       CASE WHEN v.v = 3 OR pg_temp.r(v.v, 613) < 0.005 THEN 0
            WHEN v.v = 4 OR pg_temp.r(v.v, 613) < 0.008 THEN pg_temp.pick(ARRAY['2027', '2030', '2099', '2125'],
                                                                           pg_temp.r(v.v, 614))::int
            WHEN pg_temp.r(v.v, 613) < 0.010 THEN pg_temp.ri(v.v, 615, 5, 24)::int
            WHEN v.v = 5 OR pg_temp.r(v.v, 613) < 0.040 THEN NULL
            ELSE 2025 - floor(power(pg_temp.r(v.v, 616), 1.4) * 26)::int END,
       CASE WHEN v.v = 6 OR pg_temp.r(v.v, 625) < 0.02 THEN lower(x.pre || ' ' || x.let || x.dig)
            WHEN pg_temp.r(v.v, 625) < 0.03 THEN x.pre || x.let || x.dig
            WHEN pg_temp.r(v.v, 625) < 0.04 THEN x.pre || ' ' || x.let || ' ' || x.dig
            WHEN pg_temp.r(v.v, 625) < 0.042 THEN 'unbekannt'
            WHEN v.v = 7 OR pg_temp.r(v.v, 625) < 0.092 THEN NULL
            ELSE x.pre || '-' || x.let || ' ' || x.dig
                 || CASE WHEN split_part(x.m, '|', 1) = 'Tesla' OR split_part(x.m, '|', 2) = 'ID.3' THEN 'E'
                         ELSE '' END END,
       CASE WHEN v.v = 9 OR (pg_temp.r(v.v, 630) >= 0.30 AND pg_temp.r(v.v, 631) < 0.03)
                THEN pg_temp.pick(ARRAY['unbekannt', 'k.A.', '123', '-', '0', left(x.vin, 13), lower(x.vin),
                                        left(x.vin, 8) || ' ' || substr(x.vin, 9), x.vin || 'X',
                                        'WVWZZZ1KZ8W0000000O'], pg_temp.r(v.v, 632))
            WHEN pg_temp.r(v.v, 630) < 0.30 THEN NULL
            ELSE x.vin END,
       CASE WHEN v.v = 10 OR pg_temp.r(v.v, 640) < 0.003 THEN -pg_temp.ri(v.v, 641, 1, 50000)::int
            WHEN pg_temp.r(v.v, 640) < 0.004 THEN 9999999
            WHEN pg_temp.r(v.v, 640) < 0.104 THEN NULL
            ELSE pg_temp.ri(v.v, 642, 5, 320000)::int END,
       CASE WHEN pg_temp.r(v.v, 650) < 0.10 THEN NULL
            WHEN split_part(x.m, '|', 1) = 'Tesla' OR split_part(x.m, '|', 2) = 'ID.3' THEN 'Elektro'
            -- 30 slots: Benzin 12, Diesel 9, Hybrid 3, Elektro 2, and one each for the odd spellings (~3% each)
            ELSE pg_temp.pick(ARRAY['Benzin', 'Benzin', 'Benzin', 'Benzin', 'Benzin', 'Benzin', 'Benzin', 'Benzin',
                                    'Benzin', 'Benzin', 'Benzin', 'Benzin', 'Diesel', 'Diesel', 'Diesel', 'Diesel',
                                    'Diesel', 'Diesel', 'Diesel', 'Diesel', 'Diesel', 'Hybrid', 'Hybrid', 'Hybrid',
                                    'Elektro', 'Elektro', 'Autogas (LPG)', 'petrol', 'diesel', 'Super E10'],
                              pg_temp.r(v.v, 651)) END,
       to_timestamp(x.ce),
       to_timestamp(x.ce + floor(pg_temp.r(v.v, 661) * (1761955200 - x.ce)))
FROM _veh v
LEFT JOIN _ws wv ON wv.w = v.ws
CROSS JOIN LATERAL (
    SELECT q.m, q.pre, q.let, q.dig, split_part(q.m, '|', 3) || upper(substr(pg_temp.h('vin', v.v), 1, 14)) AS vin,
           q.ce
    FROM (SELECT pg_temp.model(floor(power(pg_temp.r(v.v, 610), 1.3) * 60)::bigint) AS m,
                 split_part(pg_temp.city(CASE WHEN pg_temp.r(v.v, 620) < 0.9 THEN coalesce(wv.city_no, 0)
                                              ELSE floor(pg_temp.r(v.v, 621) * 46)::bigint END), '|', 2) AS pre,
                 substr('ABCDEFGHJKLMNPRSTUVWXYZ', pg_temp.ri(v.v, 622, 1, 23)::int, 1)
                     || CASE WHEN pg_temp.r(v.v, 623) < 0.7
                             THEN substr('ABCDEFGHJKLMNPRSTUVWXYZ', pg_temp.ri(v.v, 624, 1, 23)::int, 1)
                             ELSE '' END AS let,
                 pg_temp.ri(v.v, 626, 1, 9999)::text AS dig,
                 1761955200 - 86400 - floor(pg_temp.r(v.v, 660) * 1095 * 86400)::bigint AS ce
          OFFSET 0) q
    OFFSET 0) x;

-- leads (lead n is the chat of conversation n) -------------------------------------------------------
INSERT INTO leads (id, workshop_id, kunde_id, name, email, telefon, anliegen, fahrzeug, status, priority, lead_score,
                   chatverlauf, source, consent_given, consent_at, "timestamp", created_at, updated_at)
SELECT pg_temp.id('leads', cv.k),
       pg_temp.id('workshops', cv.ws),
       cv.kid,
       CASE WHEN pg_temp.r(cv.k, 700) < 0.15 THEN NULL ELSE pg_temp.person(cv.k, 701, p.fn, p.ln) END,
       CASE WHEN pg_temp.r(cv.k, 702) < 0.25 THEN NULL ELSE pg_temp.dirty_mail(cv.k, 703, p.em, p.fn) END,
       CASE WHEN pg_temp.r(cv.k, 704) < 0.40 THEN NULL ELSE pg_temp.phone(cv.k, 705) END,
       CASE WHEN pg_temp.r(cv.k, 706) < 0.05 THEN NULL
            WHEN pg_temp.r(cv.k, 706) < 0.06 THEN repeat(pg_temp.anliegen(pg_temp.r(cv.k, 707)) || '. ', 25)
            ELSE pg_temp.anliegen(pg_temp.r(cv.k, 707)) END,
       CASE WHEN pg_temp.r(cv.k, 708) < 0.20 THEN NULL
            WHEN pg_temp.r(cv.k, 708) < 0.22 THEN ''
            WHEN pg_temp.r(cv.k, 708) < 0.27 THEN lower(split_part(p.m, '|', 2))
            WHEN pg_temp.r(cv.k, 708) < 0.60 THEN split_part(p.m, '|', 1) || ' ' || split_part(p.m, '|', 2)
            ELSE split_part(p.m, '|', 1) || ' ' || split_part(p.m, '|', 2) || ' Bj. '
                 || pg_temp.ri(cv.k, 709, 2003, 2024)::text END,
       CASE WHEN cv.k = 2 THEN 'neu' WHEN cv.k = 3 THEN NULL
            WHEN pg_temp.r(cv.k, 710) < 0.25 THEN 'new'
            WHEN pg_temp.r(cv.k, 710) < 0.50 THEN 'contacted'
            WHEN pg_temp.r(cv.k, 710) < 0.62 THEN 'qualified'
            WHEN pg_temp.r(cv.k, 710) < 0.77 THEN 'converted'
            WHEN pg_temp.r(cv.k, 710) < 0.92 THEN 'lost'
            WHEN pg_temp.r(cv.k, 710) < 0.95 THEN 'spam'
            WHEN pg_temp.r(cv.k, 710) < 0.97 THEN NULL
            ELSE 'neu' END,
       CASE WHEN cv.k = 4 OR pg_temp.r(cv.k, 711) < 0.08 THEN NULL
            WHEN pg_temp.r(cv.k, 711) < 0.40 THEN 'low'
            WHEN pg_temp.r(cv.k, 711) < 0.75 THEN 'medium'
            WHEN pg_temp.r(cv.k, 711) < 0.95 THEN 'high'
            ELSE 'urgent' END,
       CASE WHEN cv.k = 5 OR pg_temp.r(cv.k, 712) < 0.01 THEN -pg_temp.ri(cv.k, 713, 1, 50)::int
            WHEN cv.k = 6 OR pg_temp.r(cv.k, 712) < 0.02 THEN pg_temp.ri(cv.k, 713, 101, 250)::int
            WHEN pg_temp.r(cv.k, 712) < 0.07 THEN NULL
            ELSE pg_temp.ri(cv.k, 714, 0, 100)::int END,
       CASE WHEN cv.k = 7 THEN to_jsonb(j.arr::text)
            WHEN cv.k = 8 THEN jsonb_build_object('messages', j.arr)
            WHEN cv.k = 9 OR pg_temp.r(cv.k, 730) < 0.14 THEN NULL
            WHEN pg_temp.r(cv.k, 730) < 0.18 THEN to_jsonb(j.arr::text)
            WHEN pg_temp.r(cv.k, 730) < 0.19 THEN jsonb_build_object('messages', j.arr)
            WHEN pg_temp.r(cv.k, 730) < 0.20 THEN j.arr -> 0
            ELSE j.arr END,
       CASE WHEN pg_temp.r(cv.k, 740) < 0.70 THEN 'widget' WHEN pg_temp.r(cv.k, 740) < 0.85 THEN 'whatsapp'
            WHEN pg_temp.r(cv.k, 740) < 0.93 THEN 'email' ELSE 'phone' END,
       p.cg,
       CASE WHEN p.cg AND NOT (cv.k = 11 OR pg_temp.r(cv.k, 742) < 0.03) THEN to_timestamp(p.ts + 30) END,
       to_timestamp(p.ts),
       to_timestamp(p.ts + pg_temp.ri(cv.k, 744, 0, 5)),
       to_timestamp(p.ts + 5 + floor(pg_temp.r(cv.k, 745) * (1761955200 - p.ts - 5)))
FROM _conv cv
CROSS JOIN LATERAL (
    SELECT q.fn, q.ln, pg_temp.mail(cv.k, 702, q.fn, q.ln) AS em,
           pg_temp.model(floor(pg_temp.r(cv.k, 715) * 60)::bigint) AS m,
           CASE WHEN cv.k = 10 OR pg_temp.r(cv.k, 741) < 0.20 THEN NULL
                WHEN cv.k = 11 THEN true
                WHEN pg_temp.r(cv.k, 741) < 0.30 THEN false ELSE true END AS cg,
           cv.t0 + 120 + pg_temp.ri(cv.k, 743, 0, 600) AS ts
    FROM (SELECT pg_temp.first_name(cv.k, 716) AS fn, pg_temp.last_name(cv.k, 717) AS ln OFFSET 0) q
    OFFSET 0) p
CROSS JOIN LATERAL (
    SELECT CASE WHEN pg_temp.r(cv.k, 720) < 0.5
                THEN jsonb_build_array(
                    jsonb_build_object('role', 'bot', 'content', pg_temp.bot_msg(0), 'ts', j0.t1),
                    jsonb_build_object('role', 'user', 'content', pg_temp.user_msg(pg_temp.r(cv.k, 721)), 'ts', j0.t2))
                ELSE jsonb_build_array(
                    jsonb_build_object('role', 'bot', 'content', pg_temp.bot_msg(0), 'ts', j0.t1),
                    jsonb_build_object('role', 'user', 'content', pg_temp.user_msg(pg_temp.r(cv.k, 721)), 'ts', j0.t2),
                    jsonb_build_object('role', 'bot', 'content', pg_temp.bot_msg(pg_temp.r(cv.k, 722)), 'ts', j0.t3),
                    jsonb_build_object('role', 'user', 'content', pg_temp.user_msg(pg_temp.r(cv.k, 723)), 'ts', j0.t4))
                END AS arr
    FROM (SELECT (to_jsonb(to_timestamp(cv.t0) AT TIME ZONE 'UTC') #>> '{}') || 'Z' AS t1,
                 (to_jsonb(to_timestamp(cv.t0 + 47) AT TIME ZONE 'UTC') #>> '{}') || 'Z' AS t2,
                 (to_jsonb(to_timestamp(cv.t0 + 94) AT TIME ZONE 'UTC') #>> '{}') || 'Z' AS t3,
                 (to_jsonb(to_timestamp(cv.t0 + 141) AT TIME ZONE 'UTC') #>> '{}') || 'Z' AS t4) j0
    OFFSET 0) j
WHERE cv.k <= pg_temp.vol('leads');

-- lead_notes -----------------------------------------------------------------------------------------
INSERT INTO lead_notes (id, lead_id, user_id, note, created_at)
SELECT pg_temp.id('lead_notes', n),
       pg_temp.id('leads', CASE WHEN n = 1 OR pg_temp.r(n, 750) < 0.005 THEN pg_temp.vol('leads') + n
                                ELSE 1 + floor(power(pg_temp.r(n, 751), 1.2) * pg_temp.vol('leads'))::bigint END),
       CASE WHEN n = 2 OR pg_temp.r(n, 752) < 0.15 THEN NULL
            WHEN n = 3 OR pg_temp.r(n, 752) < 0.153 THEN pg_temp.id('users', pg_temp.vol('users') + 5000 + n)
            ELSE pg_temp.id('users', pg_temp.ri(n, 753, 1, pg_temp.vol('users'))) END,
       pg_temp.pick(ARRAY['Kunde zurückgerufen, Termin vereinbart.', 'Nicht erreicht, Mailbox.',
                          'Kostenvoranschlag per Mail geschickt', 'Will erst nächsten Monat kommen',
                          'Kunde hat abgesagt, zu teuer.', 'Rückruf morgen 10 Uhr', 'Spam, ignorieren',
                          'Ersatzteil bestellt, Lieferung Do.', 'HU + Inspektion kombiniert angeboten',
                          'Hat Termin bei anderer Werkstatt', 'TODO: Preis klären!!', 'ok'], pg_temp.r(n, 754))
           || CASE WHEN pg_temp.r(n, 756) < 0.05 THEN E'\n-- ' || pg_temp.first_name(n, 757) ELSE '' END,
       pg_temp.ago(n, 755, 700)
FROM generate_series(1, pg_temp.vol('lead_notes')) n;

-- chat_messages: conversations of 2..14 messages, consecutive ids ------------------------------------
INSERT INTO chat_messages (id, workshop_id, kunde_id, lead_id, sender, message, metadata, created_at)
SELECT m.id,
       pg_temp.id('workshops', cv.ws),
       cv.kid,
       CASE WHEN cv.k <= pg_temp.vol('leads') AND m.i >= 2
            THEN CASE WHEN m.id = 3 OR pg_temp.r(m.id, 810) < 0.001 THEN pg_temp.id('leads', pg_temp.vol('leads') + m.id)
                      ELSE pg_temp.id('leads', cv.k) END END,
       m.sender,
       CASE WHEN m.id = 2 OR pg_temp.r(m.id, 812) < 0.0005
                THEN repeat(pg_temp.user_msg(pg_temp.r(m.id, 814)) || ' ', pg_temp.ri(m.id, 813, 100, 1000)::int)
            WHEN m.id = 4 OR pg_temp.r(m.id, 812) < 0.0035 THEN pg_temp.odd_text(pg_temp.r(m.id, 814))
            WHEN m.id = 5 OR pg_temp.r(m.id, 812) < 0.0055
                THEN 'Zufall: ' || (SELECT string_agg(chr(CASE WHEN cp BETWEEN 55296 AND 57343 THEN cp + 2048 ELSE cp END),
                                                      '' ORDER BY j)
                                    FROM (SELECT j, 32 + floor(pg_temp.r(m.id * 64 + j, 816) * 1114000)::int AS cp
                                          FROM generate_series(1, pg_temp.ri(m.id, 817, 5, 40)) j) z)
            WHEN pg_temp.r(m.id, 812) < 0.0085 THEN pg_temp.pick(ARRAY['', '   ', E'\n'], pg_temp.r(m.id, 814))
            WHEN m.sender = 'user' THEN pg_temp.user_msg(pg_temp.r(m.id, 814))
            ELSE pg_temp.bot_msg(CASE WHEN m.i = 2 THEN 0 ELSE pg_temp.r(m.id, 814) END) END,
       CASE WHEN pg_temp.r(m.id, 818) < 0.30 THEN NULL
            WHEN m.sender = 'user' THEN jsonb_build_object('channel', pg_temp.pick(ARRAY['widget', 'widget', 'whatsapp'],
                                                                                   pg_temp.r(m.id, 819)),
                                                           'page', pg_temp.pick(ARRAY['/', '/kontakt', '/leistungen',
                                                                                      '/termin'], pg_temp.r(m.id, 820)))
            ELSE jsonb_build_object('model', pg_temp.pick(ARRAY['gpt-3.5-turbo', 'gpt-4o-mini', 'rules'],
                                                          pg_temp.r(m.id, 819)),
                                    'tokens', pg_temp.ri(m.id, 821, 20, 900), 'latency_ms', pg_temp.ri(m.id, 822, 150, 9000))
            END,
       to_timestamp(cv.t0 + (m.i - 1) * 47 + pg_temp.ri(m.id, 815, 0, 40))
FROM _conv cv
CROSS JOIN LATERAL generate_series(1, cv.nmsg) gi
CROSS JOIN LATERAL (
    SELECT cv.off + gi AS id, gi AS i,
           CASE WHEN gi % 2 = 1 THEN 'user' WHEN pg_temp.r(cv.off + gi, 811) < 0.1 THEN 'agent' ELSE 'bot' END AS sender
    OFFSET 0) m
WHERE cv.off < pg_temp.vol('chat_messages') AND m.id <= pg_temp.vol('chat_messages');

-- analytics_events: ids in time order ----------------------------------------------------------------
INSERT INTO analytics_events (id, workshop_id, event_type, event_data, kunde_id, page_url, user_agent, ip_address,
                              created_at)
SELECT s.e,
       pg_temp.id('workshops', x.w),
       x.et,
       CASE WHEN pg_temp.r(s.e, 904) < 0.25 THEN NULL
            ELSE jsonb_build_object('widget_version', pg_temp.pick(ARRAY['1.4.2', '1.5.0', '2.0.1'], pg_temp.r(s.e, 905)),
                                    'lang', pg_temp.pick(ARRAY['de', 'de', 'de', 'en', 'tr'], pg_temp.r(s.e, 906)),
                                    'ms', pg_temp.ri(s.e, 907, 5, 4000)) END,
       cv.kid,
       CASE WHEN pg_temp.r(s.e, 908) < 0.10 THEN NULL
            ELSE 'https://www.kfz-' || pg_temp.translit(pg_temp.last_name(x.w, 331)) || '.de'
                 || pg_temp.pick(ARRAY['/', '/kontakt', '/leistungen', '/termin', '/preise', '/ueber-uns',
                                       '/leistungen/hu-au?utm_source=google'], pg_temp.r(s.e, 909)) END,
       CASE WHEN pg_temp.r(s.e, 912) < 0.05 THEN NULL
            ELSE pg_temp.pick(ARRAY[
                'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
                'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
                'Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0 Mobile Safari/537.36',
                'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
                'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
                'WhatsApp/2.24.10.85 A'], pg_temp.r(s.e, 913)) END,
       CASE WHEN pg_temp.r(s.e, 910) < 0.10 THEN NULL
            WHEN pg_temp.r(s.e, 910) < 0.20 THEN '2003:e5::'::inet + (hashint8extended(s.e, 914) & 281474976710655)
            WHEN s.e = 3 OR pg_temp.r(s.e, 910) < 0.204 THEN '192.168.0.0'::inet + pg_temp.ri(s.e, 915, 1, 65534)
            WHEN pg_temp.r(s.e, 910) < 0.206 THEN '127.0.0.1'::inet
            ELSE pg_temp.pick(ARRAY['84.128.0.0', '91.0.0.0', '79.192.0.0', '87.128.0.0', '2.200.0.0', '95.112.0.0',
                                    '178.0.0.0', '188.96.0.0'], pg_temp.r(s.e, 916))::inet
                 + pg_temp.ri(s.e, 917, 1, 1048574) END,
       to_timestamp(1761955200 - 730 * 86400
                    + floor((s.e - 1 + pg_temp.r(s.e, 911)) * (730 * 86400.0 / pg_temp.vol('analytics_events'))))
FROM (SELECT e, CASE WHEN pg_temp.r(e, 901) < 0.30 THEN NULL
                     ELSE 1 + floor(pg_temp.r(e, 902) * pg_temp.vol('conversations'))::bigint END AS kk
      FROM generate_series(1, pg_temp.vol('analytics_events')) e) s
LEFT JOIN _conv cv ON cv.k = s.kk
CROSS JOIN LATERAL (
    SELECT coalesce(cv.ws, pg_temp.ws(s.e, 900, 0.003, 1)) AS w,
           CASE WHEN s.e = 2 OR pg_temp.r(s.e, 903) >= 0.995 THEN 'WidgetOpen'
                WHEN pg_temp.r(s.e, 903) < 0.40 THEN 'widget_open'
                WHEN pg_temp.r(s.e, 903) < 0.70 THEN 'page_view'
                WHEN pg_temp.r(s.e, 903) < 0.90 THEN 'message_sent'
                WHEN pg_temp.r(s.e, 903) < 0.93 THEN 'lead_created'
                WHEN pg_temp.r(s.e, 903) < 0.98 THEN 'widget_close'
                WHEN pg_temp.r(s.e, 903) < 0.99 THEN 'appointment_booked'
                ELSE 'faq_click' END AS et
    OFFSET 0) x;

-- services: 20 per workshop (gone workshops included: their services stayed) ------------------------
INSERT INTO services (id, workshop_id, name, description, price_cents, duration_minutes, category, is_active,
                      created_at, updated_at)
SELECT pg_temp.id('services', x.n),
       pg_temp.id('workshops', x.w),
       split_part(x.sv, '|', 1),
       CASE WHEN pg_temp.r(x.n, 1002) < 0.30 THEN NULL
            ELSE pg_temp.pick(ARRAY['inkl. Material', 'zzgl. Material', 'nach Herstellervorgabe', 'Preis ab',
                                    'Festpreis für PKW bis 2,0 l', 'Preis nach Aufwand'], pg_temp.r(x.n, 1003)) END,
       CASE WHEN pg_temp.r(x.n, 1001) < 0.05 THEN NULL
            WHEN pg_temp.r(x.n, 1001) < 0.07 THEN 0
            ELSE greatest(0, (round(split_part(x.sv, '|', 3)::int * (0.8 + 0.5 * pg_temp.r(x.n, 1004)) / 100) * 100)::int - 10)
            END,
       CASE WHEN pg_temp.r(x.n, 1005) < 0.05 THEN NULL ELSE split_part(x.sv, '|', 4)::int END,
       CASE WHEN pg_temp.r(x.n, 1006) < 0.05 THEN NULL ELSE split_part(x.sv, '|', 2) END,
       pg_temp.r(x.n, 1007) >= 0.10,
       pg_temp.ago(x.w, 1008, 900) - interval '30 days',
       pg_temp.ago(x.n, 1009, 30)
FROM (SELECT w, j, (w - 1) * 20 + j AS n, pg_temp.svc(j - 1 + pg_temp.ri(w, 1000, 0, 9)) AS sv
      FROM generate_series(1, pg_temp.vol('workshops') + pg_temp.vol('gone')) w, generate_series(1, 20) j) x;

-- appointments: vehicle -> customer -> workshop; local date + time (Europe/Berlin) ------------------
CREATE TEMP TABLE _appt ON COMMIT DROP AS
SELECT s.a, vh.v, vh.cust, vh.ws, lw.lead_no,
       CASE WHEN s.a = 4 THEN date '2025-03-30' WHEN s.a = 5 THEN date '2025-10-26' WHEN s.a = 9 THEN date '2025-12-15'
            WHEN pg_temp.r(s.a, 1110) < 0.001
                THEN (ARRAY[date '2024-03-31', date '2025-03-30', date '2024-10-27', date '2025-10-26'])
                     [1 + floor(pg_temp.r(s.a, 1111) * 4)::int]
            ELSE date '2023-06-01' + floor(pg_temp.r(s.a, 1112) * 975)::int END AS d,
       CASE WHEN s.a IN (4, 5) THEN time '02:30'
            WHEN pg_temp.r(s.a, 1110) < 0.001 THEN make_time(2, (pg_temp.ri(s.a, 1113, 0, 3) * 15)::int, 0)
            WHEN s.a = 8 OR pg_temp.r(s.a, 1114) < 0.005 THEN time '00:00'
            ELSE make_time(pg_temp.ri(s.a, 1115, 7, 17)::int, (pg_temp.ri(s.a, 1116, 0, 3) * 15)::int, 0) END AS t
FROM (SELECT a, 1 + floor(pg_temp.r(a, 1100) * pg_temp.vol('vehicles'))::bigint AS vno
      FROM generate_series(1, pg_temp.vol('appointments')) a) s
JOIN _veh vh ON vh.v = s.vno
LEFT JOIN _lead_ws_n ln ON ln.ws = vh.ws AND pg_temp.r(s.a, 1103) < 0.15
LEFT JOIN _lead_ws lw ON lw.ws = vh.ws AND lw.rn = 1 + floor(pg_temp.r(s.a, 1104) * ln.n)::bigint;
CREATE UNIQUE INDEX ON _appt (a);
ANALYZE _appt;

INSERT INTO appointments (id, workshop_id, customer_id, vehicle_id, lead_id, appointment_date, appointment_time,
                          duration_minutes, status, notes, created_at, updated_at)
SELECT pg_temp.id('appointments', x.a),
       pg_temp.id('workshops', x.ws),
       CASE WHEN x.a = 2 OR pg_temp.r(x.a, 1101) < 0.05 THEN NULL ELSE pg_temp.id('customers', x.cust) END,
       CASE WHEN x.a = 6 OR pg_temp.r(x.a, 1102) < 0.08 THEN NULL
            WHEN x.a = 3 OR pg_temp.r(x.a, 1102) < 0.083 THEN pg_temp.id('vehicles', pg_temp.vol('vehicles') + x.a)
            ELSE pg_temp.id('vehicles', x.v) END,
       pg_temp.id('leads', x.lead_no),
       x.d,
       x.t,
       CASE WHEN pg_temp.r(x.a, 1117) < 0.10 THEN NULL
            ELSE pg_temp.pick(ARRAY['30', '45', '60', '60', '90', '120', '180', '240', '480'], pg_temp.r(x.a, 1118))::int END,
       CASE WHEN x.a = 9 OR (x.d >= date '2025-11-01' AND pg_temp.r(x.a, 1120) < 0.002) THEN 'completed'
            WHEN x.d >= date '2025-11-01' THEN
                CASE WHEN pg_temp.r(x.a, 1121) < 0.60 THEN 'scheduled' WHEN pg_temp.r(x.a, 1121) < 0.95 THEN 'confirmed'
                     ELSE 'cancelled' END
            ELSE CASE WHEN pg_temp.r(x.a, 1121) < 0.80 THEN 'completed' WHEN pg_temp.r(x.a, 1121) < 0.90 THEN 'cancelled'
                      WHEN pg_temp.r(x.a, 1121) < 0.95 THEN 'no_show' WHEN pg_temp.r(x.a, 1121) < 0.975 THEN 'confirmed'
                      ELSE 'scheduled' END END,
       CASE WHEN pg_temp.r(x.a, 1122) < 0.60 THEN NULL
            ELSE pg_temp.pick(ARRAY['Kunde wartet', 'Ersatzwagen gewünscht', 'Schlüssel im Briefkasten',
                                    'Teile bestellt', 'bitte vorher anrufen!', 'Winterreifen im Kofferraum',
                                    'Kostenvoranschlag bis 300 € freigegeben', 'Stammkunde'], pg_temp.r(x.a, 1123)) END,
       to_timestamp(x.ce),
       to_timestamp(x.ce + floor(pg_temp.r(x.a, 1131) * greatest(0, 1761955200 - x.ce)))
FROM (SELECT a.*, (a.d - date '1970-01-01')::bigint * 86400 - 3600
                  - floor(pg_temp.r(a.a, 1130) * 30 * 86400)::bigint AS ce
      FROM _appt a) x;

-- appointment_services: 1-3 distinct services of the appointment's workshop -------------------------
INSERT INTO appointment_services (appointment_id, service_id, price_cents)
SELECT x.appointment_id, x.service_id,
       CASE WHEN pg_temp.r(x.k, 1205) < 0.10 THEN NULL
            WHEN sv.price_cents IS NULL THEN pg_temp.ri(x.k, 1206, 29, 399)::int * 100 - 10
            WHEN pg_temp.r(x.k, 1207) < 0.10 THEN (sv.price_cents * 0.9)::int
            ELSE sv.price_cents END
FROM (SELECT a.a * 4 + i AS k,
             pg_temp.id('appointments', CASE WHEN a.a = 10 OR pg_temp.r(a.a, 1204) < 0.003
                                             THEN pg_temp.vol('appointments') + a.a ELSE a.a END) AS appointment_id,
             CASE WHEN (a.a = 1 AND i = 1) OR pg_temp.r(a.a * 4 + i, 1203) < 0.01
                  THEN pg_temp.id('services', 20 * (pg_temp.vol('workshops') + pg_temp.vol('gone')) + a.a * 4 + i)
                  ELSE pg_temp.id('services', (a.ws - 1) * 20 + 1
                       + (pg_temp.ri(a.a, 1201, 0, 19)
                          + i * (ARRAY[1, 3, 7, 9, 11, 13, 17, 19])[pg_temp.ri(a.a, 1202, 1, 8)::int]) % 20) END AS service_id
      FROM _appt a
      CROSS JOIN LATERAL generate_series(1, CASE WHEN pg_temp.r(a.a, 1200) < 0.6 THEN 1
                                                 WHEN pg_temp.r(a.a, 1200) < 0.9 THEN 2 ELSE 3 END) i) x
LEFT JOIN services sv ON sv.id = x.service_id;

-- workshop_closures ----------------------------------------------------------------------------------
INSERT INTO workshop_closures (id, workshop_id, closed_on, reason)
SELECT pg_temp.id('workshop_closures', x.n),
       pg_temp.id('workshops', pg_temp.ws(x.src, 1301, 0.005, 1)),
       x.d,
       CASE WHEN pg_temp.r(x.n, 1307) < 0.20 THEN NULL
            WHEN x.holiday THEN pg_temp.pick(ARRAY['Feiertag', 'Feiertag', 'Weihnachten', 'Betriebsferien'],
                                             pg_temp.r(x.n, 1308))
            ELSE pg_temp.pick(ARRAY['Betriebsurlaub', 'Inventur', 'Fortbildung', 'Krankheit', 'Brückentag', 'Umbau',
                                    'Betriebsausflug'], pg_temp.r(x.n, 1308)) END
FROM (SELECT n, src, pg_temp.r(src, 1305) < 0.4 AS holiday,
             CASE WHEN pg_temp.r(src, 1305) < 0.4
                  THEN (ARRAY[date '2023-12-24', '2023-12-25', '2023-12-26', '2023-12-31', '2024-01-01', '2024-03-29',
                              '2024-04-01', '2024-05-01', '2024-10-03', '2024-12-24', '2024-12-25', '2024-12-26',
                              '2024-12-31', '2025-01-01', '2025-04-18', '2025-04-21', '2025-05-01', '2025-10-03',
                              '2025-12-24', '2025-12-31'])[1 + floor(pg_temp.r(src, 1306) * 20)::int]
                  ELSE date '2023-01-01' + pg_temp.ri(src, 1306, 0, 1080)::int END AS d
      FROM (SELECT n, CASE WHEN n > 1 AND (n = 2 OR pg_temp.r(n, 1300) < 0.01) THEN n - 1 ELSE n END AS src
            FROM generate_series(1, pg_temp.vol('workshop_closures')) n) s0) x;

-- reviews --------------------------------------------------------------------------------------------
INSERT INTO reviews (id, workshop_id, customer_id, rating, comment, source, created_at)
SELECT pg_temp.id('reviews', x.n),
       pg_temp.id('workshops', coalesce(cu.ws, pg_temp.ws(x.n, 1403, 0.005, 1))),
       pg_temp.id('customers', x.cust),
       x.rating,
       CASE WHEN pg_temp.r(x.n, 1405) < 0.30 THEN NULL
            WHEN x.rating >= 4 THEN pg_temp.pick(ARRAY['Super Service, schnell und freundlich!', 'Top Werkstatt 👍',
                     'Faire Preise, komme wieder.', 'Sehr kompetent, hat alles erklärt.', 'Alles bestens',
                     'Schnelle Terminvergabe über den Chat, klasse!', '⭐⭐⭐⭐⭐'], pg_temp.r(x.n, 1406))
            ELSE pg_temp.pick(ARRAY['Zu teuer.', 'Termin nicht eingehalten, 2 Stunden gewartet.',
                     'Rechnung höher als Kostenvoranschlag!!!', 'Auto dreckiger zurückbekommen', 'naja',
                     'Niemand geht ans Telefon'], pg_temp.r(x.n, 1406)) END,
       CASE WHEN pg_temp.r(x.n, 1407) < 0.6 THEN 'google' WHEN pg_temp.r(x.n, 1407) < 0.9 THEN 'carbot' ELSE 'email' END,
       pg_temp.ago(x.n, 1408, 1095)
FROM (SELECT n,
             CASE WHEN n = 3 OR pg_temp.r(n, 1401) < 0.01 THEN pg_temp.vol('customers') + n
                  WHEN pg_temp.r(n, 1400) < 0.25 THEN NULL
                  ELSE 1 + floor(pg_temp.r(n, 1402) * pg_temp.vol('customers'))::bigint END AS cust,
             CASE WHEN n = 1 OR pg_temp.r(n, 1404) < 0.005 THEN 0
                  WHEN n = 2 OR pg_temp.r(n, 1404) < 0.010 THEN 6
                  WHEN pg_temp.r(n, 1404) < 0.09 THEN 1 WHEN pg_temp.r(n, 1404) < 0.14 THEN 2
                  WHEN pg_temp.r(n, 1404) < 0.24 THEN 3 WHEN pg_temp.r(n, 1404) < 0.54 THEN 4 ELSE 5 END AS rating
      FROM generate_series(1, pg_temp.vol('reviews')) n) x
LEFT JOIN _cust cu ON cu.c = x.cust;

-- subscriptions: one per workshop, two (an old cancelled one and the current) for ~20% --------------
INSERT INTO subscriptions (id, workshop_id, plan, status, stripe_customer_id, stripe_subscription_id,
                           current_period_start, current_period_end, cancel_at_period_end, created_at, updated_at)
SELECT pg_temp.id('subscriptions', x.n),
       pg_temp.id('workshops', x.w),
       x.plan,
       x.status,
       'cus_' || substr(translate(encode(decode(pg_temp.h('cus', x.w), 'hex'), 'base64'), '+/=', 'xyz'), 1, 14),
       CASE WHEN x.status = 'trialing' THEN NULL
            ELSE 'sub_' || substr(translate(encode(decode(pg_temp.h('sub', x.n) || pg_temp.h('sub2', x.n), 'hex'),
                                                   'base64'), '+/=', 'xyz'), 1, 24) END,
       to_timestamp(x.ps),
       to_timestamp(x.ps + 30 * 86400),
       pg_temp.r(x.n, 1507) < 0.05,
       to_timestamp(x.ps - pg_temp.ri(x.n, 1508, 1, 700) * 86400),
       to_timestamp(x.ps)
FROM (SELECT w, i, (w - 1) * 2 + i AS n,
             CASE WHEN pg_temp.has2subs(w) AND i = 1 THEN 'starter'
                  WHEN pg_temp.has2subs(w) THEN pg_temp.pick(ARRAY['professional', 'enterprise'], pg_temp.r(w, 1501))
                  ELSE pg_temp.pick(ARRAY['starter', 'starter', 'professional', 'professional', 'enterprise'],
                                    pg_temp.r(w, 1501)) END AS plan,
             CASE WHEN pg_temp.has2subs(w) AND i = 1 THEN 'canceled'
                  WHEN pg_temp.has2subs(w) THEN CASE WHEN pg_temp.r(w, 1502) < 0.9 THEN 'active' ELSE 'past_due' END
                  WHEN pg_temp.r(w, 1503) < 0.06 THEN 'trialing' WHEN pg_temp.r(w, 1503) < 0.88 THEN 'active'
                  WHEN pg_temp.r(w, 1503) < 0.93 THEN 'past_due' ELSE 'canceled' END AS status,
             1761955200 - pg_temp.ri((w - 1) * 2 + i, 1505, 0, 29) * 86400 - pg_temp.ri((w - 1) * 2 + i, 1506, 0, 86399)
                 - CASE WHEN pg_temp.has2subs(w) AND i = 1 THEN pg_temp.ri(w, 1504, 200, 700) * 86400 ELSE 0 END AS ps
      FROM generate_series(1, pg_temp.vol('workshops') + pg_temp.vol('gone')) w, generate_series(1, 2) i
      WHERE i = 1 OR pg_temp.has2subs(w)) x;

-- invoices -------------------------------------------------------------------------------------------
INSERT INTO invoices (id, workshop_id, subscription_id, stripe_invoice_id, amount_cents, currency, status, issued_at,
                      paid_at, pdf_url)
SELECT pg_temp.id('invoices', x.n),
       pg_temp.id('workshops', x.w),
       CASE WHEN x.n = 3 OR pg_temp.r(x.n, 1602) < 0.02 THEN NULL ELSE sb.id END,
       CASE WHEN x.status = 'draft' THEN NULL
            ELSE 'in_' || substr(translate(encode(decode(pg_temp.h('inv', x.n) || pg_temp.h('inv2', x.n), 'hex'),
                                                  'base64'), '+/=', 'xyz'), 1, 24) END,
       CASE WHEN x.n = 4 OR pg_temp.r(x.n, 1603) < 0.01 THEN 0
            WHEN x.n = 5 OR pg_temp.r(x.n, 1603) < 0.013 THEN -x.amount
            ELSE x.amount END,
       CASE WHEN x.n = 1 THEN 'EUR' WHEN x.n = 2 THEN 'eur' WHEN pg_temp.r(x.n, 1605) < 0.75 THEN 'eur' ELSE 'EUR' END,
       x.status,
       to_timestamp(x.iss),
       CASE WHEN x.status = 'paid' AND NOT (x.n = 6 OR pg_temp.r(x.n, 1607) < 0.005)
            THEN to_timestamp(x.iss + pg_temp.ri(x.n, 1609, 60, 14 * 86400)) END,
       CASE WHEN pg_temp.r(x.n, 1610) < 0.10 THEN NULL
            ELSE 'https://pay.stripe.com/invoice/acct_1CarBotLegacy/' || pg_temp.h('invpdf', x.n) || '/pdf' END
FROM (SELECT s.*, CASE WHEN s.n = 6 THEN 'paid'
                       WHEN pg_temp.r(s.n, 1606) < 0.05 THEN 'draft' WHEN pg_temp.r(s.n, 1606) < 0.10 THEN 'open'
                       WHEN pg_temp.r(s.n, 1606) < 0.95 THEN 'paid' WHEN pg_temp.r(s.n, 1606) < 0.98 THEN 'void'
                       ELSE 'uncollectible' END AS status,
             1761955200 - floor(pg_temp.r(s.n, 1608) * 1095 * 86400)::bigint AS iss,
             pg_temp.pick(ARRAY['5831', '11781', '29631', '4900', '9900', '24900'], pg_temp.r(s.n, 1611))::int AS amount
      FROM (SELECT n, w, (w - 1) * 2 + CASE WHEN pg_temp.has2subs(w) AND pg_temp.r(n, 1601) < 0.5 THEN 2 ELSE 1 END AS sn
            FROM (SELECT n, 1 + floor(pg_temp.r(n, 1600) * (pg_temp.vol('workshops') + pg_temp.vol('gone')))::bigint AS w
                  FROM generate_series(1, pg_temp.vol('invoices')) n) s1) s) x
LEFT JOIN subscriptions sb ON sb.id = pg_temp.id('subscriptions', x.sn);

-- chatbot_settings: one per workshop (and the gone workshops') --------------------------------------
INSERT INTO chatbot_settings (workshop_id, greeting, primary_color, language, widget_position, auto_reply, settings,
                              updated_at)
SELECT pg_temp.id('workshops', w),
       CASE WHEN pg_temp.r(w, 1700) < 0.10 THEN NULL
            ELSE pg_temp.pick(ARRAY['Hallo! 👋 Wie können wir Ihnen helfen?',
                                    'Guten Tag! Fragen zu Termin, Preis oder Reparatur? Schreiben Sie uns.',
                                    'Hi 😊 Ich bin der Werkstatt-Assistent.', 'Moin! Was können wir für Ihr Auto tun? 🚗',
                                    'Willkommen! Welcome! Hoş geldiniz!'], pg_temp.r(w, 1701)) END,
       CASE WHEN pg_temp.r(w, 1703) < 0.10 THEN NULL
            ELSE pg_temp.pick(ARRAY['#1A73E8', '#e30613', '#00a651', '#003366', 'rgb(0, 82, 147)', 'blau', '#FFF',
                                    '1a73e8'], pg_temp.r(w, 1704)) END,
       CASE WHEN w = 3 OR pg_temp.r(w, 1702) < 0.08 THEN NULL WHEN pg_temp.r(w, 1702) < 0.15 THEN 'en' ELSE 'de' END,
       CASE WHEN pg_temp.r(w, 1705) < 0.10 THEN NULL
            ELSE pg_temp.pick(ARRAY['bottom-right', 'bottom-right', 'bottom-left', 'right'], pg_temp.r(w, 1706)) END,
       pg_temp.r(w, 1707) >= 0.2,
       CASE WHEN pg_temp.r(w, 1708) < 0.10 THEN NULL
            ELSE jsonb_build_object('business_hours_only', pg_temp.r(w, 1709) < 0.3,
                                    'collect_phone', pg_temp.r(w, 1710) < 0.6,
                                    'max_messages', pg_temp.ri(w, 1711, 10, 50),
                                    'model', pg_temp.pick(ARRAY['gpt-3.5-turbo', 'gpt-4o-mini'], pg_temp.r(w, 1712))) END,
       pg_temp.ago(w, 1713, 400)
FROM generate_series(1, pg_temp.vol('workshops') + pg_temp.vol('gone')) w;

-- faq_entries: 15 per workshop -----------------------------------------------------------------------
INSERT INTO faq_entries (id, workshop_id, question, answer, category, sort_order, is_active, created_at)
SELECT pg_temp.id('faq_entries', x.n),
       pg_temp.id('workshops', x.w),
       split_part(x.qa, '|', 1),
       split_part(x.qa, '|', 2),
       CASE WHEN pg_temp.r(x.n, 1801) < 0.15 THEN NULL ELSE split_part(x.qa, '|', 3) END,
       CASE WHEN pg_temp.r(x.n, 1802) < 0.10 THEN NULL WHEN pg_temp.r(x.n, 1802) < 0.13 THEN x.j - 1 ELSE x.j END,
       pg_temp.r(x.n, 1803) >= 0.05,
       pg_temp.ago(x.n, 1804, 900)
FROM (SELECT w, j, (w - 1) * 15 + j AS n,
             (ARRAY['Wie sind Ihre Öffnungszeiten?|Mo–Fr 8–18 Uhr, Sa 9–13 Uhr.|Allgemein',
                    'Was kostet eine Inspektion?|Je nach Fahrzeug ab 189 €.|Preise',
                    'Bieten Sie einen Ersatzwagen an?|Ja, nach Verfügbarkeit für 39 € pro Tag.|Service',
                    'Machen Sie HU/AU?|Ja, täglich außer samstags, mit Prüfer vor Ort.|Prüfung',
                    'Kann ich mit Karte zahlen?|EC, Kreditkarte, bar und Überweisung.|Zahlung',
                    'Lagern Sie Reifen ein?|Ja, 59 € pro Saison inkl. Wäsche.|Reifen',
                    'Reparieren Sie E-Autos?|Ja, wir sind für Hochvolt-Systeme geschult ⚡.|Service',
                    'Wie lange dauert ein Ölwechsel?|Etwa 45 Minuten, Sie können warten.|Wartung',
                    'Arbeiten Sie mit Versicherungen?|Ja, wir rechnen direkt mit allen Versicherungen ab.|Unfall',
                    'Gibt es einen Hol- und Bringservice?|Im Umkreis von 15 km für 25 €.|Service',
                    'Verlieren Sie die Herstellergarantie?|Nein, wir warten nach Herstellervorgabe.|Wartung',
                    'Wo kann ich parken?|Kundenparkplätze direkt vor der Werkstatt.|Allgemein',
                    'Do you speak English?|Yes, we do.|Allgemein',
                    'Kann ich den Schlüssel einwerfen?|Ja, Schlüsselbriefkasten links neben dem Tor.|Service',
                    'Wie bekomme ich einen Kostenvoranschlag?|Schreiben Sie uns hier im Chat <b>Marke, Modell</b> und Anliegen.|Preise',
                    'Haben Sie am Samstag geöffnet?|Ja, 9–13 Uhr.|Allgemein',
                    'Machen Sie Klimaservice?|Ja, ab 99 €.|Wartung',
                    'Tauschen Sie Windschutzscheiben?|Ja, Steinschläge reparieren wir oft kostenlos über die Teilkasko.|Karosserie',
                    'Was passiert mit meinen Daten?|Siehe Datenschutzerklärung.|Datenschutz',
                    'Wie buche ich einen Termin?|Direkt hier im Chat oder telefonisch.|Allgemein'])
                 [1 + ((j - 1 + pg_temp.ri(w, 1800, 0, 4)) % 20)::int] AS qa
      FROM generate_series(1, pg_temp.vol('workshops') + pg_temp.vol('gone')) w, generate_series(1, 15) j) x;

-- email_templates: 5 per workshop --------------------------------------------------------------------
INSERT INTO email_templates (id, workshop_id, template_key, subject, body_html, updated_at)
SELECT pg_temp.id('email_templates', (w - 1) * 5 + j),
       pg_temp.id('workshops', w),
       (ARRAY['appointment_confirmation', 'appointment_reminder', 'lead_followup', 'review_request', 'invoice_sent'])[j],
       (ARRAY['Ihr Termin am {{datum}} ist bestätigt', 'Erinnerung: Ihr Termin morgen um {{uhrzeit}} Uhr',
              'Ihre Anfrage bei {{werkstatt_name}}', 'Wie zufrieden waren Sie? ⭐', 'Ihre Rechnung {{rechnungsnummer}}'])[j],
       '<p>Hallo {{kunde_name}},</p>'
           || (ARRAY['<p>Ihr Termin am {{datum}} um {{uhrzeit}} Uhr ist bestätigt.</p>',
                     '<p>wir erinnern Sie an Ihren Termin morgen.</p>',
                     '<p>vielen Dank für Ihre Anfrage. Wir melden uns in Kürze.</p>',
                     '<p>wir würden uns über Ihre Bewertung freuen: <a href="{{link}}">Jetzt bewerten</a></p>',
                     '<p>anbei Ihre Rechnung als PDF.</p>'])[j]
           || CASE WHEN pg_temp.r((w - 1) * 5 + j, 1850) < 0.05 THEN E'\r\n<p>Mit freundlichen Grüßen<br>\r\nIhr Team'
                   ELSE '<p>Mit freundlichen Grüßen<br>Ihr Team von {{werkstatt_name}}</p>' END,
       pg_temp.ago((w - 1) * 5 + j, 1851, 700)
FROM generate_series(1, pg_temp.vol('workshops') + pg_temp.vol('gone')) w, generate_series(1, 5) j;

-- notifications --------------------------------------------------------------------------------------
INSERT INTO notifications (id, workshop_id, user_id, type, title, body, read_at, created_at)
SELECT pg_temp.id('notifications', x.n),
       pg_temp.id('workshops', pg_temp.ws(x.n, 1900, 0.005, 1)),
       CASE WHEN x.n = 2 OR pg_temp.r(x.n, 1903) < 0.003 THEN pg_temp.id('users', pg_temp.vol('users') + 9000 + x.n)
            WHEN pg_temp.r(x.n, 1903) < 0.303 THEN NULL
            ELSE pg_temp.id('users', pg_temp.ri(x.n, 1904, 1, pg_temp.vol('users'))) END,
       x.typ,
       CASE x.typ WHEN 'new_lead' THEN 'Neue Anfrage über den Chat' WHEN 'appointment_booked' THEN 'Neuer Termin gebucht'
                  WHEN 'review_received' THEN 'Neue Bewertung erhalten ⭐' WHEN 'invoice_paid' THEN 'Rechnung bezahlt'
                  ELSE 'Systemhinweis' END,
       CASE WHEN pg_temp.r(x.n, 1906) < 0.20 THEN NULL
            ELSE pg_temp.pick(ARRAY['Bitte zeitnah beantworten.', 'Details im Dashboard.', 'Wartung am Sonntag 02:00–04:00 Uhr.',
                                    'Kunde wünscht Rückruf.'], pg_temp.r(x.n, 1907)) END,
       CASE WHEN pg_temp.r(x.n, 1908) < 0.40 THEN NULL ELSE to_timestamp(x.ce + pg_temp.ri(x.n, 1909, 10, 200000)) END,
       to_timestamp(x.ce)
FROM (SELECT n, 1761955200 - 200000 - floor(pg_temp.r(n, 1910) * 700 * 86400)::bigint AS ce,
             pg_temp.pick(ARRAY['new_lead', 'new_lead', 'new_lead', 'appointment_booked', 'appointment_booked',
                                'review_received', 'invoice_paid', 'system'], pg_temp.r(n, 1905)) AS typ
      FROM generate_series(1, pg_temp.vol('notifications')) n) x;

-- api_keys -------------------------------------------------------------------------------------------
INSERT INTO api_keys (id, workshop_id, name, key_hash, last_used_at, revoked_at, created_at)
SELECT pg_temp.id('api_keys', n),
       pg_temp.id('workshops', pg_temp.ws(n, 2000, 0.01, 1)),
       pg_temp.pick(ARRAY['Website', 'Zapier', 'CRM', 'Buchhaltung', 'test', 'Make.com', 'WordPress Plugin'], pg_temp.r(n, 2003)),
       'sha256$' || pg_temp.h('key', n) || pg_temp.h('key2', n),
       CASE WHEN pg_temp.r(n, 2004) < 0.20 THEN NULL ELSE pg_temp.ago(n, 2005, 60) END,
       CASE WHEN pg_temp.r(n, 2006) < 0.10 THEN pg_temp.ago(n, 2007, 200) END,
       pg_temp.ago(n, 2008, 900) - interval '200 days'
FROM generate_series(1, pg_temp.vol('api_keys')) n;

-- webhooks -------------------------------------------------------------------------------------------
INSERT INTO webhooks (id, workshop_id, url, events, secret, is_active, created_at)
SELECT pg_temp.id('webhooks', n),
       pg_temp.id('workshops', pg_temp.ws(n, 2100, 0.01, 1)),
       CASE WHEN n = 3 OR pg_temp.r(n, 2103) < 0.02 THEN 'http://crm.kfz-' || pg_temp.translit(pg_temp.last_name(n, 2104)) || '.de/hook'
            WHEN pg_temp.r(n, 2103) < 0.03 THEN 'http://localhost:3000/webhook'
            WHEN pg_temp.r(n, 2103) < 0.60 THEN 'https://hooks.zapier.com/hooks/catch/' || pg_temp.ri(n, 2105, 1000000, 9999999)::text
                                                || '/' || substr(pg_temp.h('zap', n), 1, 6) || '/'
            ELSE 'https://hook.eu1.make.com/' || substr(pg_temp.h('make', n), 1, 32) END,
       CASE WHEN n = 2 OR pg_temp.r(n, 2106) < 0.02 THEN '{}'::text[]
            WHEN n = 4 OR pg_temp.r(n, 2106) < 0.03 THEN NULL
            ELSE (ARRAY['lead.created', 'appointment.created', 'lead.updated', 'appointment.cancelled',
                        'message.received'])[1:pg_temp.ri(n, 2107, 1, 5)::int] END,
       'whsec_' || translate(encode(decode(pg_temp.h('whsec', n), 'hex'), 'base64'), '+/=', 'xyz'),
       pg_temp.r(n, 2108) >= 0.15,
       pg_temp.ago(n, 2109, 900)
FROM generate_series(1, pg_temp.vol('webhooks')) n;

-- audit_logs: ids in time order ----------------------------------------------------------------------
INSERT INTO audit_logs (id, workshop_id, user_id, action, entity_type, entity_id, changes, ip_address, created_at)
SELECT x.e,
       CASE WHEN x.e = 1 OR pg_temp.r(x.e, 2201) < 0.05 THEN NULL ELSE pg_temp.id('workshops', pg_temp.ws(x.e, 2202, 0.005, 2)) END,
       CASE WHEN pg_temp.r(x.e, 2205) < 0.10 THEN NULL ELSE pg_temp.id('users', pg_temp.ri(x.e, 2206, 1, pg_temp.vol('users'))) END,
       x.act,
       x.ent,
       CASE WHEN pg_temp.r(x.e, 2207) < 0.10 THEN NULL
            WHEN pg_temp.r(x.e, 2207) < 0.20 THEN pg_temp.ri(x.e, 2208, 1, 99999)::text
            ELSE pg_temp.id(x.ent || 's', pg_temp.ri(x.e, 2209, 1, 1000))::text END,
       CASE WHEN pg_temp.r(x.e, 2210) < 0.30 OR x.act IN ('login', 'export') THEN NULL
            WHEN x.ent = 'lead' THEN jsonb_build_object('status', jsonb_build_object('old', 'new', 'new',
                     pg_temp.pick(ARRAY['contacted', 'qualified', 'lost'], pg_temp.r(x.e, 2211))))
            ELSE jsonb_build_object('updated_fields', to_jsonb((ARRAY['email', 'phone'])[1:pg_temp.ri(x.e, 2212, 1, 2)::int])) END,
       CASE WHEN pg_temp.r(x.e, 2213) < 0.10 THEN NULL
            ELSE pg_temp.pick(ARRAY['84.128.0.0', '91.0.0.0', '79.192.0.0', '87.128.0.0'], pg_temp.r(x.e, 2214))::inet
                 + pg_temp.ri(x.e, 2215, 1, 1048574) END,
       to_timestamp(1761955200 - 730 * 86400
                    + floor((x.e - 1 + pg_temp.r(x.e, 2216)) * (730 * 86400.0 / pg_temp.vol('audit_logs'))))
FROM (SELECT e,
             pg_temp.pick(ARRAY['create', 'update', 'update', 'update', 'delete', 'login', 'export'], pg_temp.r(e, 2203)) AS act,
             pg_temp.pick(ARRAY['lead', 'customer', 'appointment', 'workshop', 'service', 'user'], pg_temp.r(e, 2204)) AS ent
      FROM generate_series(1, pg_temp.vol('audit_logs')) e) x;

-- gdpr_requests --------------------------------------------------------------------------------------
INSERT INTO gdpr_requests (id, workshop_id, requester_email, request_type, status, requested_at, completed_at)
SELECT pg_temp.id('gdpr_requests', x.n),
       CASE WHEN x.n = 1 OR pg_temp.r(x.n, 2301) < 0.10 THEN NULL ELSE pg_temp.id('workshops', pg_temp.ws(x.n, 2302, 0.005, 0)) END,
       -- '+dsgvo<n>' keeps a requester apart from every customer: a request marked done was carried out (without
       -- it, names from the same pool made ~1 in 3 done erasures "still have data" by chance at scale 1.0)
       pg_temp.case_variant(x.n, replace(pg_temp.mail(x.n, 2303, pg_temp.first_name(x.n, 2304),
                                                      pg_temp.last_name(x.n, 2305)), '@', '+dsgvo' || x.n || '@'))
           || CASE WHEN pg_temp.r(x.n, 2306) < 0.1 THEN ' ' ELSE '' END,
       pg_temp.pick(ARRAY['access', 'erasure', 'erasure', 'rectification', 'portability'], pg_temp.r(x.n, 2307)),
       x.st,
       to_timestamp(x.rq),
       CASE WHEN x.st IN ('done', 'rejected') THEN to_timestamp(x.rq + pg_temp.ri(x.n, 2309, 3600, 30 * 86400)) END
FROM (SELECT n, 1761955200 - 31 * 86400 - floor(pg_temp.r(n, 2310) * 700 * 86400)::bigint AS rq,
             CASE WHEN pg_temp.r(n, 2308) < 0.10 THEN 'open' WHEN pg_temp.r(n, 2308) < 0.20 THEN 'in_progress'
                  WHEN pg_temp.r(n, 2308) < 0.95 THEN 'done' ELSE 'rejected' END AS st
      FROM generate_series(1, pg_temp.vol('gdpr_requests')) n) x;

-- consent_log: ids in time order ---------------------------------------------------------------------
INSERT INTO consent_log (id, workshop_id, kunde_id, consent_type, granted, source, created_at)
SELECT s.e,
       pg_temp.id('workshops', cv.ws),
       cv.kid,
       CASE WHEN pg_temp.r(s.e, 2402) < 0.8 THEN 'chat_privacy' ELSE 'marketing' END,
       pg_temp.r(s.e, 2403) >= 0.15,
       CASE WHEN pg_temp.r(s.e, 2404) < 0.10 THEN NULL
            ELSE pg_temp.pick(ARRAY['widget', 'widget', 'widget', 'whatsapp', 'email'], pg_temp.r(s.e, 2405)) END,
       to_timestamp(1761955200 - 730 * 86400
                    + floor((s.e - 1 + pg_temp.r(s.e, 2406)) * (730 * 86400.0 / pg_temp.vol('consent_log'))))
FROM (SELECT e, CASE WHEN e = 1 THEN 1 ELSE 1 + floor(pg_temp.r(e, 2401) * pg_temp.vol('conversations'))::bigint END AS kk
      FROM generate_series(1, pg_temp.vol('consent_log')) e) s
JOIN _conv cv ON cv.k = s.kk;

-- bigserial sequences: past max(id), so that the application's next insert does not collide ---------
SELECT setval(pg_get_serial_sequence('chat_messages', 'id'), coalesce(max(id), 0) + 1, false) FROM chat_messages;
SELECT setval(pg_get_serial_sequence('analytics_events', 'id'), coalesce(max(id), 0) + 1, false) FROM analytics_events;
SELECT setval(pg_get_serial_sequence('audit_logs', 'id'), coalesce(max(id), 0) + 1, false) FROM audit_logs;
SELECT setval(pg_get_serial_sequence('consent_log', 'id'), coalesce(max(id), 0) + 1, false) FROM consent_log;
