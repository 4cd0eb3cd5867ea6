-- notify.templates: the texts notifyd sends, one per name, locale and
-- channel variant (services/notify/template.h has the language).
--
-- A notification names a template; notifyd picks the row for the
-- customer's locale (then the fallback chain) and channel (then the
-- 'default' variant) and renders it. Every text here has parsed when it was
-- stored (retainctl template add parses before it writes), so a send never
-- meets a malformed template, only missing variables.

CREATE TABLE notify.templates (
    -- What a notification asks for: "order_shipped", "points.earned".
    name       text        NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,127}$'),
    -- BCP 47 as the customer's profile spells it, lower-case language
    -- first: "uk", "ru", "en-US".
    locale     text        NOT NULL CHECK (locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$'),
    -- A channel's own wording (rt_channel's names), or 'default' for every
    -- channel without one.
    variant    text        NOT NULL DEFAULT 'default' CHECK (variant IN ('default',
                   'telegram', 'viber', 'messenger', 'instagram', 'whatsapp', 'sms',
                   'email', 'webchat', 'phone')),
    -- E-mail only: its subject (a template too) and its HTML part; the
    -- text is then the plain-text part.
    subject    text,
    text       text        NOT NULL CHECK (text <> ''),
    html       text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, locale, variant),
    CHECK ((subject IS NULL AND html IS NULL) OR variant IN ('email', 'default'))
);
