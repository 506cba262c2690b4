-- After the switch: customer edits (typed name parts, normalised email).
\set n random(1, 2000000000)
\if :journal
WITH u AS (
  UPDATE customers SET phone = '+49 89 ' || :n, email = 'v2.' || :n || '@example.de', city = 'Leipzig',
                       updated_at = now()
   WHERE id = (SELECT id FROM customers WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1)
  RETURNING id)
INSERT INTO carbot_load.journal (op, tbl, key) SELECT 'update', 'customers', id::text FROM u;
\else
UPDATE customers SET phone = '+49 89 ' || :n, email = 'v2.' || :n || '@example.de', city = 'Leipzig',
                     updated_at = now()
 WHERE id = (SELECT id FROM customers WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1);
\endif
