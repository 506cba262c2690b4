-- carbot_migration: reports over the mapping, for the assessment and the validation.
-- Applied with `SET search_path TO <mapping>, <legacy>, <target>`.

-- Legacy values of closed sets that the mapping does not know (docs/mapping.md, "Closed sets").
-- Their rows are quarantined with "unknown <table>.<column>: '<value>'"; validation stops while
-- this view has rows. The fix is one more WHEN line in the set's map function (010_rules.sql).
-- value NULL means NULL where the set does not allow it. Keep in step with the views.
CREATE OR REPLACE VIEW unmapped_values AS
SELECT 'users'::text AS source_table, 'role'::text AS column_name, role AS value, pg_catalog.count(*) AS n
  FROM users WHERE user_role_map(role) IS NULL GROUP BY role
UNION ALL
SELECT 'team_members'::text AS source_table, 'role'::text AS column_name, role AS value, pg_catalog.count(*) AS n
  FROM team_members WHERE team_role_map(role) IS NULL GROUP BY role
UNION ALL
SELECT 'workshops'::text AS source_table, 'business_type'::text AS column_name, business_type AS value, pg_catalog.count(*) AS n
  FROM workshops WHERE business_type IS NOT NULL AND business_type_map(business_type) IS NULL GROUP BY business_type
UNION ALL
SELECT 'leads'::text AS source_table, 'status'::text AS column_name, status AS value, pg_catalog.count(*) AS n
  FROM leads WHERE status IS NOT NULL AND lead_status_map(status) IS NULL GROUP BY status
UNION ALL
SELECT 'leads'::text AS source_table, 'priority'::text AS column_name, priority AS value, pg_catalog.count(*) AS n
  FROM leads WHERE priority IS NOT NULL AND lead_priority_map(priority) IS NULL GROUP BY priority
UNION ALL
SELECT 'leads'::text AS source_table, 'source'::text AS column_name, source AS value, pg_catalog.count(*) AS n
  FROM leads WHERE lead_source_map(source) IS NULL GROUP BY source
UNION ALL
SELECT 'chat_messages'::text AS source_table, 'sender'::text AS column_name, sender AS value, pg_catalog.count(*) AS n
  FROM chat_messages WHERE chat_sender_map(sender) IS NULL GROUP BY sender
UNION ALL
SELECT 'appointments'::text AS source_table, 'status'::text AS column_name, status AS value, pg_catalog.count(*) AS n
  FROM appointments WHERE appointment_status_map(status) IS NULL GROUP BY status
UNION ALL
SELECT 'reviews'::text AS source_table, 'source'::text AS column_name, source AS value, pg_catalog.count(*) AS n
  FROM reviews WHERE review_source_map(source) IS NULL GROUP BY source
UNION ALL
SELECT 'subscriptions'::text AS source_table, 'plan'::text AS column_name, plan AS value, pg_catalog.count(*) AS n
  FROM subscriptions WHERE subscription_plan_map(plan) IS NULL GROUP BY plan
UNION ALL
SELECT 'subscriptions'::text AS source_table, 'status'::text AS column_name, status AS value, pg_catalog.count(*) AS n
  FROM subscriptions WHERE subscription_status_map(status) IS NULL GROUP BY status
UNION ALL
SELECT 'invoices'::text AS source_table, 'currency'::text AS column_name, currency AS value, pg_catalog.count(*) AS n
  FROM invoices WHERE currency_map(currency) IS NULL GROUP BY currency
UNION ALL
SELECT 'invoices'::text AS source_table, 'status'::text AS column_name, status AS value, pg_catalog.count(*) AS n
  FROM invoices WHERE invoice_status_map(status) IS NULL GROUP BY status
UNION ALL
SELECT 'chatbot_settings'::text AS source_table, 'language'::text AS column_name, language AS value, pg_catalog.count(*) AS n
  FROM chatbot_settings WHERE language IS NOT NULL AND chatbot_language_map(language) IS NULL GROUP BY language
UNION ALL
SELECT 'gdpr_requests'::text AS source_table, 'request_type'::text AS column_name, request_type AS value, pg_catalog.count(*) AS n
  FROM gdpr_requests WHERE gdpr_request_type_map(request_type) IS NULL GROUP BY request_type
UNION ALL
SELECT 'gdpr_requests'::text AS source_table, 'status'::text AS column_name, status AS value, pg_catalog.count(*) AS n
  FROM gdpr_requests WHERE gdpr_request_status_map(status) IS NULL GROUP BY status
