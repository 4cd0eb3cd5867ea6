/*
 * inboxes: ingest.inboxes as refcounted snapshots (see inboxes.h).
 *
 * Each refresh also records whether PostgreSQL answered it and, while it
 * waits, since when: a connection attempt to a host that drops packets
 * can block for as long as the kernel retries, and readiness must not
 * report the last answer as current meanwhile.
 */
#include "inboxes.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_db.h"
#include "rt_clock.h"
#include "rt_log.h"

/* pub comes first: inboxes_kind finds the entry from the inbox it lent. */
typedef struct {
    ingest_inbox_t pub;            /* what handlers see; strings point into the fields below */
    const rt_channel_kind_t *kind; /* its channel and provider (common/channel) */
    char *id;                      /* inbox id */
    char *secret;                  /* current secret */
    char *previous;                /* previous secret or "" */
    json_t *config;                /* settings object */
} s_entry_t;

struct inboxes_snapshot_t {
    atomic_int refs;    /* holders, the inboxes_t included */
    s_entry_t *entries; /* enabled inboxes, sorted by id */
    size_t count;       /* their number */
};

struct inboxes_t {
    rt_db_t *db;                 /* reads ingest.inboxes */
    pthread_mutex_t lock;        /* guards current */
    inboxes_snapshot_t *current; /* the snapshot requests take */
    char stamp[128];             /* what the loaded snapshot reflects */
    int loaded;                  /* a snapshot came from PostgreSQL */
    bool db_ok;                  /* the last refresh was answered; guarded by lock */
    char db_error[256];          /* why it was not, one line; guarded by lock */
    int64_t busy_since_ms;       /* when the refresh under way began, 0 when none; lock */
};

static void
s_snapshot_free (inboxes_snapshot_t *snap)
{
    size_t i;
    for (i = 0; i < snap->count; i++) {
        free (snap->entries[i].id);
        free (snap->entries[i].secret);
        free (snap->entries[i].previous);
        json_decref (snap->entries[i].config);
    }
    free (snap->entries);
    free (snap);
}

void
inboxes_release (inboxes_snapshot_t *snap)
{
    if (snap && atomic_fetch_sub (&snap->refs, 1) == 1)
        s_snapshot_free (snap);
}

inboxes_t *
inboxes_new (const char *dsn)
{
    inboxes_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->db = rt_db_new (dsn, "retain-ingestd-inboxes");
    self->current = calloc (1, sizeof *self->current);
    if (!self->db || !self->current) {
        rt_db_destroy (&self->db);
        free (self->current);
        free (self);
        return NULL;
    }
    atomic_init (&self->current->refs, 1);
    pthread_mutex_init (&self->lock, NULL);
    self->db_ok = true;
    return self;
}

