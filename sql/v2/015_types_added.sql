-- carbot_v2: enum values added after a schema may already exist (010_types.sql creates each type only
-- when it is absent). Applied with `SET search_path TO <target schema>`; idempotent.

-- Legacy 'converted' is 'won' in carbot_v2 (docs/mapping.md, leads.status).
ALTER TYPE lead_status ADD VALUE IF NOT EXISTS 'won' AFTER 'qualified';
