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
-- Both are LEFT JOINs to the parent view on its key (the parent's primary key; one row per key, so
-- the join never multiplies rows). The planner then chooses per statement: a per-key lookup (sync
-- trigger) or a keyset batch nests an Index Scan on the parent's primary key, a full scan hashes the
-- parent once instead of running a subquery per row. A LEFT JOIN whose columns a query does not use
-- is removed by the planner (the parent is unique on the key), so a parent check costs only the
-- parent's own checks, never its unused columns. "Not found" is `p._src_key IS NULL` (_src_key is
-- the parent's primary key, never NULL in a match).
-- Normalisations whose result a view reads twice (the value and, in legacy_raw, the set-aside original)
-- and the name split are computed in one LATERAL subquery with OFFSET 0 per row: evaluated once per
-- row (a pulled-up subquery would be copied into every expression that uses its result, and the rule
-- functions are inlined expressions, so each copy would compute the normalisation again).

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
  -- duplicate_of: the first user (created_at, then id) of the same normalised address, when that is
  -- another user. One pass over users grouped by address (hash join), not a scan per user. The group
  -- key is the trimmed lower-case address without the shape check: a group whose key is not a valid
  -- address never matches normalise_email(l.email), which is NULL or exactly that key.
  FROM (SELECT l.*,
               CASE WHEN f.first_id <> l.id THEN f.first_id END AS duplicate_of
          FROM users l
          LEFT JOIN (SELECT pg_catalog.lower(pg_catalog.btrim(d.email, E' \t\r\n')) AS email_key,
                            (pg_catalog.array_agg(d.id ORDER BY COALESCE(d.created_at, '-infinity'), d.id))[1]
                                AS first_id
                       FROM users d
                      WHERE d.email IS NOT NULL
                      GROUP BY 1) f ON f.email_key = normalise_email(l.email)) u;

CREATE OR REPLACE VIEW map_workshops AS
SELECT w.id,
       (SELECT o.organization_id FROM workshop_owners o WHERE o.workshop_id = w.id) AS organization_id,
       -- scalar subqueries, not joins: these two columns are only computed when a query reads them
       -- (a parent check on a workshop is then one primary-key lookup, at any depth of nesting)
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
  -- (the normalisations are computed twice here: 500 rows, and a lateral subquery would sit in every
  -- child's parent check)
  FROM workshops w;

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
  -- grouped by workshop_owners' organization_id (the value map_workshops.organization_id reads), so a
  -- lookup by id filters workshop_owners directly
  FROM (SELECT o.organization_id,
               pg_catalog.min(o.owner_key) AS owner_key,
               (pg_catalog.array_agg(w.name ORDER BY w.created_at NULLS LAST, w.id))[1] AS name,
               (pg_catalog.array_agg(w.slug ORDER BY w.created_at NULLS LAST, w.id)
                    FILTER (WHERE w.slug IS NOT NULL))[1] AS slug,
               (pg_catalog.array_agg(w.city ORDER BY w.created_at NULLS LAST, w.id))[1] AS city,
               pg_catalog.min(w.created_at) AS created_at
          FROM map_workshops w
          JOIN workshop_owners o ON o.workshop_id = w.id
         WHERE w._quarantine_reason IS NULL
         GROUP BY o.organization_id) g;

CREATE OR REPLACE VIEW map_team_members AS
SELECT t.id,
       t.workshop_id,
       t.user_id,
       team_role_map(t.role)::team_role AS role,
       t.invited_at,
       t.accepted_at,
       t.id AS _src_key,
       COALESCE(
           CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
                WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END,
           CASE WHEN pu._src_key IS NULL THEN 'orphan: user_id not found'
                WHEN pu._quarantine_reason IS NOT NULL THEN 'parent quarantined: user_id' END,
           unknown_value('team_members.role', t.role, team_role_map(t.role), false)
       ) AS _quarantine_reason
  FROM team_members t
  LEFT JOIN map_workshops pw ON pw._src_key = t.workshop_id
  LEFT JOIN map_users pu ON pu._src_key = t.user_id;

CREATE OR REPLACE VIEW map_customers AS
SELECT c.id,
       c.workshop_id,
       n.parts[1] AS title,
       n.parts[2] AS first_name,
       n.parts[3] AS last_name,
       n.email,
       c.phone,
       c.address AS address_line1,
       clean_text(c.city) AS city,
       n.postal_code,
       c.active AS is_active,
       c.marketing_consent AS gdpr_consent_given,
       c.created_at,
       c.updated_at,
       NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           -- the legacy name whenever title + first + last does not spell it exactly
           'name', CASE WHEN pg_catalog.btrim(c.name) <> ''
                         AND join_name(n.parts[1], n.parts[2], n.parts[3]) IS DISTINCT FROM c.name
                        THEN c.name END,
           'email', set_aside(c.email, n.email),
           'postal_code', set_aside(c.postal_code, n.postal_code))), '{}'::jsonb) AS legacy_raw,
       c.id AS _src_key,
       CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
            WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END AS _quarantine_reason
  FROM customers c
 -- the plpgsql split_name only for the names split_name_fast leaves to it (comma, title or particle); the name
 -- squeezed once (the inner subquery). c.id in the subquery makes the row its parameter: without it the planner
 -- caches the subquery's result per (name, email, postal_code) in a Memoize node, which misses for nearly every
 -- row (the combinations are unique) and cost ~12 % of a full scan.
 CROSS JOIN LATERAL (SELECT COALESCE(split_name_fast(s.name), split_name(c.name)) AS parts,
                            normalise_email(c.email) AS email,
                            normalise_postal_code(c.postal_code) AS postal_code,
                            c.id AS row_key
                       FROM (SELECT squeeze_blanks(c.name) AS name OFFSET 0) s OFFSET 0) n
  LEFT JOIN map_workshops pw ON pw._src_key = c.workshop_id;

CREATE OR REPLACE VIEW map_customer_vehicles AS
SELECT v.id,
       v.customer_id,
       v.workshop_id,
       v.make,
       v.model,
       n.year,
       normalise_plate(v.license_plate) AS license_plate,
       n.vin,
       CASE WHEN v.mileage_km >= 0 THEN v.mileage_km END AS mileage_km,
       v.fuel_type,
       v.created_at,
       v.updated_at,
       NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           'year', CASE WHEN n.year IS NULL THEN v.year END,
           'vin', set_aside(v.vin, n.vin),
           'mileage_km', CASE WHEN v.mileage_km < 0 THEN v.mileage_km END)), '{}'::jsonb) AS legacy_raw,
       v.id AS _src_key,
       COALESCE(
           CASE WHEN pc._src_key IS NULL THEN 'orphan: customer_id not found'
                WHEN pc._quarantine_reason IS NOT NULL THEN 'parent quarantined: customer_id' END,
           CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
                WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END
       ) AS _quarantine_reason
  FROM vehicles v
 CROSS JOIN LATERAL (SELECT valid_vehicle_year(v.year, v.created_at) AS year, normalise_vin(v.vin) AS vin OFFSET 0) n
  LEFT JOIN map_customers pc ON pc._src_key = v.customer_id
  LEFT JOIN map_workshops pw ON pw._src_key = v.workshop_id;
