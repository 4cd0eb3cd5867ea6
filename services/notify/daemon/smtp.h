/*
 * smtp: e-mail's sending half, a small pool of threads per sender worker
 * that each run one SMTP session at a time with a libcurl easy handle
 * (smtp:// with STARTTLS, or smtps://), and hand every end back to the
 * worker's libevent loop, where its outcome is recorded as the HTTP
 * providers' are (daemon/smtp.c says why threads).
 *
 * A worker makes one (smtp_new) on its loop, submits messages built by
 * provider_smtp_build, and gets each session's end in its done callback,
 * on the loop's thread, in no particular order. At most queue_max
 * sessions are queued or running: a submit beyond them is refused and the
 * worker records a transient failure. Strings given to smtp_submit are
 * copied (the password wiped when the session ends).
 */
#ifndef NOTIFY_SMTP_H
#define NOTIFY_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "provider.h"

/* E-mail's settings (main.c reads them; strings lent, read-only). */
typedef struct {
    const char *url;              /* RETAIN_NOTIFY_SMTP_URL: an account without base_url */
    bool tls_required;            /* STARTTLS or nothing (CURLUSESSL_ALL); false: when offered */
    bool tls_no_verify;           /* tests only: the server's certificate is not checked */
    int threads;                  /* sessions at once, per worker */
    const char *link_base;        /* RETAIN_NOTIFY_LINK_BASE, "https://shop.example/u/"; "": none */
    const char *link_keys;        /* rt_signed key set for its tokens; "": no link */
    int64_t link_ttl_ms;          /* how long a link works */
    const char *unsubscribe_mail; /* List-Unsubscribe's mailto address; "": none */
} smtp_config_t;

/* One message to send; strings copied by smtp_submit. */
typedef struct {
    const char *url;      /* smtp://host:port or smtps://host:port */
    const char *user;     /* the login; NULL or "": none */
    const char *password; /* its password (a secret: never logged) */
    const char *from;     /* MAIL FROM */
    const char *to;       /* RCPT TO */
    const char *data;     /* the message (provider_smtp_build's) */
    size_t len;           /* its length */
    int64_t timeout_ms;   /* the whole session at most */
} smtp_job_t;

/* How a session ended, for provider_smtp_classify. */
typedef struct {
    provider_smtp_answer_t answer; /* its strings point into the fields below */
    char curl_error[256];          /* libcurl's words */
    char reply_text[256];          /* the server's last reply after its code */
    bool cancelled;                /* smtp_destroy cut it short: nothing to record */
} smtp_result_t;

/* Called on the loop's thread once per submitted session. */
typedef void (*smtp_done_fn) (void *arg, const smtp_result_t *result);

typedef struct smtp_t smtp_t;

/* Starts cfg->threads threads for base's loop; the key set is parsed here.
 * NULL with the reason in err. */
smtp_t *smtp_new (struct event_base *base, const smtp_config_t *cfg, int queue_max, char *err,
                  size_t errlen);

/* The settings it was made with. */
const smtp_config_t *smtp_config (const smtp_t *self);

/* The one-click unsubscribe link of a send into out (provider_unsubscribe_
 * link, expiring link_ttl_ms after now_ms); 0 when there is none to make
 * (no link base or keys, no customer), -1 when it could not be made. */
long smtp_link (const smtp_t *self, const char *customer_id, Retain__V1__Channel channel,
                const char *category, int64_t now_ms, char *out, size_t outlen);

/* Queues a session; done(arg, ...) is called later on the loop's thread.
 * 0, or -1 with the reason in err (full, out of memory): done is not
 * called. */
int smtp_submit (smtp_t *self, const smtp_job_t *job, smtp_done_fn done, void *arg, char *err,
                 size_t errlen);

/* Stops the threads (a session under way is cut short), calls done for
 * every session not yet reported (cancelled unless it had ended) and frees
 * it; NULL is fine. On the loop's thread, after the loop stopped. */
void smtp_destroy (smtp_t **self_p);

#endif
