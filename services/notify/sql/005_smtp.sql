-- notify, e-mail: an account may send through SMTP (provider 'smtp',
-- services/notify/daemon/smtp.c). Its base_url is the server
-- (smtp://host:587 with STARTTLS, or smtps://host:465; '' for the daemon's
-- RETAIN_NOTIFY_SMTP_URL), account_id and token the login and its
-- password ('' for a server that takes mail without one), sender the From
-- ("Shop <shop@example.com>"). The subject and the HTML part are the
-- send's own columns (003).
ALTER TABLE notify.accounts DROP CONSTRAINT accounts_provider_check;
ALTER TABLE notify.accounts ADD CONSTRAINT accounts_provider_check
    CHECK (provider IN ('telegram', 'viber', 'meta', 'twilio', 'smtp'));
