-- After the switch: lead status updates.
\set st random(1, 6)
\if :journal
WITH u AS (
  UPDATE leads SET status = (ARRAY['new', 'contacted', 'qualified', 'won', 'lost', 'spam'])[:st]::lead_status,
                   updated_at = now()
   WHERE id = (SELECT id FROM leads WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1)
  RETURNING id)
INSERT INTO carbot_load.journal (op, tbl, key) SELECT 'update', 'leads', id::text FROM u;
\else
UPDATE leads SET status = (ARRAY['new', 'contacted', 'qualified', 'won', 'lost', 'spam'])[:st]::lead_status,
                 updated_at = now()
 WHERE id = (SELECT id FROM leads WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1);
\endif
