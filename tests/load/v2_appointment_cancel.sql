-- After the switch: appointment cancellations.
\if :journal
WITH u AS (
  UPDATE appointments SET status = 'cancelled', updated_at = now()
   WHERE id = (SELECT id FROM appointments WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1)
  RETURNING id)
INSERT INTO carbot_load.journal (op, tbl, key) SELECT 'update', 'appointments', id::text FROM u;
\else
UPDATE appointments SET status = 'cancelled', updated_at = now()
 WHERE id = (SELECT id FROM appointments WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1);
\endif
