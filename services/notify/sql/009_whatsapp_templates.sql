-- notify, WhatsApp's approved templates: outside the 24 hours after the
-- customer last wrote, WhatsApp Cloud takes only a message template that
-- Meta approved (error 131047 otherwise). A shop registers its templates
-- with Meta and maps each of retain's templates (name and locale) to one
-- of them here; notifyd then sends a notification on WhatsApp as that
-- template when the window is closed, and passes WhatsApp over (the next
-- channel of the route) when the template has no mapping.

CREATE TABLE notify.whatsapp_templates (
    template    text   NOT NULL,  -- retain's template (notify.templates.name)
    locale      text   NOT NULL,  -- its locale, as notify.templates.locale spells it
    wa_name     text   NOT NULL CHECK (wa_name ~ '^[a-z0-9_]+$' AND length(wa_name) <= 512),
    wa_language text   NOT NULL CHECK (wa_language ~ '^[a-z]{2,3}(_[A-Z]{2})?$'),
    -- The body's parameters {{1}}, {{2}}, ... in order, each written in
    -- retain's template language ('{{name}}', '{{money total currency}}')
    -- and rendered with the notification's variables.
    params      text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template, locale)
);

-- A send that goes as an approved template: its name, language and the
-- rendered parameters (NULL: a free text send). text keeps the template's
-- rendering in retain's own words, for the timeline.
ALTER TABLE notify.sends ADD COLUMN wa_template text,
                         ADD COLUMN wa_language text,
                         ADD COLUMN wa_params text[];
