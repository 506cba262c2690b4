-- The legacy CarBot schema, exactly as the legacy schema specification describes production (the spec
-- lives outside this repository; tests/integration/test_legacy_schema.py compares the two column by column).
-- 25 tables, no foreign keys (the old app enforced them, badly). Used by the local
-- rehearsal and the tests; the playbooks work against any database that has these tables.
-- Applied into the schema named by search_path (the legacy_db role sets it to
-- carbot_legacy_schema, default public).

-- Tenancy and people ---------------------------------------------------------
CREATE TABLE IF NOT EXISTS users (
    id uuid PRIMARY KEY,
    email text UNIQUE,
    full_name text,
    role text,
    password_hash text,
    last_login_at timestamptz,
    created_at timestamptz,
    updated_at timestamptz
);

CREATE TABLE IF NOT EXISTS workshops (
    id uuid PRIMARY KEY,
    owner_id uuid,
    name text NOT NULL,
    slug text UNIQUE,
    owner_email text,
    phone text,
    address text,
    city text,
    postal_code text,
    business_type text,
    opening_hours jsonb,
    services text[],
    logo_url text,
    website text,
    is_active boolean,
    created_at timestamptz,
    updated_at timestamptz
);

CREATE TABLE IF NOT EXISTS team_members (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    user_id uuid,
    role text,
    invited_at timestamptz,
    accepted_at timestamptz
);

CREATE TABLE IF NOT EXISTS customers (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    name text,
    email text,
    phone text,
    address text,
    city text,
    postal_code text,
    active boolean,
    marketing_consent boolean,
    created_at timestamptz,
    updated_at timestamptz
);

CREATE TABLE IF NOT EXISTS vehicles (
    id uuid PRIMARY KEY,
    customer_id uuid,
    workshop_id uuid,
    make text,
    model text,
    year integer,
    license_plate text,
    vin text,
    mileage_km integer,
    fuel_type text,
    created_at timestamptz,
    updated_at timestamptz
);

-- Leads and chat -------------------------------------------------------------
CREATE TABLE IF NOT EXISTS leads (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    kunde_id text,
    name text,
    email text,
    telefon text,
    anliegen text,
    fahrzeug text,
    status text,
    priority text,
    lead_score integer,
    chatverlauf jsonb,
    source text,
    consent_given boolean,
    consent_at timestamptz,
    "timestamp" timestamptz,
    created_at timestamptz,
    updated_at timestamptz
);

CREATE TABLE IF NOT EXISTS lead_notes (
    id uuid PRIMARY KEY,
    lead_id uuid,
    user_id uuid,
    note text,
    created_at timestamptz
);

CREATE TABLE IF NOT EXISTS chat_messages (
    id bigserial PRIMARY KEY,
    workshop_id uuid,
    kunde_id text,
    lead_id uuid,
    sender text,
    message text,
    metadata jsonb,
    created_at timestamptz
);

CREATE TABLE IF NOT EXISTS analytics_events (
    id bigserial PRIMARY KEY,
    workshop_id uuid,
    event_type text,
    event_data jsonb,
    kunde_id text,
    page_url text,
    user_agent text,
    ip_address inet,
    created_at timestamptz
);

-- Workshop operations --------------------------------------------------------
CREATE TABLE IF NOT EXISTS services (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    name text,
    description text,
    price_cents integer,
    duration_minutes integer,
    category text,
    is_active boolean,
    created_at timestamptz,
    updated_at timestamptz
);

CREATE TABLE IF NOT EXISTS appointments (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    customer_id uuid,
    vehicle_id uuid,
    lead_id uuid,
    appointment_date date,
    appointment_time time without time zone,
    duration_minutes integer,
    status text,
    notes text,
    created_at timestamptz,
    updated_at timestamptz
);

CREATE TABLE IF NOT EXISTS appointment_services (
    appointment_id uuid,
    service_id uuid,
    price_cents integer,
    PRIMARY KEY (appointment_id, service_id)
);

CREATE TABLE IF NOT EXISTS workshop_closures (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    closed_on date,
    reason text
);

CREATE TABLE IF NOT EXISTS reviews (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    customer_id uuid,
    rating integer,
    comment text,
    source text,
    created_at timestamptz
);

-- Billing --------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS subscriptions (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    plan text,
    status text,
    stripe_customer_id text,
    stripe_subscription_id text UNIQUE,
    current_period_start timestamptz,
    current_period_end timestamptz,
    cancel_at_period_end boolean,
    created_at timestamptz,
    updated_at timestamptz
);

CREATE TABLE IF NOT EXISTS invoices (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    subscription_id uuid,
    stripe_invoice_id text UNIQUE,
    amount_cents integer,
    currency text,
    status text,
    issued_at timestamptz,
    paid_at timestamptz,
    pdf_url text
);

-- Chatbot configuration ------------------------------------------------------
CREATE TABLE IF NOT EXISTS chatbot_settings (
    workshop_id uuid PRIMARY KEY,
    greeting text,
    primary_color text,
    language text,
    widget_position text,
    auto_reply boolean,
    settings jsonb,
    updated_at timestamptz
);

CREATE TABLE IF NOT EXISTS faq_entries (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    question text,
    answer text,
    category text,
    sort_order integer,
    is_active boolean,
    created_at timestamptz
);

CREATE TABLE IF NOT EXISTS email_templates (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    template_key text,
    subject text,
    body_html text,
    updated_at timestamptz
);

-- Platform -------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS notifications (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    user_id uuid,
    type text,
    title text,
    body text,
    read_at timestamptz,
    created_at timestamptz
);

CREATE TABLE IF NOT EXISTS api_keys (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    name text,
    key_hash text,
    last_used_at timestamptz,
    revoked_at timestamptz,
    created_at timestamptz
);

CREATE TABLE IF NOT EXISTS webhooks (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    url text,
    events text[],
    secret text,
    is_active boolean,
    created_at timestamptz
);

-- Compliance -----------------------------------------------------------------
CREATE TABLE IF NOT EXISTS audit_logs (
    id bigserial PRIMARY KEY,
    workshop_id uuid,
    user_id uuid,
    action text,
    entity_type text,
    entity_id text,
    changes jsonb,
    ip_address inet,
    created_at timestamptz
);

CREATE TABLE IF NOT EXISTS gdpr_requests (
    id uuid PRIMARY KEY,
    workshop_id uuid,
    requester_email text,
    request_type text,
    status text,
    requested_at timestamptz,
    completed_at timestamptz
);

CREATE TABLE IF NOT EXISTS consent_log (
    id bigserial PRIMARY KEY,
    workshop_id uuid,
    kunde_id text,
    consent_type text,
    granted boolean,
    source text,
    created_at timestamptz
);
