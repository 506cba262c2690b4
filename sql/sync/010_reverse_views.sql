-- carbot_migration: reverse projections, carbot_v2 -> legacy, for the reverse sync after the switch
-- (docs/sync.md). One view per target table that has a legacy twin: exactly the legacy table's columns
-- (same names), plus _dst_key (the legacy primary key; _dst_key1, _dst_key2 for composite keys).
-- Applied with `SET search_path TO <mapping>, <target>`: the tables named here bind to carbot_v2, the
-- rule functions to the mapping schema; the legacy schema is not on the path (its tables share the names).
--
-- The inverse of the forward mapping on every value the forward mapping produces, so that
-- map_<t>(rmap_<t>(row)) = row: validation after a rollback proves the legacy side got every write.
-- Values the forward mapping set aside (legacy_raw: an invalid email, a 4-digit postal code, ...) come
-- back from legacy_raw while the typed column is still NULL. Derived tables (organizations,
-- chat_sessions) have no legacy twin: a chat message's kunde_id comes from its session.

CREATE OR REPLACE VIEW rmap_users AS
SELECT u.id, COALESCE(u.email, u.legacy_raw ->> 'email') AS email, u.full_name, u.role::text AS role,
       u.password_hash, u.last_login_at, u.created_at, u.updated_at, u.id AS _dst_key
  FROM users u;

CREATE OR REPLACE VIEW rmap_workshops AS
SELECT w.id, w.owner_id, w.name, w.slug, COALESCE(w.email, w.legacy_raw ->> 'owner_email') AS owner_email,
       w.phone, w.address_line1 AS address, w.city,
       COALESCE(w.postal_code, w.legacy_raw ->> 'postal_code') AS postal_code,
       w.business_type::text AS business_type, w.opening_hours, w.services, w.logo_url, w.website, w.is_active,
       w.created_at, w.updated_at, w.id AS _dst_key
  FROM workshops w;

CREATE OR REPLACE VIEW rmap_team_members AS
SELECT t.id, t.workshop_id, t.user_id, t.role::text AS role, t.invited_at, t.accepted_at, t.id AS _dst_key
  FROM team_members t;

