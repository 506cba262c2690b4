-- carbot_migration: start from no views, so that a changed view (a new column, a changed type)
-- is created afresh instead of failing CREATE OR REPLACE VIEW. Applied with
-- `SET search_path TO <mapping>, <legacy>, <target>`: current_schema() is the mapping schema,
-- which holds nothing but the mapping (rule functions and views). Runs in the same transaction
-- as the files that recreate the views, so nobody ever sees the mapping half-built.
-- One DROP for all of them and no CASCADE: the views may depend on each other, but an object
-- outside this set that depends on a view (a sync trigger's function, a report elsewhere) makes
-- the apply fail with PostgreSQL's "other objects depend on it" instead of being dropped silently.
DO $$
DECLARE
    names text;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c.relname), ', ')
      INTO names
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = pg_catalog.current_schema() AND c.relkind = 'v';
    IF names IS NOT NULL THEN
        EXECUTE 'DROP VIEW ' || names;
    END IF;
END
$$;
