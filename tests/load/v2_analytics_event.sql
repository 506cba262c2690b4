-- After the switch: an analytics event.
\set t random(1, 4)
\set n random(1, 2000000000)
\if :journal
WITH e AS (
  INSERT INTO analytics_events (workshop_id, event_type, event_data, client_key, page_url, user_agent, ip_address, created_at)
  SELECT w.id, (ARRAY['widget_open', 'message_sent', 'lead_created', 'page_view'])[:t], jsonb_build_object('v2', :n::bigint),
         'v2-' || :n, 'https://werkstatt.example/neu', 'Mozilla/5.0 (v2)', '10.9.8.7', now()
    FROM (SELECT coalesce((SELECT id FROM workshops WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1),
                          (SELECT id FROM workshops ORDER BY id LIMIT 1)) AS id) w
  RETURNING id)
INSERT INTO carbot_load.journal (op, tbl, key) SELECT 'insert', 'analytics_events', id::text FROM e;
\else
INSERT INTO analytics_events (workshop_id, event_type, event_data, client_key, page_url, user_agent, ip_address, created_at)
SELECT w.id, (ARRAY['widget_open', 'message_sent', 'lead_created', 'page_view'])[:t], jsonb_build_object('v2', :n::bigint),
       'v2-' || :n, 'https://werkstatt.example/neu', 'Mozilla/5.0 (v2)', '10.9.8.7', now()
  FROM (SELECT coalesce((SELECT id FROM workshops WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1),
                        (SELECT id FROM workshops ORDER BY id LIMIT 1)) AS id) w;
\endif
