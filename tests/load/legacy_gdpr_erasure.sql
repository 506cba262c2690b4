-- GDPR erasure: a customer and their vehicles are deleted.
BEGIN;
SELECT coalesce((SELECT id FROM customers WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1),
                (SELECT id FROM customers ORDER BY id LIMIT 1)) AS cust \gset
\if :journal
WITH v AS (DELETE FROM vehicles WHERE customer_id = :cust RETURNING id)
INSERT INTO carbot_load.journal (op, tbl, key) SELECT 'delete', 'vehicles', id::text FROM v;
WITH c AS (DELETE FROM customers WHERE id = :cust RETURNING id)
INSERT INTO carbot_load.journal (op, tbl, key) SELECT 'delete', 'customers', id::text FROM c;
\else
DELETE FROM vehicles WHERE customer_id = :cust;
DELETE FROM customers WHERE id = :cust;
\endif
COMMIT;
