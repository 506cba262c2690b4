-- carbot_migration: the report over the mapping's rules, for the assessment and the validation.
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

-- dangling_references and quarantine_forecast are generated from the mapping declaration
-- (plugins/module_utils/mapping.py, create_report_views) right after these files: one optional
-- reference or one table added there is in them without an edit here.
