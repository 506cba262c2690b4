-- carbot_migration: projection views, tenancy and people. One view per target table:
-- the target's insertable columns (same names and types), _src_key, _quarantine_reason.
-- Applied with `SET search_path TO <mapping>, <legacy>, <target>`: the tables named here bind to
-- the legacy schema, the enum casts to the target's types. docs/mapping.md explains every column.
--
-- Reference patterns used by all views:
--   required parent  -> the row is quarantined when the parent is missing ('orphan: <col> not found')
--                       or quarantined itself ('parent quarantined: <col>'), checked through the
--                       parent's view so that a migrated row never points at a row that is not.
--   optional parent  -> kept when the parent migrates, else NULL (counted in dangling_references).
-- Both are scalar subqueries on the parent view by key (not EXISTS): the planner then looks each
-- parent up by its primary key instead of hashing the whole parent view for every batch.

-- The owner of every legacy workshop, and so its organization. Owner key, first that exists:
--   1. the workshop's owner_email, normalised (trim + lower case; case differs between rows);
--   2. the email of the owner user (owner_id -> users), normalised;
--   3. 'workshop:<id>' (no usable owner: the workshop is an organization of its own).
-- Grouping by owner only (never by city): an owner with workshops in two cities is one organization.
CREATE OR REPLACE VIEW workshop_owners AS
SELECT w.id AS workshop_id,
       k.owner_key,
       organization_uuid(k.owner_key) AS organization_id
  FROM workshops w
  LEFT JOIN users u ON u.id = w.owner_id
 CROSS JOIN LATERAL (
       SELECT COALESCE(normalise_email(w.owner_email), normalise_email(u.email), 'workshop:' || w.id::text)
              AS owner_key) k;

-- users.email is UNIQUE in legacy only case-sensitively: 'Max@Web.de' and 'max@web.de' can both
-- exist. The earliest user (created_at, then id) keeps the normalised address; a later one gets
-- email NULL and keeps its legacy address in legacy_raw (with the id of the user that has it), so
-- the account, its memberships and notifications still migrate. (Not a quarantine reason: the
-- duplicate check is only evaluated when the email column is read, not by every child's parent check.)
CREATE OR REPLACE VIEW map_users AS
SELECT u.id,
       CASE WHEN u.duplicate_of IS NULL THEN normalise_email(u.email) END AS email,
       u.full_name,
       user_role_map(u.role)::user_role AS role,
       u.password_hash,
       u.last_login_at,
       u.created_at,
       u.updated_at,
       NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           'email', set_aside(u.email, CASE WHEN u.duplicate_of IS NULL THEN normalise_email(u.email) END),
           'email_duplicate_of', u.duplicate_of)), '{}'::jsonb) AS legacy_raw,
       u.id AS _src_key,
       unknown_value('users.role', u.role, user_role_map(u.role), false) AS _quarantine_reason
  FROM (SELECT l.*,
               (SELECT d.id
                  FROM users d
                 WHERE normalise_email(d.email) = normalise_email(l.email)
                   AND (COALESCE(d.created_at, '-infinity'), d.id) < (COALESCE(l.created_at, '-infinity'), l.id)
                 ORDER BY COALESCE(d.created_at, '-infinity'), d.id
                 LIMIT 1) AS duplicate_of
          FROM users l) u;

CREATE OR REPLACE VIEW map_workshops AS
SELECT w.id,
       o.organization_id,
       CASE WHEN (SELECT p._quarantine_reason IS NULL FROM map_users p WHERE p._src_key = w.owner_id)
            THEN w.owner_id END AS owner_id,
       w.name,
       CASE WHEN w.slug ~ '-v2$'
             AND NOT EXISTS (SELECT 1 FROM workshops s WHERE s.slug = strip_slug_suffix(w.slug))
            THEN strip_slug_suffix(w.slug)
            ELSE w.slug END AS slug,
       normalise_email(w.owner_email) AS email,
       w.phone,
       w.address AS address_line1,
       clean_text(w.city) AS city,
       normalise_postal_code(w.postal_code) AS postal_code,
       business_type_map(w.business_type)::workshop_business_type AS business_type,
       w.opening_hours,
       w.services,
       w.logo_url,
       w.website,
       w.is_active,
       w.created_at,
       w.updated_at,
       NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           'owner_email', set_aside(w.owner_email, normalise_email(w.owner_email)),
           'postal_code', set_aside(w.postal_code, normalise_postal_code(w.postal_code)))), '{}'::jsonb) AS legacy_raw,
       w.id AS _src_key,
       unknown_value('workshops.business_type', w.business_type, business_type_map(w.business_type), true)
           AS _quarantine_reason
  FROM workshops w
  JOIN workshop_owners o ON o.workshop_id = w.id;

