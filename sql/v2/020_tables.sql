-- carbot_v2: the enterprise schema. One table per legacy table (legacy primary keys kept as
-- the primary keys), plus the derived tables organizations and chat_sessions.
-- Applied with `SET search_path TO <target schema>`; no schema is named here. Idempotent.
--
-- Conventions
-- * Foreign keys are NOT declared here: they are generated from the mapping declaration
--   (plugins/module_utils/mapping.py, TABLES[*]["references"]) and added after the copy as
--   NOT VALID, then validated (schema_apply foreign_keys=validated). During the copy the sync
--   triggers may write a child row whose parent has not been copied yet.
-- * legacy_raw jsonb: the legacy values that a documented rule could not carry into a typed
--   column (an invalid email, a 4-digit postal code, a score of 140, ...), keyed by legacy
--   column name; NULL when nothing was set aside. Nothing is silently lost (docs/mapping.md).
-- * Timestamps stay nullable where legacy allows NULL; DEFAULT now() serves the new app only.

-- Tenancy and people ---------------------------------------------------------
CREATE TABLE IF NOT EXISTS organizations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),   -- derived rows: uuid_v3 of the owner key
    name text NOT NULL,
    -- deferred: an organization's slug moves to another one inside one sync (docs/sync.md, derived parents)
    slug text NOT NULL CONSTRAINT organizations_slug_key UNIQUE DEFERRABLE INITIALLY DEFERRED,
    email text CHECK (email = lower(btrim(email))),
    legal_city text,
    legal_country text NOT NULL DEFAULT 'DE' CHECK (legal_country ~ '^[A-Z]{2}$'),
    created_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email text UNIQUE CHECK (email = lower(btrim(email))),
    full_name text,
    role user_role NOT NULL,
    password_hash text,                              -- bcrypt, carried as is; secret
    last_login_at timestamptz,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    legacy_raw jsonb
);

CREATE TABLE IF NOT EXISTS workshops (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL,
    owner_id uuid,
    name text NOT NULL,
    slug text CONSTRAINT workshops_slug_key UNIQUE DEFERRABLE INITIALLY DEFERRED,  -- '-v2' twins swap
    email text CHECK (email = lower(btrim(email))),
    phone text,
    address_line1 text,
    city text,
    postal_code text CHECK (postal_code ~ '^[0-9]{5}$'),
    business_type workshop_business_type,
    opening_hours jsonb,
    services text[],
    logo_url text,
    website text,
    is_active boolean DEFAULT true,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    legacy_raw jsonb
);

CREATE TABLE IF NOT EXISTS team_members (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    user_id uuid NOT NULL,
    role team_role NOT NULL,
    invited_at timestamptz,
    accepted_at timestamptz
);

CREATE TABLE IF NOT EXISTS customers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    title text,                                      -- 'Dr.', 'Prof. Dr.', 'Herr', ...
    first_name text,
    last_name text,
    full_name text GENERATED ALWAYS AS (
        NULLIF(btrim(COALESCE(title || ' ', '') || COALESCE(first_name || ' ', '') || COALESCE(last_name, '')), '')
    ) STORED,
    email text CHECK (email = lower(btrim(email))),
    phone text,
    address_line1 text,
    city text,
    postal_code text CHECK (postal_code ~ '^[0-9]{5}$'),
    is_active boolean DEFAULT true,
    gdpr_consent_given boolean,                      -- legacy marketing_consent; NULL = never asked
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    legacy_raw jsonb
);

CREATE TABLE IF NOT EXISTS customer_vehicles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id uuid NOT NULL,
    workshop_id uuid NOT NULL,
    make text,
    model text,
    year integer CHECK (year BETWEEN 1886 AND 2100),
    license_plate text,
    vin text CHECK (vin ~ '^[A-HJ-NPR-Z0-9]{17}$'),
    mileage_km integer CHECK (mileage_km >= 0),
    fuel_type text,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    legacy_raw jsonb
);

-- Leads and chat -------------------------------------------------------------
CREATE TABLE IF NOT EXISTS leads (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    client_key text,                                 -- legacy kunde_id (widget cookie)
    name text,
    email text CHECK (email = lower(btrim(email))),
    phone text,
    subject text,                                    -- first line of legacy anliegen, at most 120 chars
    description text,                                -- legacy anliegen, unchanged
    vehicle_info text,
    status lead_status DEFAULT 'new',                -- NULL: legacy status was never set
    priority lead_priority,
    lead_score integer CHECK (lead_score BETWEEN 0 AND 100),
    chat_history jsonb CHECK (jsonb_typeof(chat_history) = 'array'),
    source lead_source NOT NULL,
    consent_given boolean,                           -- NULL = unknown, which is NOT consent
    consent_timestamp timestamptz,
    captured_at timestamptz,                         -- legacy "timestamp"
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    legacy_raw jsonb
);

