-- After the switch: the new app captures a lead in carbot_v2 (search_path carbot_v2).
\set n random(1, 2000000000)
\set score random(0, 100)
\set st random(1, 4)
\if :journal
WITH l AS (
  INSERT INTO leads (workshop_id, client_key, name, email, phone, subject, description, vehicle_info, status, priority,
                     lead_score, chat_history, source, consent_given, consent_timestamp, captured_at, created_at, updated_at)
  SELECT w.id, 'v2-' || :n, 'Neue App ' || :n, 'neu.' || :n || '@example.com', '+49 40 ' || :n, 'Ölwechsel ' || :n,
         'Ölwechsel ' || :n, 'BMW 3er', (ARRAY['new', 'contacted', 'qualified', 'won'])[:st]::lead_status,
         'high', :score, '[]'::jsonb, 'widget', false, NULL, now(), now(), now()
    FROM (SELECT coalesce((SELECT id FROM workshops WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1),
                          (SELECT id FROM workshops ORDER BY id LIMIT 1)) AS id) w
  RETURNING id)
INSERT INTO carbot_load.journal (op, tbl, key) SELECT 'insert', 'leads', id::text FROM l;
\else
INSERT INTO leads (workshop_id, client_key, name, email, phone, subject, description, vehicle_info, status, priority,
                   lead_score, chat_history, source, consent_given, consent_timestamp, captured_at, created_at, updated_at)
SELECT w.id, 'v2-' || :n, 'Neue App ' || :n, 'neu.' || :n || '@example.com', '+49 40 ' || :n, 'Ölwechsel ' || :n,
       'Ölwechsel ' || :n, 'BMW 3er', (ARRAY['new', 'contacted', 'qualified', 'won'])[:st]::lead_status,
       'high', :score, '[]'::jsonb, 'widget', false, NULL, now(), now(), now()
  FROM (SELECT coalesce((SELECT id FROM workshops WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1),
                        (SELECT id FROM workshops ORDER BY id LIMIT 1)) AS id) w;
\endif
