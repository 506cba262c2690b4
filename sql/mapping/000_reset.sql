-- carbot_migration: start from no views, so that a changed view (a new column, a changed type)
-- is created afresh instead of failing CREATE OR REPLACE VIEW. Applied with
-- `SET search_path TO <mapping>, <legacy>, <target>`: current_schema() is the mapping schema,
-- which holds nothing but the mapping (rule functions and views). Runs in the same transaction
-- as the files that recreate the views, so nobody ever sees the mapping half-built.
DO $$
DECLARE
    v record;
BEGIN
    FOR v IN
        SELECT c.relname
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = pg_catalog.current_schema() AND c.relkind = 'v'
    LOOP
        EXECUTE pg_catalog.format('DROP VIEW IF EXISTS %I CASCADE', v.relname);
    END LOOP;
END
$$;
