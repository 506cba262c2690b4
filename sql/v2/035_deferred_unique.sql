-- carbot_v2: slugs unique at commit, not per statement, also in a schema created before they were
-- (020_tables.sql creates each table only when it is absent). A sync that moves a workshop from a one-workshop
-- organization to a new one derives the new organization (with the slug the old one still holds) before the
-- old one can go; a '-v2' twin and its base can swap slugs. Applied with `SET search_path TO <target schema>`;
-- idempotent; organizations and workshops are small (hundreds of rows).
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT con.conname, cl.relname
          FROM pg_catalog.pg_constraint con
          JOIN pg_catalog.pg_class cl ON cl.oid = con.conrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = cl.relnamespace
         WHERE n.nspname = pg_catalog.current_schema()
           AND (cl.relname, con.conname) IN (('organizations', 'organizations_slug_key'),
                                             ('workshops', 'workshops_slug_key'))
           AND con.contype = 'u' AND NOT con.condeferrable
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %I DROP CONSTRAINT %I', c.relname, c.conname);
        EXECUTE pg_catalog.format('ALTER TABLE %I ADD CONSTRAINT %I UNIQUE (slug) DEFERRABLE INITIALLY DEFERRED',
                                  c.relname, c.conname);
    END LOOP;
END
$$;