-- The name: the legacy spelling while the parts still spell it; else the full name when the forward rule splits
-- it into the same parts ('Hans Peter' + 'Müller'); else the 'Family, Given' form, which the forward rule reads
-- exactly ('Hans' + 'Peter Müller' -> 'Peter Müller, Hans'); else the full name (the forward rule's split wins).
CREATE OR REPLACE VIEW rmap_customers AS
SELECT c.id, c.workshop_id,
       CASE WHEN c.legacy_raw ? 'name'
             AND split_name(c.legacy_raw ->> 'name') IS NOT DISTINCT FROM ARRAY[c.title, c.first_name, c.last_name]
            THEN c.legacy_raw ->> 'name'
            WHEN split_name(c.full_name) IS NOT DISTINCT FROM ARRAY[c.title, c.first_name, c.last_name]
            THEN c.full_name
            WHEN c.last_name IS NOT NULL AND c.first_name IS NOT NULL
             AND split_name(c.last_name || ', ' || pg_catalog.concat_ws(' ', c.title, c.first_name))
                 IS NOT DISTINCT FROM ARRAY[c.title, c.first_name, c.last_name]
            THEN c.last_name || ', ' || pg_catalog.concat_ws(' ', c.title, c.first_name)
            ELSE c.full_name END AS name,
       COALESCE(c.email, c.legacy_raw ->> 'email') AS email, c.phone, c.address_line1 AS address, c.city,
       COALESCE(c.postal_code, c.legacy_raw ->> 'postal_code') AS postal_code, c.is_active AS active,
       c.gdpr_consent_given AS marketing_consent, c.created_at, c.updated_at, c.id AS _dst_key
  FROM customers c;

CREATE OR REPLACE VIEW rmap_customer_vehicles AS
SELECT v.id, v.customer_id, v.workshop_id, v.make, v.model,
       COALESCE(v.year, (v.legacy_raw ->> 'year')::integer) AS year, v.license_plate,
       COALESCE(v.vin, v.legacy_raw ->> 'vin') AS vin,
       COALESCE(v.mileage_km, (v.legacy_raw ->> 'mileage_km')::integer) AS mileage_km,
       v.fuel_type, v.created_at, v.updated_at, v.id AS _dst_key
  FROM customer_vehicles v;

CREATE OR REPLACE VIEW rmap_leads AS
SELECT l.id, l.workshop_id, l.client_key AS kunde_id, l.name, COALESCE(l.email, l.legacy_raw ->> 'email') AS email,
       l.phone AS telefon, l.description AS anliegen, l.vehicle_info AS fahrzeug,
       CASE l.status WHEN 'won' THEN 'converted' ELSE l.status::text END AS status,
       l.priority::text AS priority, COALESCE(l.lead_score, (l.legacy_raw ->> 'lead_score')::integer) AS lead_score,
       l.chat_history AS chatverlauf, l.source::text AS source, l.consent_given, l.consent_timestamp AS consent_at,
       l.captured_at AS "timestamp", l.created_at, l.updated_at, l.id AS _dst_key
  FROM leads l;

CREATE OR REPLACE VIEW rmap_lead_notes AS
SELECT n.id, n.lead_id, n.user_id, n.note, n.created_at, n.id AS _dst_key
  FROM lead_notes n;

CREATE OR REPLACE VIEW rmap_chat_messages AS
SELECT m.id, m.workshop_id, s.client_key AS kunde_id, m.lead_id, m.sender::text AS sender, m.message, m.metadata,
       m.created_at, m.id AS _dst_key
  FROM chat_messages m
  LEFT JOIN chat_sessions s ON s.id = m.session_id;

CREATE OR REPLACE VIEW rmap_analytics_events AS
SELECT e.id, e.workshop_id, e.event_type, e.event_data, e.client_key AS kunde_id, e.page_url, e.user_agent,
       e.ip_address, e.created_at, e.id AS _dst_key
  FROM analytics_events e;

CREATE OR REPLACE VIEW rmap_services AS
SELECT s.id, s.workshop_id, s.name, s.description,
       COALESCE(s.price_cents, (s.legacy_raw ->> 'price_cents')::integer) AS price_cents,
       COALESCE(s.duration_minutes, (s.legacy_raw ->> 'duration_minutes')::integer) AS duration_minutes,
       s.category, s.is_active, s.created_at, s.updated_at, s.id AS _dst_key
  FROM services s;

CREATE OR REPLACE VIEW rmap_appointments AS
SELECT a.id, a.workshop_id, a.customer_id, a.vehicle_id, a.lead_id, a.scheduled_date AS appointment_date,
       a.scheduled_time AS appointment_time,
       COALESCE(a.duration_minutes, (a.legacy_raw ->> 'duration_minutes')::integer) AS duration_minutes,
       a.status::text AS status, a.notes, a.created_at, a.updated_at, a.id AS _dst_key
  FROM appointments a;

CREATE OR REPLACE VIEW rmap_appointment_services AS
SELECT s.appointment_id, s.service_id, COALESCE(s.price_cents, (s.legacy_raw ->> 'price_cents')::integer) AS price_cents,
       s.appointment_id AS _dst_key1, s.service_id AS _dst_key2
  FROM appointment_services s;

CREATE OR REPLACE VIEW rmap_workshop_closures AS
SELECT c.id, c.workshop_id, c.closed_on, c.reason, c.id AS _dst_key
  FROM workshop_closures c;

CREATE OR REPLACE VIEW rmap_reviews AS
SELECT r.id, r.workshop_id, r.customer_id, r.rating, r.comment, r.source::text AS source, r.created_at,
       r.id AS _dst_key
  FROM reviews r;

CREATE OR REPLACE VIEW rmap_subscriptions AS
SELECT s.id, s.workshop_id, s.plan::text AS plan, s.status::text AS status, s.stripe_customer_id,
       s.stripe_subscription_id, s.current_period_start, s.current_period_end, s.cancel_at_period_end,
       s.created_at, s.updated_at, s.id AS _dst_key
  FROM subscriptions s;

CREATE OR REPLACE VIEW rmap_invoices AS
SELECT i.id, i.workshop_id, i.subscription_id, i.stripe_invoice_id, i.amount_cents, i.currency,
       i.status::text AS status, i.issued_at, i.paid_at, i.pdf_url, i.id AS _dst_key
  FROM invoices i;

CREATE OR REPLACE VIEW rmap_chatbot_settings AS
SELECT c.workshop_id, c.greeting, c.primary_color, c.language::text AS language, c.widget_position, c.auto_reply,
       c.settings, c.updated_at, c.workshop_id AS _dst_key
  FROM chatbot_settings c;

CREATE OR REPLACE VIEW rmap_faq_entries AS
SELECT f.id, f.workshop_id, f.question, f.answer, f.category, f.sort_order, f.is_active, f.created_at,
       f.id AS _dst_key
  FROM faq_entries f;

CREATE OR REPLACE VIEW rmap_email_templates AS
SELECT t.id, t.workshop_id, t.template_key, t.subject, t.body_html, t.updated_at, t.id AS _dst_key
  FROM email_templates t;

CREATE OR REPLACE VIEW rmap_notifications AS
SELECT n.id, n.workshop_id, n.user_id, n.type, n.title, n.body, n.read_at, n.created_at, n.id AS _dst_key
  FROM notifications n;

CREATE OR REPLACE VIEW rmap_api_keys AS
SELECT k.id, k.workshop_id, k.name, k.key_hash, k.last_used_at, k.revoked_at, k.created_at, k.id AS _dst_key
  FROM api_keys k;

CREATE OR REPLACE VIEW rmap_webhooks AS
SELECT h.id, h.workshop_id, h.url, h.events, h.secret, h.is_active, h.created_at, h.id AS _dst_key
  FROM webhooks h;

CREATE OR REPLACE VIEW rmap_audit_logs AS
SELECT a.id, a.workshop_id, a.user_id, a.action, a.entity_type, a.entity_id, a.changes, a.ip_address, a.created_at,
       a.id AS _dst_key
  FROM audit_logs a;

CREATE OR REPLACE VIEW rmap_gdpr_requests AS
SELECT g.id, g.workshop_id, COALESCE(g.requester_email, g.legacy_raw ->> 'requester_email') AS requester_email,
       g.request_type::text AS request_type, g.status::text AS status, g.requested_at, g.completed_at,
       g.id AS _dst_key
  FROM gdpr_requests g;

CREATE OR REPLACE VIEW rmap_consent_log AS
SELECT c.id, c.workshop_id, c.client_key AS kunde_id, c.consent_type::text AS consent_type, c.granted, c.source,
       c.created_at, c.id AS _dst_key
  FROM consent_log c;
