-- carbot_migration: deterministic ids of derived rows (never gen_random_uuid(): the copy, a
-- resumed copy, the sync triggers and the validation must all compute the same id).
-- Applied with `SET search_path TO <mapping>, <legacy>, <target>`.

-- RFC 4122 version 3 UUID: md5(namespace bytes || UTF-8 name), version nibble 3, variant 10xx.
-- Equal to Python's uuid.uuid3(namespace, name) (tests/unit/test_mapping_rules.py).
CREATE OR REPLACE FUNCTION uuid_v3(namespace uuid, name text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (pg_catalog.substr(h, 1, 12) || '3' || pg_catalog.substr(h, 14, 3)
            || pg_catalog.to_hex(((('x' || pg_catalog.substr(h, 17, 1))::bit(4))::integer & 3) | 8)
            || pg_catalog.substr(h, 18))::uuid
      FROM pg_catalog.md5(pg_catalog.decode(pg_catalog.replace(namespace::text, '-', ''), 'hex')
                          || pg_catalog.convert_to(name, 'UTF8')) AS h
$$;

-- The namespace of all migration ids: uuid3(NAMESPACE_URL, 'urn:carbot:migration')
-- (plugins/module_utils/mapping.py ID_NAMESPACE).
CREATE OR REPLACE FUNCTION id_namespace() RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'b05a01f8-3ffe-3aaf-9af9-04ffba2dd566'::uuid
$$;

-- The organization of an owner key: uuid_v3(id_namespace(), 'organization:' || owner_key).
-- Written out (not a call of uuid_v3, see 010_rules.sql); the unit tests check it agrees.
CREATE OR REPLACE FUNCTION organization_uuid(owner_key text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (pg_catalog.substr(h, 1, 12) || '3' || pg_catalog.substr(h, 14, 3)
            || pg_catalog.to_hex(((('x' || pg_catalog.substr(h, 17, 1))::bit(4))::integer & 3) | 8)
            || pg_catalog.substr(h, 18))::uuid
      FROM pg_catalog.md5(pg_catalog.decode('b05a01f83ffe3aaf9af904ffba2dd566', 'hex')
                          || pg_catalog.convert_to('organization:' || owner_key, 'UTF8')) AS h
$$;

-- The chat session of a legacy conversation (workshop_id, kunde_id):
-- uuid_v3(id_namespace(), 'chat_session:' || workshop_id || '/' || kunde_id).
CREATE OR REPLACE FUNCTION chat_session_uuid(workshop_id uuid, kunde_id text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (pg_catalog.substr(h, 1, 12) || '3' || pg_catalog.substr(h, 14, 3)
            || pg_catalog.to_hex(((('x' || pg_catalog.substr(h, 17, 1))::bit(4))::integer & 3) | 8)
            || pg_catalog.substr(h, 18))::uuid
      FROM pg_catalog.md5(pg_catalog.decode('b05a01f83ffe3aaf9af904ffba2dd566', 'hex')
                          || pg_catalog.convert_to('chat_session:' || workshop_id::text || '/' || kunde_id, 'UTF8')) AS h
$$;

-- The uuid of an RFC 4122 version 3 id from the md5 hex digest of namespace bytes || name (version nibble 3,
-- variant 10xx: the variant digit d becomes (d & 3) | 8, i.e. 0-3 -> 8-b and the same for 4-7, 8-b, c-f).
-- One expression without FROM, so the planner inlines it; a view that computes the digest once per row in a
-- LATERAL (OFFSET 0) subquery and formats it with this function pays the md5 once. map_chat_messages and
-- map_chat_sessions do so (500k messages at scale 1): a call of chat_session_uuid is not inlined (its body has a FROM and calls convert_to,
-- which is STABLE) and cost ~3.5 us a row, the digest plus this expression ~1.5 us. chat_session_uuid stays
-- what the sync calls; tests/integration/test_schema_mapping.py checks the view's session ids against Python's.
CREATE OR REPLACE FUNCTION uuid_v3_from_md5(md5_hex text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (pg_catalog.substr(md5_hex, 1, 12) || '3' || pg_catalog.substr(md5_hex, 14, 3)
            || pg_catalog.translate(pg_catalog.substr(md5_hex, 17, 1), '0123456789abcdef', '89ab89ab89ab89ab')
            || pg_catalog.substr(md5_hex, 18))::uuid
$$;
