-- A message in an existing conversation (workshop_id, kunde_id), from the customer or the bot.
\set s random(1, 3)
BEGIN;
SELECT m.workshop_id AS ws, m.kunde_id AS kid FROM chat_messages m
 WHERE m.id >= (SELECT (random() * max(id))::bigint FROM chat_messages)
   AND m.workshop_id IS NOT NULL AND m.kunde_id IS NOT NULL ORDER BY m.id LIMIT 1 \gset
\if :journal
WITH m AS (
  INSERT INTO chat_messages (workshop_id, kunde_id, sender, message, metadata, created_at)
  VALUES (:ws, :kid, (ARRAY['user', 'bot', 'agent'])[:s], 'Wann haben Sie Zeit? ' || md5(random()::text), NULL, now())
  RETURNING id)
INSERT INTO carbot_load.journal (op, tbl, key) SELECT 'insert', 'chat_messages', id::text FROM m;
\else
INSERT INTO chat_messages (workshop_id, kunde_id, sender, message, metadata, created_at)
VALUES (:ws, :kid, (ARRAY['user', 'bot', 'agent'])[:s], 'Wann haben Sie Zeit? ' || md5(random()::text), NULL, now());
\endif
COMMIT;
