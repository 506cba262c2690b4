-- carbot_v2: indexes for the application's queries and for every foreign-key column.
-- Applied with `SET search_path TO <target schema>`. Idempotent (IF NOT EXISTS).
-- Unique constraints live with their tables (020_tables.sql).

-- Dashboard: lead metrics per workshop over a date range (counts by status, conversion =
-- converted / all, avg(lead_score)). Range scan on (workshop_id, captured_at); status and
-- lead_score are INCLUDEd so that the metrics are an index-only scan.
CREATE INDEX IF NOT EXISTS leads_workshop_captured_idx
    ON leads (workshop_id, captured_at) INCLUDE (status, lead_score);
-- The same metrics by creation date (leads created by the new app), and the inbox by status.
CREATE INDEX IF NOT EXISTS leads_workshop_created_idx
    ON leads (workshop_id, created_at) INCLUDE (status, lead_score);
CREATE INDEX IF NOT EXISTS leads_workshop_status_idx ON leads (workshop_id, status, captured_at);
CREATE INDEX IF NOT EXISTS leads_workshop_client_key_idx ON leads (workshop_id, client_key);

-- Calendar: a workshop's appointments in a date range, ordered by scheduled_datetime.
CREATE INDEX IF NOT EXISTS appointments_workshop_scheduled_idx
    ON appointments (workshop_id, scheduled_datetime) INCLUDE (status);
CREATE INDEX IF NOT EXISTS appointments_workshop_date_idx ON appointments (workshop_id, scheduled_date);
CREATE INDEX IF NOT EXISTS appointments_customer_idx ON appointments (customer_id);
CREATE INDEX IF NOT EXISTS appointments_vehicle_idx ON appointments (vehicle_id);
CREATE INDEX IF NOT EXISTS appointments_lead_idx ON appointments (lead_id);
CREATE INDEX IF NOT EXISTS appointment_services_service_idx ON appointment_services (service_id);

-- Tenancy and people.
CREATE INDEX IF NOT EXISTS workshops_organization_idx ON workshops (organization_id);
CREATE INDEX IF NOT EXISTS workshops_owner_idx ON workshops (owner_id);
CREATE INDEX IF NOT EXISTS team_members_workshop_idx ON team_members (workshop_id);
CREATE INDEX IF NOT EXISTS team_members_user_idx ON team_members (user_id);
CREATE INDEX IF NOT EXISTS customers_workshop_idx ON customers (workshop_id, last_name);
CREATE INDEX IF NOT EXISTS customers_workshop_email_idx ON customers (workshop_id, email);
CREATE INDEX IF NOT EXISTS customer_vehicles_customer_idx ON customer_vehicles (customer_id);
CREATE INDEX IF NOT EXISTS customer_vehicles_workshop_plate_idx ON customer_vehicles (workshop_id, license_plate);

-- Leads and chat.
CREATE INDEX IF NOT EXISTS lead_notes_lead_idx ON lead_notes (lead_id, created_at);
CREATE INDEX IF NOT EXISTS lead_notes_user_idx ON lead_notes (user_id);
CREATE INDEX IF NOT EXISTS chat_messages_session_idx ON chat_messages (session_id, created_at);
CREATE INDEX IF NOT EXISTS chat_messages_workshop_idx ON chat_messages (workshop_id, created_at);
CREATE INDEX IF NOT EXISTS chat_messages_lead_idx ON chat_messages (lead_id);
CREATE INDEX IF NOT EXISTS analytics_events_workshop_idx ON analytics_events (workshop_id, created_at);

-- Operations, billing, configuration, platform.
CREATE INDEX IF NOT EXISTS services_workshop_idx ON services (workshop_id);
CREATE INDEX IF NOT EXISTS workshop_closures_workshop_idx ON workshop_closures (workshop_id, closed_on);
CREATE INDEX IF NOT EXISTS reviews_workshop_idx ON reviews (workshop_id, created_at);
CREATE INDEX IF NOT EXISTS reviews_customer_idx ON reviews (customer_id);
CREATE INDEX IF NOT EXISTS subscriptions_workshop_idx ON subscriptions (workshop_id);
CREATE INDEX IF NOT EXISTS invoices_workshop_idx ON invoices (workshop_id, issued_at);
CREATE INDEX IF NOT EXISTS invoices_subscription_idx ON invoices (subscription_id);
CREATE INDEX IF NOT EXISTS faq_entries_workshop_idx ON faq_entries (workshop_id, sort_order);
CREATE INDEX IF NOT EXISTS email_templates_workshop_idx ON email_templates (workshop_id, template_key);
CREATE INDEX IF NOT EXISTS notifications_workshop_idx ON notifications (workshop_id, created_at);
CREATE INDEX IF NOT EXISTS notifications_user_unread_idx ON notifications (user_id) WHERE read_at IS NULL;
CREATE INDEX IF NOT EXISTS api_keys_workshop_idx ON api_keys (workshop_id);
CREATE INDEX IF NOT EXISTS webhooks_workshop_idx ON webhooks (workshop_id);

-- Compliance.
CREATE INDEX IF NOT EXISTS audit_logs_workshop_idx ON audit_logs (workshop_id, created_at);
CREATE INDEX IF NOT EXISTS audit_logs_entity_idx ON audit_logs (entity_type, entity_id);
CREATE INDEX IF NOT EXISTS gdpr_requests_email_idx ON gdpr_requests (requester_email);
CREATE INDEX IF NOT EXISTS consent_log_client_idx ON consent_log (workshop_id, client_key, created_at);
