-- The widget reports an analytics event (a third without a client key).
\set t random(1, 4)
\set n random(1, 2000000000)
\set ip random(1, 254)
\if :journal
WITH e AS (
  INSERT INTO analytics_events (workshop_id, event_type, event_data, kunde_id, page_url, user_agent, ip_address, created_at)
  SELECT w.id, (ARRAY['widget_open', 'message_sent', 'lead_created', 'page_view'])[:t],
         jsonb_build_object('n', :n::bigint), CASE WHEN :n % 3 = 0 THEN NULL ELSE 'load-' || :n END,
         'https://werkstatt.example/seite/' || (:n % 50), 'Mozilla/5.0 (load)', ('10.1.2.' || :ip)::inet, now()
    FROM (SELECT coalesce((SELECT id FROM workshops WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1),
                          (SELECT id FROM workshops ORDER BY id LIMIT 1)) AS id) w
  RETURNING id)
INSERT INTO carbot_load.journal (op, tbl, key) SELECT 'insert', 'analytics_events', id::text FROM e;
\else
INSERT INTO analytics_events (workshop_id, event_type, event_data, kunde_id, page_url, user_agent, ip_address, created_at)
SELECT w.id, (ARRAY['widget_open', 'message_sent', 'lead_created', 'page_view'])[:t],
       jsonb_build_object('n', :n::bigint), CASE WHEN :n % 3 = 0 THEN NULL ELSE 'load-' || :n END,
       'https://werkstatt.example/seite/' || (:n % 50), 'Mozilla/5.0 (load)', ('10.1.2.' || :ip)::inet, now()
  FROM (SELECT coalesce((SELECT id FROM workshops WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1),
                        (SELECT id FROM workshops ORDER BY id LIMIT 1)) AS id) w;
\endif
