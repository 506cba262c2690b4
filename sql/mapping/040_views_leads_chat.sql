-- carbot_migration: projection views, leads and chat (see 030_views_people.sql for the patterns).
-- Applied with `SET search_path TO <mapping>, <legacy>, <target>`.

CREATE OR REPLACE VIEW map_leads AS
SELECT l.id,
       l.workshop_id,
       l.kunde_id AS client_key,
       l.name,
       n.email,
       l.telefon AS phone,
       lead_subject(l.anliegen) AS subject,
       l.anliegen AS description,
       l.fahrzeug AS vehicle_info,
       lead_status_map(l.status)::lead_status AS status,
       lead_priority_map(l.priority)::lead_priority AS priority,
       CASE WHEN l.lead_score BETWEEN 0 AND 100 THEN l.lead_score END AS lead_score,
       -- the plpgsql normalise_chat_history only for the JSON strings that may hold an array or object
       COALESCE(normalise_chat_history_fast(l.chatverlauf), normalise_chat_history(l.chatverlauf)) AS chat_history,
       lead_source_map(l.source)::lead_source AS source,
       l.consent_given,                          -- NULL stays NULL: unknown is not consent
       l.consent_at AS consent_timestamp,
       l."timestamp" AS captured_at,
       l.created_at,
       l.updated_at,
       NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           'email', set_aside(l.email, n.email),
           'lead_score', CASE WHEN l.lead_score NOT BETWEEN 0 AND 100 THEN l.lead_score END)), '{}'::jsonb)
           AS legacy_raw,
       l.id AS _src_key,
       COALESCE(
           CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
                WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END,
           unknown_value('leads.status', l.status, lead_status_map(l.status), true),
           unknown_value('leads.priority', l.priority, lead_priority_map(l.priority), true),
           unknown_value('leads.source', l.source, lead_source_map(l.source), false)
       ) AS _quarantine_reason
  FROM leads l
 CROSS JOIN LATERAL (SELECT normalise_email(l.email) AS email OFFSET 0) n
  LEFT JOIN map_workshops pw ON pw._src_key = l.workshop_id;

CREATE OR REPLACE VIEW map_lead_notes AS
SELECT n.id,
       n.lead_id,
       CASE WHEN pu._src_key IS NOT NULL AND pu._quarantine_reason IS NULL THEN n.user_id END AS user_id,
       n.note,
       n.created_at,
       n.id AS _src_key,
       CASE WHEN pl._src_key IS NULL THEN 'orphan: lead_id not found'
            WHEN pl._quarantine_reason IS NOT NULL THEN 'parent quarantined: lead_id' END AS _quarantine_reason
  FROM lead_notes n
  LEFT JOIN map_users pu ON pu._src_key = n.user_id
  LEFT JOIN map_leads pl ON pl._src_key = n.lead_id;

-- Derived: one session per legacy conversation (workshop_id, kunde_id) whose workshop migrates;
-- id = chat_session_uuid(workshop_id, kunde_id), the id map_chat_messages gives its messages; both views compute
-- the function's digest once per row and format it with uuid_v3_from_md5 (020_keys.sql says why). The sync's
-- lookup by (workshop_id, client_key) still filters inside the grouped subquery.
CREATE OR REPLACE VIEW map_chat_sessions AS
SELECT uuid_v3_from_md5(k.session_md5) AS id,           -- = chat_session_uuid(g.workshop_id, g.kunde_id)
       g.workshop_id,
       g.kunde_id AS client_key,
       g.started_at,
       g.last_message_at,
       uuid_v3_from_md5(k.session_md5) AS _src_key,
       NULL::text AS _quarantine_reason
  FROM (SELECT m.workshop_id, m.kunde_id,
               pg_catalog.min(m.created_at) AS started_at,
               pg_catalog.max(m.created_at) AS last_message_at
          FROM chat_messages m
         WHERE m.workshop_id IS NOT NULL AND m.kunde_id IS NOT NULL
         GROUP BY m.workshop_id, m.kunde_id) g
 CROSS JOIN LATERAL (SELECT pg_catalog.md5(pg_catalog.decode('b05a01f83ffe3aaf9af904ffba2dd566', 'hex')
                            || pg_catalog.convert_to('chat_session:' || g.workshop_id::text || '/' || g.kunde_id, 'UTF8'))
                        AS session_md5 OFFSET 0) k
 WHERE EXISTS (SELECT 1 FROM map_workshops p WHERE p._src_key = g.workshop_id AND p._quarantine_reason IS NULL);

CREATE OR REPLACE VIEW map_chat_messages AS
SELECT m.id,
       uuid_v3_from_md5(k.session_md5) AS session_id,    -- = chat_session_uuid(m.workshop_id, m.kunde_id)
       m.workshop_id,
       CASE WHEN pl._src_key IS NOT NULL AND pl._quarantine_reason IS NULL THEN m.lead_id END AS lead_id,
       chat_sender_map(m.sender)::chat_sender AS sender,
       m.message,
       m.metadata,
       m.created_at,
       m.id AS _src_key,
       COALESCE(
           CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
                WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END,
           CASE WHEN m.kunde_id IS NULL THEN 'missing chat_messages.kunde_id (no conversation)' END,
           unknown_value('chat_messages.sender', m.sender, chat_sender_map(m.sender), false)
       ) AS _quarantine_reason
  FROM chat_messages m
 -- chat_session_uuid's digest, once per row (020_keys.sql, uuid_v3_from_md5, says why); NULL when either part is
 -- NULL, as the STRICT function returns
 CROSS JOIN LATERAL (SELECT pg_catalog.md5(pg_catalog.decode('b05a01f83ffe3aaf9af904ffba2dd566', 'hex')
                            || pg_catalog.convert_to('chat_session:' || m.workshop_id::text || '/' || m.kunde_id, 'UTF8'))
                        AS session_md5 OFFSET 0) k
  LEFT JOIN map_leads pl ON pl._src_key = m.lead_id
  LEFT JOIN map_workshops pw ON pw._src_key = m.workshop_id;

CREATE OR REPLACE VIEW map_analytics_events AS
SELECT e.id,
       e.workshop_id,
       e.event_type,
       e.event_data,
       e.kunde_id AS client_key,
       e.page_url,
       e.user_agent,
       e.ip_address,
       e.created_at,
       e.id AS _src_key,
       CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
            WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END AS _quarantine_reason
  FROM analytics_events e
  LEFT JOIN map_workshops pw ON pw._src_key = e.workshop_id;
