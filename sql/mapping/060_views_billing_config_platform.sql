-- carbot_migration: projection views, billing, chatbot configuration and platform
-- (see 030_views_people.sql for the patterns). Secrets (api_keys.key_hash, webhooks.secret)
-- are carried as they are: the application needs them.
-- Applied with `SET search_path TO <mapping>, <legacy>, <target>`.

CREATE OR REPLACE VIEW map_subscriptions AS
SELECT s.id,
       s.workshop_id,
       subscription_plan_map(s.plan)::subscription_plan AS plan,
       subscription_status_map(s.status)::subscription_status AS status,
       s.stripe_customer_id,
       s.stripe_subscription_id,
       s.current_period_start,
       s.current_period_end,
       s.cancel_at_period_end,
       s.created_at,
       s.updated_at,
       s.id AS _src_key,
       COALESCE(
           CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
                WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END,
           unknown_value('subscriptions.plan', s.plan, subscription_plan_map(s.plan), false),
           unknown_value('subscriptions.status', s.status, subscription_status_map(s.status), false)
       ) AS _quarantine_reason
  FROM subscriptions s
  LEFT JOIN map_workshops pw ON pw._src_key = s.workshop_id;

CREATE OR REPLACE VIEW map_invoices AS
SELECT i.id,
       i.workshop_id,
       CASE WHEN ps._src_key IS NOT NULL AND ps._quarantine_reason IS NULL THEN i.subscription_id END AS subscription_id,
       i.stripe_invoice_id,
       i.amount_cents,
       currency_map(i.currency) AS currency,
       invoice_status_map(i.status)::invoice_status AS status,
       i.issued_at,
       i.paid_at,
       i.pdf_url,
       i.id AS _src_key,
       COALESCE(
           CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
                WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END,
           unknown_value('invoices.currency', i.currency, currency_map(i.currency), false),
           unknown_value('invoices.status', i.status, invoice_status_map(i.status), false)
       ) AS _quarantine_reason
  FROM invoices i
  LEFT JOIN map_subscriptions ps ON ps._src_key = i.subscription_id
  LEFT JOIN map_workshops pw ON pw._src_key = i.workshop_id;

CREATE OR REPLACE VIEW map_chatbot_settings AS
SELECT c.workshop_id,
       c.greeting,
       c.primary_color,
       chatbot_language_map(c.language)::chatbot_language AS language,
       c.widget_position,
       c.auto_reply,
       c.settings,
       c.updated_at,
       c.workshop_id AS _src_key,
       COALESCE(
           CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
                WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END,
           unknown_value('chatbot_settings.language', c.language, chatbot_language_map(c.language), true)
       ) AS _quarantine_reason
  FROM chatbot_settings c
  LEFT JOIN map_workshops pw ON pw._src_key = c.workshop_id;

CREATE OR REPLACE VIEW map_faq_entries AS
SELECT f.id,
       f.workshop_id,
       f.question,
       f.answer,
       f.category,
       f.sort_order,
       f.is_active,
       f.created_at,
       f.id AS _src_key,
       CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
            WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END AS _quarantine_reason
  FROM faq_entries f
  LEFT JOIN map_workshops pw ON pw._src_key = f.workshop_id;

CREATE OR REPLACE VIEW map_email_templates AS
SELECT t.id,
       t.workshop_id,
       t.template_key,
       t.subject,
       t.body_html,
       t.updated_at,
       t.id AS _src_key,
       CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
            WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END AS _quarantine_reason
  FROM email_templates t
  LEFT JOIN map_workshops pw ON pw._src_key = t.workshop_id;

CREATE OR REPLACE VIEW map_notifications AS
SELECT n.id,
       n.workshop_id,
       CASE WHEN pu._src_key IS NOT NULL AND pu._quarantine_reason IS NULL THEN n.user_id END AS user_id,
       n.type,
       n.title,
       n.body,
       n.read_at,
       n.created_at,
       n.id AS _src_key,
       CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
            WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END AS _quarantine_reason
  FROM notifications n
  LEFT JOIN map_users pu ON pu._src_key = n.user_id
  LEFT JOIN map_workshops pw ON pw._src_key = n.workshop_id;

CREATE OR REPLACE VIEW map_api_keys AS
SELECT k.id,
       k.workshop_id,
       k.name,
       k.key_hash,
       k.last_used_at,
       k.revoked_at,
       k.created_at,
       k.id AS _src_key,
       CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
            WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END AS _quarantine_reason
  FROM api_keys k
  LEFT JOIN map_workshops pw ON pw._src_key = k.workshop_id;

CREATE OR REPLACE VIEW map_webhooks AS
SELECT h.id,
       h.workshop_id,
       h.url,
       h.events,
       h.secret,
       h.is_active,
       h.created_at,
       h.id AS _src_key,
       CASE WHEN pw._src_key IS NULL THEN 'orphan: workshop_id not found'
            WHEN pw._quarantine_reason IS NOT NULL THEN 'parent quarantined: workshop_id' END AS _quarantine_reason
  FROM webhooks h
  LEFT JOIN map_workshops pw ON pw._src_key = h.workshop_id;
