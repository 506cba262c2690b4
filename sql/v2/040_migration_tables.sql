-- carbot_v2: the migration's own bookkeeping. Applied with `SET search_path TO <target schema>`.
-- Idempotent. Dropped (or kept as an audit trail) at cleanup; never read by the application.

-- One row per target table of the mapping declaration (plugins/module_utils/mapping.py, TABLES).
-- The copy checkpoints here in the same transaction as each batch, so a resumed copy starts
-- after last_key and an operator can watch progress (rows_copied / rows_total_estimate).
CREATE TABLE IF NOT EXISTS migration_status (
    target_table text PRIMARY KEY,
    source_table text NOT NULL,
    kind text NOT NULL DEFAULT 'row' CHECK (kind IN ('row', 'derived')),
    state migration_state NOT NULL DEFAULT 'pending',
    last_key text[],                     -- keyset checkpoint: the view's _src_key value(s) as text
    rows_copied bigint NOT NULL DEFAULT 0 CHECK (rows_copied >= 0),
    rows_quarantined bigint NOT NULL DEFAULT 0 CHECK (rows_quarantined >= 0),
    rows_total_estimate bigint,
    started_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    run_id text,
    last_error text
);

-- Legacy rows that do not belong in the target, each with the reason (docs/mapping.md,
-- "Quarantine reasons") and a full copy of the legacy row. source rows = migrated + quarantined.
CREATE TABLE IF NOT EXISTS migration_quarantine (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_table text NOT NULL,
    source_table text NOT NULL,
    source_pk text NOT NULL,             -- the view's _src_key; composite keys as a text[] literal
    reason text NOT NULL,
    row_data jsonb NOT NULL,             -- to_jsonb(legacy row), secrets included: restrict access
    run_id text,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (target_table, source_pk)
);
CREATE INDEX IF NOT EXISTS migration_quarantine_source_idx ON migration_quarantine (source_table, reason);
