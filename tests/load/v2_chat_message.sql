-- After the switch: a message in an existing session; the app keeps the session's last_message_at.
\set s random(1, 3)
BEGIN;
SELECT s.id AS sid, s.workshop_id AS ws FROM chat_sessions s
 WHERE s.id >= gen_random_uuid() ORDER BY s.id LIMIT 1 \gset
\if :journal
WITH m AS (
  INSERT INTO chat_messages (session_id, workshop_id, sender, message, created_at)
  VALUES (:sid, :ws, (ARRAY['user', 'bot', 'agent'])[:s]::chat_sender, 'Neue App: ' || md5(random()::text), now())
  RETURNING id)
INSERT INTO carbot_load.journal (op, tbl, key) SELECT 'insert', 'chat_messages', id::text FROM m;
\else
INSERT INTO chat_messages (session_id, workshop_id, sender, message, created_at)
VALUES (:sid, :ws, (ARRAY['user', 'bot', 'agent'])[:s]::chat_sender, 'Neue App: ' || md5(random()::text), now());
\endif
UPDATE chat_sessions SET last_message_at = greatest(last_message_at, now()) WHERE id = :sid;
COMMIT;
