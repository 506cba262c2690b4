-- The legacy app captures a lead from the widget and stores the first two chat messages of the conversation.
\set n random(1, 2000000000)
\set score random(0, 100)
\set st random(1, 4)
\set pr random(1, 4)
BEGIN;
SELECT coalesce((SELECT id FROM workshops WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1),
                (SELECT id FROM workshops ORDER BY id LIMIT 1)) AS ws \gset
INSERT INTO leads (id, workshop_id, kunde_id, name, email, telefon, anliegen, fahrzeug, status, priority, lead_score,
                   chatverlauf, source, consent_given, consent_at, "timestamp", created_at, updated_at)
VALUES (gen_random_uuid(), :ws, 'load-' || :n, 'Lädt Kunde ' || :n, 'load.' || :n || '@example.com', '+49 30 ' || :n,
        'Bremsen quietschen seit ' || :n || ' km', 'VW Golf VII', (ARRAY['new', 'contacted', 'neu', 'qualified'])[:st],
        (ARRAY['low', 'medium', 'high', 'urgent'])[:pr], :score,
        jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Hallo 👋', 'ts', now())),
        'widget', true, now(), now(), now(), now())
RETURNING id AS lead \gset
\if :journal
WITH m AS (
  INSERT INTO chat_messages (workshop_id, kunde_id, lead_id, sender, message, metadata, created_at)
  VALUES (:ws, 'load-' || :n, :lead, 'user', 'Hallo, mein Auto macht Geräusche (' || :n || ')', NULL, now()),
         (:ws, 'load-' || :n, :lead, 'bot', 'Danke! Wir melden uns 🚗', '{"model": "carbot-1"}', now())
  RETURNING id)
INSERT INTO carbot_load.journal (op, tbl, key) SELECT 'insert', 'chat_messages', id::text FROM m
UNION ALL SELECT 'insert', 'leads', :lead;
\else
INSERT INTO chat_messages (workshop_id, kunde_id, lead_id, sender, message, metadata, created_at)
VALUES (:ws, 'load-' || :n, :lead, 'user', 'Hallo, mein Auto macht Geräusche (' || :n || ')', NULL, now()),
       (:ws, 'load-' || :n, :lead, 'bot', 'Danke! Wir melden uns 🚗', '{"model": "carbot-1"}', now());
\endif
COMMIT;