CREATE TABLE IF NOT EXISTS lead_notes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lead_id uuid NOT NULL,
    user_id uuid,
    note text,
    created_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS chat_sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),   -- derived rows: uuid_v3 of (workshop_id, kunde_id)
    workshop_id uuid NOT NULL,
    client_key text NOT NULL,
    started_at timestamptz,
    last_message_at timestamptz,
    UNIQUE (workshop_id, client_key)
);

CREATE TABLE IF NOT EXISTS chat_messages (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    session_id uuid NOT NULL,
    workshop_id uuid NOT NULL,
    lead_id uuid,
    sender chat_sender NOT NULL,
    message text,
    metadata jsonb,
    created_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS analytics_events (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    workshop_id uuid NOT NULL,
    event_type text,                                 -- an open set: kept as text
    event_data jsonb,
    client_key text,
    page_url text,
    user_agent text,
    ip_address inet,                                 -- personal data (GDPR)
    created_at timestamptz DEFAULT now()
);

-- Workshop operations --------------------------------------------------------
CREATE TABLE IF NOT EXISTS services (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    name text NOT NULL CHECK (btrim(name) <> ''),
    description text,
    price_cents integer CHECK (price_cents >= 0),
    duration_minutes integer CHECK (duration_minutes > 0),
    category text,
    is_active boolean DEFAULT true,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    legacy_raw jsonb
);

CREATE TABLE IF NOT EXISTS appointments (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    customer_id uuid,
    vehicle_id uuid,
    lead_id uuid,
    scheduled_date date NOT NULL,                    -- local date, Europe/Berlin
    scheduled_time time without time zone,           -- local time, Europe/Berlin
    scheduled_datetime timestamptz,                  -- (date + time) AT TIME ZONE 'Europe/Berlin'
    duration_minutes integer CHECK (duration_minutes > 0),
    status appointment_status NOT NULL DEFAULT 'scheduled',
    notes text,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    legacy_raw jsonb,
    CHECK (scheduled_datetime IS NULL OR scheduled_time IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS appointment_services (
    appointment_id uuid NOT NULL,
    service_id uuid NOT NULL,
    price_cents integer CHECK (price_cents >= 0),
    legacy_raw jsonb,
    PRIMARY KEY (appointment_id, service_id)
);

CREATE TABLE IF NOT EXISTS workshop_closures (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    closed_on date NOT NULL,
    reason text
);

CREATE TABLE IF NOT EXISTS reviews (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    customer_id uuid,
    rating integer NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment text,
    source review_source NOT NULL,
    created_at timestamptz DEFAULT now()
);

-- Billing --------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS subscriptions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    plan subscription_plan NOT NULL,
    status subscription_status NOT NULL,
    stripe_customer_id text,
    stripe_subscription_id text UNIQUE,
    current_period_start timestamptz,
    current_period_end timestamptz,
    cancel_at_period_end boolean DEFAULT false,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS invoices (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    subscription_id uuid,
    stripe_invoice_id text UNIQUE,
    amount_cents integer,
    currency text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    status invoice_status NOT NULL,
    issued_at timestamptz,
    paid_at timestamptz,
    pdf_url text
);

-- Chatbot configuration ------------------------------------------------------
CREATE TABLE IF NOT EXISTS chatbot_settings (
    workshop_id uuid PRIMARY KEY,
    greeting text,
    primary_color text,
    language chatbot_language,
    widget_position text,
    auto_reply boolean,
    settings jsonb,
    updated_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS faq_entries (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    question text,
    answer text,
    category text,
    sort_order integer,
    is_active boolean DEFAULT true,
    created_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS email_templates (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    template_key text,
    subject text,
    body_html text,
    updated_at timestamptz DEFAULT now()
);

-- Platform -------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS notifications (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    user_id uuid,
    type text,
    title text,
    body text,
    read_at timestamptz,
    created_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS api_keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    name text,
    key_hash text,                                   -- secret, carried as is
    last_used_at timestamptz,
    revoked_at timestamptz,
    created_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS webhooks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid NOT NULL,
    url text,
    events text[],
    secret text,                                     -- secret, carried as is
    is_active boolean DEFAULT true,
    created_at timestamptz DEFAULT now()
);

-- Compliance -----------------------------------------------------------------
-- Records of history: they keep the ids they were written with, also when the workshop or
-- user they name is gone (no foreign keys on these three tables, by design).
CREATE TABLE IF NOT EXISTS audit_logs (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    workshop_id uuid,
    user_id uuid,
    action text,
    entity_type text,
    entity_id text,
    changes jsonb,
    ip_address inet,
    created_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS gdpr_requests (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id uuid,
    requester_email text CHECK (requester_email = lower(btrim(requester_email))),
    request_type gdpr_request_type NOT NULL,
    status gdpr_request_status NOT NULL,
    requested_at timestamptz DEFAULT now(),
    completed_at timestamptz,
    legacy_raw jsonb
);

CREATE TABLE IF NOT EXISTS consent_log (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    workshop_id uuid,
    client_key text,
    consent_type consent_type NOT NULL,
    granted boolean,
    source text,
    created_at timestamptz DEFAULT now()
);
