/*
 * inbox_sync: ingestd kept in step with its inboxes (inbox_sync.h).
 *
 * A poller is restarted, not reconfigured, when its inbox changes: the
 * fingerprint of what it was started with (the secret and the
 * configuration, serialised with sorted keys) is compared at each load,
 * so any change at all gives a fresh poller with the new settings, and an
 * unchanged inbox keeps its poller and its connection. At most MAX_POLLERS
 * run; an e-mail inbox past that many is not polled.
 */
#include "inbox_sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap.h"
#include "rt_channel.h"
#include "rt_log.h"

#define MAX_POLLERS 256

typedef struct {
    char id[96];           /* inbox id */
    char *fingerprint;     /* its configuration and secret when started */
    imap_poller_t *poller; /* the running poller */
} s_poller_slot_t;

struct inbox_sync_t {
    inboxes_t *inboxes;                   /* followed; lent */
    writer_t *writer;                     /* where polled messages go; lent */
    const char *dsn;                      /* the pollers' PostgreSQL; lent */
    rt_metrics_t *metrics;                /* the registry; lent */
    const char *public_url;               /* base of the announced addresses; lent */
    s_poller_slot_t pollers[MAX_POLLERS]; /* IMAP pollers of e-mail inboxes */
    size_t npollers;                      /* used slots */
};

inbox_sync_t *
inbox_sync_new (inboxes_t *inboxes, writer_t *writer, const char *dsn, rt_metrics_t *metrics,
                const char *public_url)
{
    inbox_sync_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->inboxes = inboxes;
    self->writer = writer;
    self->dsn = dsn;
    self->metrics = metrics;
    self->public_url = public_url;
    return self;
}

void
inbox_sync_destroy (inbox_sync_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    inbox_sync_t *self = *self_p;
    for (size_t k = 0; k < self->npollers; k++) {
        imap_poller_stop (&self->pollers[k].poller);
        free (self->pollers[k].fingerprint);
    }
    free (self);
    *self_p = NULL;
}

static char *
s_fingerprint (const ingest_inbox_t *inbox)
{
    char *config = json_dumps (inbox->config, JSON_SORT_KEYS | JSON_COMPACT);
    char *out = NULL;
    if (config && asprintf (&out, "%s\n%s", inbox->secret, config) < 0)
        out = NULL;
    free (config);
    return out;
}

/* Starts, restarts and stops IMAP pollers to match the inboxes that are
 * polled rather than called (their kind has no route: IMAP mailboxes) and
 * have an "imap_url". */
static void
s_sync_pollers (inbox_sync_t *self)
{
    inboxes_snapshot_t *snap = inboxes_acquire (self->inboxes);
    size_t i, k;
    char err[256];

    /* Stop pollers whose inbox is gone or changed. */
    for (k = 0; k < self->npollers;) {
        s_poller_slot_t *slot = &self->pollers[k];
        const ingest_inbox_t *inbox = inboxes_find (snap, slot->id);
        char *fp = inbox ? s_fingerprint (inbox) : NULL;
        bool keep = inbox && fp && strcmp (fp, slot->fingerprint) == 0 &&
                    !inboxes_kind (inbox)->route &&
                    json_is_string (json_object_get (inbox->config, "imap_url"));
        free (fp);
        if (keep) {
            k++;
            continue;
        }
        rt_log (RT_LOG_INFO, "stopping IMAP poller", rt_log_str ("inbox", slot->id));
        imap_poller_stop (&slot->poller);
        free (slot->fingerprint);
        self->pollers[k] = self->pollers[--self->npollers];
    }
    /* Start pollers for inboxes that have none. */
    for (i = 0; i < inboxes_count (snap); i++) {
        const ingest_inbox_t *inbox = inboxes_at (snap, i);
        bool running = false;
        if (inboxes_kind (inbox)->route ||
            !json_is_string (json_object_get (inbox->config, "imap_url")))
            continue;
        for (k = 0; k < self->npollers && !running; k++)
            running = strcmp (self->pollers[k].id, inbox->id) == 0;
        if (running || self->npollers == MAX_POLLERS)
            continue;
        {
            s_poller_slot_t *slot = &self->pollers[self->npollers];
            slot->poller =
                imap_poller_start (inbox, self->writer, self->dsn, self->metrics, err, sizeof err);
            if (!slot->poller) {
                rt_log (RT_LOG_ERROR, "IMAP poller not started", rt_log_str ("inbox", inbox->id),
                        rt_log_str ("error", err));
                continue;
            }
            snprintf (slot->id, sizeof slot->id, "%s", inbox->id);
            slot->fingerprint = s_fingerprint (inbox);
            if (!slot->fingerprint)
                slot->fingerprint = strdup ("");
            self->npollers++;
            rt_log (RT_LOG_INFO, "IMAP poller started", rt_log_str ("inbox", inbox->id));
        }
    }
    inboxes_release (snap);
}

static void
s_announce (inbox_sync_t *self)
{
    inboxes_snapshot_t *snap = inboxes_acquire (self->inboxes);
    size_t i;
    for (i = 0; i < inboxes_count (snap); i++) {
        const ingest_inbox_t *inbox = inboxes_at (snap, i);
        const rt_channel_kind_t *kind = inboxes_kind (inbox);
        const char *channel = ingest_channel_name (inbox->channel);
        char url[1024];
        /* The provider's address, not the channel's: a Twilio WhatsApp
         * number posts to Twilio's route. */
        if (!kind->route) {
            rt_log (RT_LOG_INFO, "inbox polled", rt_log_str ("inbox", inbox->id),
                    rt_log_str ("channel", channel), rt_log_str ("provider", kind->provider));
            continue;
        }
        rt_channel_kind_url (kind, self->public_url, inbox->id, url, sizeof url);
        rt_log (RT_LOG_INFO, "inbox webhook", rt_log_str ("inbox", inbox->id),
                rt_log_str ("channel", channel), rt_log_str ("provider", kind->provider),
                rt_log_str ("url", url));
    }
    inboxes_release (snap);
}

void
inbox_sync_apply (inbox_sync_t *self)
{
    s_announce (self);
    s_sync_pollers (self);
}
