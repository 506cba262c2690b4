-- carbot_v2: enum types for the closed sets of the domain.
-- Applied with `SET search_path TO <target schema>`; no schema is named here.
-- Idempotent: each type is created only when absent. Adding a value later is
-- `ALTER TYPE ... ADD VALUE IF NOT EXISTS` in a new file, never an edit here.
-- The mapping (sql/mapping/010_rules.sql) maps every legacy spelling onto these
-- values explicitly; a value it does not know is quarantined with a reason and
-- listed by the view carbot_migration.unmapped_values (docs/mapping.md).

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT * FROM (VALUES
            ('user_role',              ARRAY['owner', 'staff', 'admin']),
            ('team_role',              ARRAY['owner', 'mechanic', 'reception', 'admin']),
            ('workshop_business_type', ARRAY['independent', 'franchise', 'dealership', 'specialist']),
            ('lead_status',            ARRAY['new', 'contacted', 'qualified', 'won', 'lost', 'spam']),
            ('lead_priority',          ARRAY['low', 'medium', 'high', 'urgent']),
            ('lead_source',            ARRAY['widget', 'whatsapp', 'email', 'phone']),
            ('chat_sender',            ARRAY['user', 'bot', 'agent']),
            ('appointment_status',     ARRAY['scheduled', 'confirmed', 'completed', 'cancelled', 'no_show']),
            ('review_source',          ARRAY['google', 'carbot', 'email']),
            ('subscription_plan',      ARRAY['starter', 'professional', 'enterprise']),
            ('subscription_status',    ARRAY['trialing', 'active', 'past_due', 'canceled']),
            ('invoice_status',         ARRAY['draft', 'open', 'paid', 'void', 'uncollectible']),
            ('chatbot_language',       ARRAY['de', 'en']),
            ('gdpr_request_type',      ARRAY['access', 'erasure', 'rectification', 'portability']),
            ('gdpr_request_status',    ARRAY['open', 'in_progress', 'done', 'rejected']),
            ('consent_type',           ARRAY['chat_privacy', 'marketing']),
            ('migration_state',        ARRAY['pending', 'copying', 'copied', 'failed'])
        ) AS v(name, labels)
    LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_type ty
              JOIN pg_catalog.pg_namespace n ON n.oid = ty.typnamespace
             WHERE ty.typname = t.name AND n.nspname = pg_catalog.current_schema()
        ) THEN
            -- format(%I, %L): the type name and labels are quoted, never pasted.
            EXECUTE pg_catalog.format(
                'CREATE TYPE %I AS ENUM (%s)', t.name,
                (SELECT pg_catalog.string_agg(pg_catalog.quote_literal(l), ', ' ORDER BY o)
                   FROM pg_catalog.unnest(t.labels) WITH ORDINALITY AS u(l, o)));
        END IF;
    END LOOP;
END
$$;
