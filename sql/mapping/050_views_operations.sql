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
           CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
                WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END,
           CASE WHEN s.name IS NULL OR pg_catalog.btrim(s.name) = '' THEN 'missing services.name' END
       ) AS _quarantine_reason
  FROM services s
  LEFT JOIN map_workshops pw ON pw._src_key = s.workshop_id;

CREATE OR REPLACE VIEW map_appointments AS
SELECT a.id,
       a.workshop_id,
       CASE WHEN pc._src_key IS NOT NULL AND pc._quarantine_reason IS NULL THEN a.customer_id END AS customer_id,
       CASE WHEN pv._src_key IS NOT NULL AND pv._quarantine_reason IS NULL THEN a.vehicle_id END AS vehicle_id,
       CASE WHEN pl._src_key IS NOT NULL AND pl._quarantine_reason IS NULL THEN a.lead_id END AS lead_id,
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
           CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
                WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END,
           CASE WHEN a.appointment_date IS NULL THEN 'missing appointments.appointment_date' END,
           unknown_value('appointments.status', a.status, appointment_status_map(a.status), false)
       ) AS _quarantine_reason
  FROM appointments a
  LEFT JOIN map_customers pc ON pc._src_key = a.customer_id
  LEFT JOIN map_customer_vehicles pv ON pv._src_key = a.vehicle_id
  LEFT JOIN map_leads pl ON pl._src_key = a.lead_id
  LEFT JOIN map_workshops pw ON pw._src_key = a.workshop_id;

CREATE OR REPLACE VIEW map_appointment_services AS
SELECT s.appointment_id,
       s.service_id,
       CASE WHEN s.price_cents >= 0 THEN s.price_cents END AS price_cents,
       NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           'price_cents', CASE WHEN s.price_cents < 0 THEN s.price_cents END)), '{}'::jsonb) AS legacy_raw,
       s.appointment_id AS _src_key1,
       s.service_id AS _src_key2,
       COALESCE(
           CASE WHEN pa._src_key IS NULL THEN 'orphan: appointment_id not found'
                WHEN pa._quarantine_reason IS NOT NULL THEN 'parent quarantined: appointment_id' END,
           CASE WHEN psv._src_key IS NULL THEN 'orphan: service_id not found'
                WHEN psv._quarantine_reason IS NOT NULL THEN 'parent quarantined: service_id' END
       ) AS _quarantine_reason
  FROM appointment_services s
  LEFT JOIN map_appointments pa ON pa._src_key = s.appointment_id
  LEFT JOIN map_services psv ON psv._src_key = s.service_id;

CREATE OR REPLACE VIEW map_workshop_closures AS
SELECT c.id,
       c.workshop_id,
       c.closed_on,
       c.reason,
       c.id AS _src_key,
       COALESCE(
           CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
                WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END,
           CASE WHEN c.closed_on IS NULL THEN 'missing workshop_closures.closed_on' END
       ) AS _quarantine_reason
  FROM workshop_closures c
  LEFT JOIN map_workshops pw ON pw._src_key = c.workshop_id;

CREATE OR REPLACE VIEW map_reviews AS
SELECT r.id,
       r.workshop_id,
       CASE WHEN pc._src_key IS NOT NULL AND pc._quarantine_reason IS NULL THEN r.customer_id END AS customer_id,
       r.rating,
       r.comment,
       review_source_map(r.source)::review_source AS source,
       r.created_at,
       r.id AS _src_key,
       COALESCE(
           CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
                WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END,
           -- 0 and 6 exist: a rating outside the scale cannot be mapped onto it without inventing one
           CASE WHEN r.rating IS NULL OR r.rating NOT BETWEEN 1 AND 5
                THEN 'rating out of range 1..5: ' || COALESCE(r.rating::text, 'NULL') END,
           unknown_value('reviews.source', r.source, review_source_map(r.source), false)
       ) AS _quarantine_reason
  FROM reviews r
  LEFT JOIN map_customers pc ON pc._src_key = r.customer_id
  LEFT JOIN map_workshops pw ON pw._src_key = r.workshop_id;
