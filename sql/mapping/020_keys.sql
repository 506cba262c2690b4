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