void
inboxes_destroy (inboxes_t **self_p)
{
    inboxes_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    inboxes_release (self->current);
    rt_db_destroy (&self->db);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

int
inboxes_loaded (inboxes_t *self)
{
    int loaded;
    pthread_mutex_lock (&self->lock);
    loaded = self->loaded;
    pthread_mutex_unlock (&self->lock);
    return loaded;
}

bool
inboxes_db_ok (inboxes_t *self, char *why, size_t whylen)
{
    bool ok;
    int64_t waited;
    pthread_mutex_lock (&self->lock);
    ok = self->db_ok;
    waited = self->busy_since_ms ? rt_clock_mono_ms () - self->busy_since_ms : 0;
    if (!ok)
        snprintf (why, whylen, "%s", self->db_error);
    else if (waited > INBOXES_STALL_MS) {
        ok = false;
        snprintf (why, whylen, "PostgreSQL unreachable: no answer for %llds",
                  (long long)(waited / 1000));
    }
    pthread_mutex_unlock (&self->lock);
    return ok;
}

/* Ends a refresh: records its outcome for inboxes_db_ok and returns rc. A
 * failure says whether the connection is gone (unreachable) or a statement
 * failed on a live one; libpq's message is kept to its first line. */
static int
s_settle (inboxes_t *self, int rc, const char *what)
{
    char reason[sizeof self->db_error];
    if (rc < 0) {
        const char *error = rt_db_error (self->db);
        size_t n = strcspn (error, "\n");
        if (!rt_db_is_ok (self->db))
            snprintf (reason, sizeof reason, "PostgreSQL unreachable: %.*s", (int)n, error);
        else
            snprintf (reason, sizeof reason, "PostgreSQL: %s failed: %.*s", what, (int)n, error);
    }
    pthread_mutex_lock (&self->lock);
    self->busy_since_ms = 0;
    self->db_ok = rc >= 0;
    if (rc < 0)
        snprintf (self->db_error, sizeof self->db_error, "%s", reason);
    pthread_mutex_unlock (&self->lock);
    return rc;
}

inboxes_snapshot_t *
inboxes_acquire (inboxes_t *self)
{
    inboxes_snapshot_t *snap;
    pthread_mutex_lock (&self->lock);
    snap = self->current;
    atomic_fetch_add (&snap->refs, 1);
    pthread_mutex_unlock (&self->lock);
    return snap;
}

static int
s_cmp_entry (const void *a, const void *b)
{
    return strcmp (((const s_entry_t *)a)->id, ((const s_entry_t *)b)->id);
}

int
inboxes_refresh (inboxes_t *self)
{
    PGresult *res;
    inboxes_snapshot_t *snap, *old;
    char stamp[sizeof self->stamp];
    int r, n;

    pthread_mutex_lock (&self->lock);
    self->busy_since_ms = rt_clock_mono_ms ();
    pthread_mutex_unlock (&self->lock);
    if (rt_db_ensure_for (self->db, 0) != 0)
        return s_settle (self, -1, "connecting");
    /* A cheap look first: reload only when something changed. */
    res = rt_db_exec_params (self->db,
                             "SELECT count(*)::text || ':' || coalesce(max(updated_at)::text, '') "
                             "FROM ingest.inboxes",
                             0, NULL);
    if (!res)
        return s_settle (self, -1, "reading ingest.inboxes");
    if (self->loaded && strcmp (PQgetvalue (res, 0, 0), self->stamp) == 0) {
        PQclear (res);
        return s_settle (self, 0, NULL);
    }
    /* Taken as loaded only once the snapshot is in: a reload that fails
     * halfway is tried again at the next refresh. */
    snprintf (stamp, sizeof stamp, "%s", PQgetvalue (res, 0, 0));
    PQclear (res);

    res = rt_db_exec_params (self->db,
                             "SELECT id, channel, provider, secret, previous_secret, config::text "
                             "FROM ingest.inboxes WHERE enabled ORDER BY id",
                             0, NULL);
    if (!res)
        return s_settle (self, -1, "reading ingest.inboxes");
    n = PQntuples (res);
    snap = calloc (1, sizeof *snap);
    if (!snap || !(snap->entries = calloc ((size_t)(n ? n : 1), sizeof *snap->entries))) {
        free (snap);
        PQclear (res);
        s_settle (self, 0, NULL); /* PostgreSQL answered; memory ran out */
        return -1;
    }
    atomic_init (&snap->refs, 1);
    for (r = 0; r < n; r++) {
        s_entry_t *e = &snap->entries[snap->count];
        json_error_t jerr;
        const rt_channel_t *channel = rt_channel_by_name (PQgetvalue (res, r, 1));
        const char *provider = PQgetvalue (res, r, 2);
        const rt_channel_kind_t *kind =
            channel ? rt_channel_kind_find (channel->value, provider) : NULL;
        if (!kind) {
            /* The CHECKs of ingest.inboxes follow the same table: only a
             * database migrated by a newer retain gets here. */
            rt_log (
                RT_LOG_ERROR, "inbox skipped: a channel and provider this ingestd does not know",
                rt_log_str ("inbox", PQgetvalue (res, r, 0)),
                rt_log_str ("channel", PQgetvalue (res, r, 1)), rt_log_str ("provider", provider));
            continue;
        }
        e->kind = kind;
        e->config = json_loads (PQgetvalue (res, r, 5), 0, &jerr);
        e->id = strdup (PQgetvalue (res, r, 0));
        e->secret = strdup (PQgetvalue (res, r, 3));
        e->previous = strdup (PQgetvalue (res, r, 4));
        if (!e->config || !json_is_object (e->config) || !e->id || !e->secret || !e->previous) {
            rt_log (RT_LOG_ERROR, "inbox skipped: unreadable configuration",
                    rt_log_str ("inbox", PQgetvalue (res, r, 0)));
            free (e->id);
            free (e->secret);
            free (e->previous);
            json_decref (e->config);
            memset (e, 0, sizeof *e);
            continue;
        }
        /* A provider's own settings (Binotel's allow_from), read once here
         * so that a typo skips the inbox loudly instead of refusing every
         * request it gets. */
        {
            const ingest_provider_t *provider = ingest_provider (kind->provider);
            char note[256] = "";
            int checked = provider && provider->config_check
                              ? provider->config_check (e->config, note, sizeof note)
                              : 0;
            if (checked < 0) {
                rt_log (RT_LOG_ERROR, "inbox skipped: invalid configuration",
                        rt_log_str ("inbox", e->id), rt_log_str ("reason", note));
                free (e->id);
                free (e->secret);
                free (e->previous);
                json_decref (e->config);
                memset (e, 0, sizeof *e);
                continue;
            }
            if (checked > 0)
                rt_log (RT_LOG_WARN, "inbox configuration", rt_log_str ("inbox", e->id),
                        rt_log_str ("warning", note));
        }
        e->pub.id = e->id;
        e->pub.channel = channel->value;
        e->pub.secret = e->secret;
        e->pub.previous_secret = e->previous;
        e->pub.config = e->config;
        snap->count++;
    }
    PQclear (res);
    qsort (snap->entries, snap->count, sizeof *snap->entries, s_cmp_entry);
    pthread_mutex_lock (&self->lock);
    old = self->current;
    self->current = snap;
    self->loaded = 1;
    pthread_mutex_unlock (&self->lock);
    snprintf (self->stamp, sizeof self->stamp, "%s", stamp);
    inboxes_release (old);
    rt_log (RT_LOG_INFO, "inboxes loaded", rt_log_uint ("count", snap->count));
    return s_settle (self, 1, NULL);
}

const ingest_inbox_t *
inboxes_find (const inboxes_snapshot_t *snap, const char *id)
{
    s_entry_t key;
    const s_entry_t *e;
    key.id = (char *)id;
    e = bsearch (&key, snap->entries, snap->count, sizeof *snap->entries, s_cmp_entry);
    return e ? &e->pub : NULL;
}

size_t
inboxes_count (const inboxes_snapshot_t *snap)
{
    return snap->count;
}

const ingest_inbox_t *
inboxes_at (const inboxes_snapshot_t *snap, size_t i)
{
    return i < snap->count ? &snap->entries[i].pub : NULL;
}

const rt_channel_kind_t *
inboxes_kind (const ingest_inbox_t *inbox)
{
    return ((const s_entry_t *)inbox)->kind;
}
