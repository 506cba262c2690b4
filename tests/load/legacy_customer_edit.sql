-- Reception edits a customer: phone, city, a (valid) email, consent.
\set n random(1, 2000000000)
\set c random(1, 5)
\if :journal
WITH u AS (
  UPDATE customers SET phone = '+49 ' || (:n % 900 + 100) || ' ' || :n,
                       city = (ARRAY['Berlin', 'München', 'Köln', 'Hamburg', 'Görlitz'])[:c],
                       email = 'kunde.' || :n || '@example.de', marketing_consent = (:n % 2 = 0), updated_at = now()
   WHERE id = (SELECT id FROM customers WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1)
  RETURNING id)
INSERT INTO carbot_load.journal (op, tbl, key) SELECT 'update', 'customers', id::text FROM u;
\else
UPDATE customers SET phone = '+49 ' || (:n % 900 + 100) || ' ' || :n,
                     city = (ARRAY['Berlin', 'München', 'Köln', 'Hamburg', 'Görlitz'])[:c],
                     email = 'kunde.' || :n || '@example.de', marketing_consent = (:n % 2 = 0), updated_at = now()
 WHERE id = (SELECT id FROM customers WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1);
\endif
