-- carbot_migration: projection views, compliance. These are records of history: every row is
-- kept, also when the workshop or user it names is gone (the ids are kept; no foreign keys).
-- Applied with `SET search_path TO <mapping>, <legacy>, <target>`.

CREATE OR REPLACE VIEW map_audit_logs AS
SELECT a.id,
       a.workshop_id,
       a.user_id,
       a.action,
       a.entity_type,
       a.entity_id,
       a.changes,
       a.ip_address,
       a.created_at,
       a.id AS _src_key,
       NULL::text AS _quarantine_reason
  FROM audit_logs a;

CREATE OR REPLACE VIEW map_gdpr_requests AS
SELECT g.id,
       g.workshop_id,
       n.requester_email,
       gdpr_request_type_map(g.request_type)::gdpr_request_type AS request_type,
       gdpr_request_status_map(g.status)::gdpr_request_status AS status,
       g.requested_at,
       g.completed_at,
       NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           'requester_email', set_aside(g.requester_email, n.requester_email))), '{}'::jsonb)
           AS legacy_raw,
       g.id AS _src_key,
       COALESCE(
           unknown_value('gdpr_requests.request_type', g.request_type, gdpr_request_type_map(g.request_type), false),
           unknown_value('gdpr_requests.status', g.status, gdpr_request_status_map(g.status), false)
       ) AS _quarantine_reason
  FROM gdpr_requests g
 CROSS JOIN LATERAL (SELECT normalise_email(g.requester_email) AS requester_email OFFSET 0) n;

CREATE OR REPLACE VIEW map_consent_log AS
SELECT c.id,
       c.workshop_id,
       c.kunde_id AS client_key,
       consent_type_map(c.consent_type)::consent_type AS consent_type,
       c.granted,
       c.source,
       c.created_at,
       c.id AS _src_key,
       unknown_value('consent_log.consent_type', c.consent_type, consent_type_map(c.consent_type), false)
           AS _quarantine_reason
  FROM consent_log c;