-- Derived: one organization per owner (workshop_owners), from its migrated workshops.
-- name, legal_city: of the owner's first workshop (created_at, then id); slug: the first
-- workshop slug there is (unique, as workshop slugs are), else 'org-<id hex>'; email: the owner
-- key when it is an email; legal_country: 'DE' (the legacy product is Germany-only).
CREATE OR REPLACE VIEW map_organizations AS
SELECT g.organization_id AS id,
       g.name,
       COALESCE(g.slug, 'org-' || pg_catalog.replace(g.organization_id::text, '-', '')) AS slug,
       CASE WHEN g.owner_key LIKE '%@%' THEN g.owner_key END AS email,
       g.city AS legal_city,
       'DE'::text AS legal_country,
       g.created_at,
       g.organization_id AS _src_key,
       NULL::text AS _quarantine_reason
  FROM (SELECT w.organization_id,
               pg_catalog.min(o.owner_key) AS owner_key,
               (pg_catalog.array_agg(w.name ORDER BY w.created_at NULLS LAST, w.id))[1] AS name,
               (pg_catalog.array_agg(w.slug ORDER BY w.created_at NULLS LAST, w.id)
                    FILTER (WHERE w.slug IS NOT NULL))[1] AS slug,
               (pg_catalog.array_agg(w.city ORDER BY w.created_at NULLS LAST, w.id))[1] AS city,
               pg_catalog.min(w.created_at) AS created_at
          FROM map_workshops w
          JOIN workshop_owners o ON o.workshop_id = w.id
         WHERE w._quarantine_reason IS NULL
         GROUP BY w.organization_id) g;

CREATE OR REPLACE VIEW map_team_members AS
SELECT t.id,
       t.workshop_id,
       t.user_id,
       team_role_map(t.role)::team_role AS role,
       t.invited_at,
       t.accepted_at,
       t.id AS _src_key,
       COALESCE(
           NULLIF(COALESCE((SELECT CASE WHEN p._quarantine_reason IS NULL THEN '' ELSE 'parent quarantined: workshop_id' END
                              FROM map_workshops p WHERE p._src_key = t.workshop_id),
                           'orphan: workshop_id not found'), ''),
           NULLIF(COALESCE((SELECT CASE WHEN p._quarantine_reason IS NULL THEN '' ELSE 'parent quarantined: user_id' END
                              FROM map_users p WHERE p._src_key = t.user_id),
                           'orphan: user_id not found'), ''),
           unknown_value('team_members.role', t.role, team_role_map(t.role), false)
       ) AS _quarantine_reason
  FROM team_members t;

CREATE OR REPLACE VIEW map_customers AS
SELECT c.id,
       c.workshop_id,
       n.parts[1] AS title,
       n.parts[2] AS first_name,
       n.parts[3] AS last_name,
       normalise_email(c.email) AS email,
       c.phone,
       c.address AS address_line1,
       clean_text(c.city) AS city,
       normalise_postal_code(c.postal_code) AS postal_code,
       c.active AS is_active,
       c.marketing_consent AS gdpr_consent_given,
       c.created_at,
       c.updated_at,
       NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           -- the legacy name whenever title + first + last does not spell it exactly
           'name', CASE WHEN pg_catalog.btrim(c.name) <> ''
                         AND join_name(n.parts[1], n.parts[2], n.parts[3]) IS DISTINCT FROM c.name
                        THEN c.name END,
           'email', set_aside(c.email, normalise_email(c.email)),
           'postal_code', set_aside(c.postal_code, normalise_postal_code(c.postal_code)))), '{}'::jsonb) AS legacy_raw,
       c.id AS _src_key,
       NULLIF(COALESCE((SELECT CASE WHEN p._quarantine_reason IS NULL THEN '' ELSE 'parent quarantined: workshop_id' END
                          FROM map_workshops p WHERE p._src_key = c.workshop_id),
                       'orphan: workshop_id not found'), '') AS _quarantine_reason
  FROM customers c
 CROSS JOIN LATERAL (SELECT split_name(c.name) AS parts) n;

CREATE OR REPLACE VIEW map_customer_vehicles AS
SELECT v.id,
       v.customer_id,
       v.workshop_id,
       v.make,
       v.model,
       valid_vehicle_year(v.year, v.created_at) AS year,
       normalise_plate(v.license_plate) AS license_plate,
       normalise_vin(v.vin) AS vin,
       CASE WHEN v.mileage_km >= 0 THEN v.mileage_km END AS mileage_km,
       v.fuel_type,
       v.created_at,
       v.updated_at,
       NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           'year', CASE WHEN valid_vehicle_year(v.year, v.created_at) IS NULL THEN v.year END,
           'vin', set_aside(v.vin, normalise_vin(v.vin)),
           'mileage_km', CASE WHEN v.mileage_km < 0 THEN v.mileage_km END)), '{}'::jsonb) AS legacy_raw,
       v.id AS _src_key,
       COALESCE(
           NULLIF(COALESCE((SELECT CASE WHEN p._quarantine_reason IS NULL THEN '' ELSE 'parent quarantined: customer_id' END
                              FROM map_customers p WHERE p._src_key = v.customer_id),
                           'orphan: customer_id not found'), ''),
           NULLIF(COALESCE((SELECT CASE WHEN p._quarantine_reason IS NULL THEN '' ELSE 'parent quarantined: workshop_id' END
                              FROM map_workshops p WHERE p._src_key = v.workshop_id),
                           'orphan: workshop_id not found'), '')
       ) AS _quarantine_reason
  FROM vehicles v;
