-- carbot_migration: projection views, workshop operations (see 030_views_people.sql for the patterns).
-- Applied with `SET search_path TO <mapping>, <legacy>, <target>`.

CREATE OR REPLACE VIEW map_services AS
SELECT s.id,
       s.workshop_id,
       s.name,
       s.description,
       CASE WHEN s.price_cents >= 0 THEN s.price_cents END AS price_cents,
       CASE WHEN s.duration_minutes > 0 THEN s.duration_minutes END AS duration_minutes,
       s.category,
       s.is_active,
       s.created_at,
       s.updated_at,
       NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           'price_cents', CASE WHEN s.price_cents < 0 THEN s.price_cents END,
           'duration_minutes', CASE WHEN s.duration_minutes <= 0 THEN s.duration_minutes END)), '{}'::jsonb)
           AS legacy_raw,
       s.id AS _src_key,
       COALESCE(
           NULLIF(COALESCE((SELECT CASE WHEN p._quarantine_reason IS NULL THEN '' ELSE 'parent quarantined: workshop_id' END
                              FROM map_workshops p WHERE p._src_key = s.workshop_id),
                           'orphan: workshop_id not found'), ''),
           CASE WHEN s.name IS NULL OR pg_catalog.btrim(s.name) = '' THEN 'missing services.name' END
       ) AS _quarantine_reason
  FROM services s;

CREATE OR REPLACE VIEW map_appointments AS
SELECT a.id,
       a.workshop_id,
       CASE WHEN (SELECT p._quarantine_reason IS NULL FROM map_customers p WHERE p._src_key = a.customer_id)
            THEN a.customer_id END AS customer_id,
       CASE WHEN (SELECT p._quarantine_reason IS NULL FROM map_customer_vehicles p
                          WHERE p._src_key = a.vehicle_id)
            THEN a.vehicle_id END AS vehicle_id,
       CASE WHEN (SELECT p._quarantine_reason IS NULL FROM map_leads p WHERE p._src_key = a.lead_id)
            THEN a.lead_id END AS lead_id,
       a.appointment_date AS scheduled_date,
       a.appointment_time AS scheduled_time,
       local_to_instant(a.appointment_date, a.appointment_time) AS scheduled_datetime,
       CASE WHEN a.duration_minutes > 0 THEN a.duration_minutes END AS duration_minutes,
       appointment_status_map(a.status)::appointment_status AS status,
       a.notes,
       a.created_at,
       a.updated_at,
       NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           'duration_minutes', CASE WHEN a.duration_minutes <= 0 THEN a.duration_minutes END)), '{}'::jsonb)
           AS legacy_raw,
       a.id AS _src_key,
       COALESCE(
           NULLIF(COALESCE((SELECT CASE WHEN p._quarantine_reason IS NULL THEN '' ELSE 'parent quarantined: workshop_id' END
                              FROM map_workshops p WHERE p._src_key = a.workshop_id),
                           'orphan: workshop_id not found'), ''),
           CASE WHEN a.appointment_date IS NULL THEN 'missing appointments.appointment_date' END,
           unknown_value('appointments.status', a.status, appointment_status_map(a.status), false)
       ) AS _quarantine_reason
  FROM appointments a;

CREATE OR REPLACE VIEW map_appointment_services AS
SELECT s.appointment_id,
       s.service_id,
       CASE WHEN s.price_cents >= 0 THEN s.price_cents END AS price_cents,
       NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           'price_cents', CASE WHEN s.price_cents < 0 THEN s.price_cents END)), '{}'::jsonb) AS legacy_raw,
       s.appointment_id AS _src_key1,
       s.service_id AS _src_key2,
       COALESCE(
           NULLIF(COALESCE((SELECT CASE WHEN p._quarantine_reason IS NULL THEN '' ELSE 'parent quarantined: appointment_id' END
                              FROM map_appointments p WHERE p._src_key = s.appointment_id),
                           'orphan: appointment_id not found'), ''),
           NULLIF(COALESCE((SELECT CASE WHEN p._quarantine_reason IS NULL THEN '' ELSE 'parent quarantined: service_id' END
                              FROM map_services p WHERE p._src_key = s.service_id),
                           'orphan: service_id not found'), '')
       ) AS _quarantine_reason
  FROM appointment_services s;

CREATE OR REPLACE VIEW map_workshop_closures AS
SELECT c.id,
       c.workshop_id,
       c.closed_on,
       c.reason,
       c.id AS _src_key,
       COALESCE(
           NULLIF(COALESCE((SELECT CASE WHEN p._quarantine_reason IS NULL THEN '' ELSE 'parent quarantined: workshop_id' END
                              FROM map_workshops p WHERE p._src_key = c.workshop_id),
                           'orphan: workshop_id not found'), ''),
           CASE WHEN c.closed_on IS NULL THEN 'missing workshop_closures.closed_on' END
       ) AS _quarantine_reason
  FROM workshop_closures c;

CREATE OR REPLACE VIEW map_reviews AS
SELECT r.id,
       r.workshop_id,
       CASE WHEN (SELECT p._quarantine_reason IS NULL FROM map_customers p WHERE p._src_key = r.customer_id)
            THEN r.customer_id END AS customer_id,
       r.rating,
       r.comment,
       review_source_map(r.source)::review_source AS source,
       r.created_at,
       r.id AS _src_key,
       COALESCE(
           NULLIF(COALESCE((SELECT CASE WHEN p._quarantine_reason IS NULL THEN '' ELSE 'parent quarantined: workshop_id' END
                              FROM map_workshops p WHERE p._src_key = r.workshop_id),
                           'orphan: workshop_id not found'), ''),
           -- 0 and 6 exist: a rating outside the scale cannot be mapped onto it without inventing one
           CASE WHEN r.rating IS NULL OR r.rating NOT BETWEEN 1 AND 5
                THEN 'rating out of range 1..5: ' || COALESCE(r.rating::text, 'NULL') END,
           unknown_value('reviews.source', r.source, review_source_map(r.source), false)
       ) AS _quarantine_reason
  FROM reviews r;