UNION ALL
SELECT 'consent_log'::text AS source_table, 'consent_type'::text AS column_name, consent_type AS value, pg_catalog.count(*) AS n
  FROM consent_log WHERE consent_type_map(consent_type) IS NULL GROUP BY consent_type;

-- Optional references whose legacy value points at no migrated row (the parent is missing or
-- quarantined): the migrated row carries NULL there (docs/mapping.md, "References"). Counted here
-- so that none is lost silently; rows that are quarantined anyway are not counted.
CREATE OR REPLACE VIEW dangling_references AS
SELECT 'workshops'::text AS source_table, 'owner_id'::text AS column_name, 'users'::text AS parent_table,
       pg_catalog.count(*) AS n
  FROM workshops s JOIN map_workshops m ON m._src_key = s.id
 WHERE s.owner_id IS NOT NULL AND m.owner_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'lead_notes'::text AS source_table, 'user_id'::text AS column_name, 'users'::text AS parent_table,
       pg_catalog.count(*) AS n
  FROM lead_notes s JOIN map_lead_notes m ON m._src_key = s.id
 WHERE s.user_id IS NOT NULL AND m.user_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'chat_messages'::text AS source_table, 'lead_id'::text AS column_name, 'leads'::text AS parent_table,
       pg_catalog.count(*) AS n
  FROM chat_messages s JOIN map_chat_messages m ON m._src_key = s.id
 WHERE s.lead_id IS NOT NULL AND m.lead_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'appointments'::text AS source_table, 'customer_id'::text AS column_name, 'customers'::text AS parent_table,
       pg_catalog.count(*) AS n
  FROM appointments s JOIN map_appointments m ON m._src_key = s.id
 WHERE s.customer_id IS NOT NULL AND m.customer_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'appointments'::text AS source_table, 'vehicle_id'::text AS column_name, 'vehicles'::text AS parent_table,
       pg_catalog.count(*) AS n
  FROM appointments s JOIN map_appointments m ON m._src_key = s.id
 WHERE s.vehicle_id IS NOT NULL AND m.vehicle_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'appointments'::text AS source_table, 'lead_id'::text AS column_name, 'leads'::text AS parent_table,
       pg_catalog.count(*) AS n
  FROM appointments s JOIN map_appointments m ON m._src_key = s.id
 WHERE s.lead_id IS NOT NULL AND m.lead_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'reviews'::text AS source_table, 'customer_id'::text AS column_name, 'customers'::text AS parent_table,
       pg_catalog.count(*) AS n
  FROM reviews s JOIN map_reviews m ON m._src_key = s.id
 WHERE s.customer_id IS NOT NULL AND m.customer_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'invoices'::text AS source_table, 'subscription_id'::text AS column_name, 'subscriptions'::text AS parent_table,
       pg_catalog.count(*) AS n
  FROM invoices s JOIN map_invoices m ON m._src_key = s.id
 WHERE s.subscription_id IS NOT NULL AND m.subscription_id IS NULL AND m._quarantine_reason IS NULL
UNION ALL
SELECT 'notifications'::text AS source_table, 'user_id'::text AS column_name, 'users'::text AS parent_table,
       pg_catalog.count(*) AS n
  FROM notifications s JOIN map_notifications m ON m._src_key = s.id
 WHERE s.user_id IS NOT NULL AND m.user_id IS NULL AND m._quarantine_reason IS NULL;

-- Rows each projection would quarantine now, by reason: what migration_quarantine will hold
-- once the copy is through (the assessment prints it before anything is copied).
CREATE OR REPLACE VIEW quarantine_forecast AS
SELECT 'users'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_users WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'workshops'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_workshops WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'team_members'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_team_members WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'customers'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_customers WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'customer_vehicles'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_customer_vehicles WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'leads'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_leads WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'lead_notes'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_lead_notes WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'chat_messages'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_chat_messages WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'analytics_events'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_analytics_events WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'services'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_services WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'appointments'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_appointments WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'appointment_services'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_appointment_services WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'workshop_closures'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_workshop_closures WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'reviews'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_reviews WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'subscriptions'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_subscriptions WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'invoices'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_invoices WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'chatbot_settings'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_chatbot_settings WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'faq_entries'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_faq_entries WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'email_templates'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_email_templates WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'notifications'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_notifications WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'api_keys'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_api_keys WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'webhooks'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_webhooks WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'gdpr_requests'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_gdpr_requests WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason
UNION ALL
SELECT 'consent_log'::text AS target_table, _quarantine_reason AS reason, pg_catalog.count(*) AS n
  FROM map_consent_log WHERE _quarantine_reason IS NOT NULL GROUP BY _quarantine_reason;
