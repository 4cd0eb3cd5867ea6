/*
 * imap: polling a support mailbox over IMAP with libcurl (see imap.h).
 *
 * One thread per mailbox, one libcurl easy handle on it, reused across
 * polls so the IMAP session stays logged in. A poll is:
 *
 *   1. "EXAMINE <mailbox>" as a custom request on the mailbox URL. libcurl
 *      SELECTs the mailbox on a new connection first, then sends ours; the
 *      untagged answer carries UIDVALIDITY and UIDNEXT. EXAMINE leaves the
 *      mailbox read-only for the rest of the session, so fetching does not
 *      mark messages \Seen for the people who also read the mailbox.
 *   2. Nothing more when UIDNEXT says no UID above the cursor exists;
 *      otherwise "UID SEARCH UID <last+1>:*". "n:*" always matches the
 *      highest UID even when it is below n, so UIDs <= last are dropped.
 *   3. For each new UID in ascending order: fetch "<mailbox URL>;UID=<n>"
 *      (libcurl reads the literal by its announced length, so a message
 *      body can never be taken for protocol), parse it with mime.h, and
 *      hand it to the writer with the cursor "<uidvalidity>:<uid>", waiting
 *      for the commit. Only then does the cursor move in memory.
 *
 * Invariants: the cursor in PostgreSQL only moves in the transaction that
 * keeps its message, so a crash anywhere re-reads at most the message in
 * hand, and the writer's de-duplication (Message-ID, else
 * "uid:<uidvalidity>:<uid>") turns that re-read into a duplicate rather
 * than a second event. A message the writer could not commit is retried
 * with backoff, never passed over. A UID that the server no longer has
 * (expunged between SEARCH and FETCH) is the only one left behind.
 *
 * Failures of the server (connection, login, a command, a stall) and of
 * PostgreSQL back off from 1 s doubling to 60 s; a poll that succeeds
 * resets the backoff. Sleeps wait on a condition variable and transfers
 * poll a stop flag from libcurl's progress callback, so stopping takes at
 * most about a second plus the commit in hand. The password is given to
 * libcurl as an option, never put in a URL, and nothing here logs URLs.
 *
 * What goes on the bus is bounded whatever arrives: the text is cut at
 * S_MAX_TEXT bytes, names at S_MAX_NAME, attachments listed at
 * S_MAX_ATTACHMENTS; the raw message (up to S_MAX_MESSAGE) is kept whole
 * in ingest.raw. An attachment's file_id, "imap:<uidvalidity>:<uid>#<n>",
 * names the n-th attachment (from 0, in MIME order) of that raw message.
 */
#include "imap.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include "mime.h"
#include "rt_log.h"

enum {
    S_BACKOFF_MIN_MS = 1000,
    S_BACKOFF_MAX_MS = 60000,
    S_MAX_MESSAGE = 64 * 1024 * 1024, /* bytes of one message kept; the rest is dropped */
    S_MAX_TEXT = 256 * 1024,          /* bytes of text on the bus (busd takes 1 MB envelopes) */
    S_MAX_NAME = 512,                 /* bytes of a subject, a name, a file name */
    S_MAX_ATTACHMENTS = 100,          /* attachments listed on the bus */
    S_MAX_RESPONSE = 16 * 1024 * 1024 /* bytes of an EXAMINE or SEARCH answer */
};

struct imap_poller_t {
    /* the inbox, our own copy */
    char *id;           /* inbox id */
    char *secret;       /* the IMAP password */
    json_t *config;     /* its configuration */
    ingest_inbox_t box; /* the above, as the writer wants it */
    /* from the configuration */
    char *mailbox_url;     /* scheme://host[:port]/<mailbox, URL-encoded> */
    char *mailbox;         /* the mailbox name, decoded, for EXAMINE */
    char *username;        /* IMAP login */
    int poll_ms;           /* pause between polls */
    bool insecure;         /* skip TLS verification */
    char cursor_name[128]; /* "imap:<inbox id>" */
    /* what it works with */
    writer_t *writer;               /* where messages go */
    char *dsn;                      /* PostgreSQL, for reading the cursor */
    rt_counter_t *fetched;          /* messages committed */
    rt_counter_t *errors;           /* failures of any kind */
    CURL *curl;                     /* the IMAP session */
    char curl_err[CURL_ERROR_SIZE]; /* libcurl's last error text */
    /* where it is */
    bool have_cursor;     /* read from PostgreSQL */
    uint64_t uidvalidity; /* of the stored cursor (0: none yet) */
    uint64_t last_uid;    /* the last UID committed (or found expunged) */
    /* the thread */
    pthread_t thread;     /* polls */
    pthread_mutex_t lock; /* guards stop and wakes sleeps */
    pthread_cond_t cond;  /* signalled on stop */
    atomic_bool stop;     /* set once by imap_poller_stop */
};

/* A growing byte buffer for libcurl's callbacks. */
typedef struct {
    char *data;     /* the bytes, NUL-terminated */
    size_t len;     /* used */
    size_t cap;     /* allocated */
    size_t limit;   /* bytes kept at most; the rest is counted and dropped */
    bool truncated; /* more arrived than limit */
    bool oom;       /* an allocation failed */
} s_sink_t;

static size_t
s_sink_write (char *ptr, size_t size, size_t nmemb, void *arg)
{
    s_sink_t *s = arg;
    size_t n = size * nmemb, keep = n;
    if (s->len + keep > s->limit) {
        keep = s->len < s->limit ? s->limit - s->len : 0;
        s->truncated = true;
    }
    if (keep > 0 && s->len + keep + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 16384;
        char *p;
        while (cap < s->len + keep + 1)
            cap *= 2;
        p = realloc (s->data, cap);
        if (!p) {
            s->oom = true;
            return 0; /* aborts the transfer */
        }
        s->data = p;
        s->cap = cap;
    }
    if (keep > 0) {
        memcpy (s->data + s->len, ptr, keep);
        s->len += keep;
        s->data[s->len] = '\0';
    }
    return n;
}

static void
s_sink_reset (s_sink_t *s, size_t limit)
{
    free (s->data);
    memset (s, 0, sizeof *s);
    s->limit = limit;
}

/* ------------------------------------------------------------------ */
/* Stopping and sleeping                                               */

static bool
s_stopping (imap_poller_t *self)
{
    return atomic_load (&self->stop);
}

/* Sleeps ms unless stopped first; true when stopped. */
static bool
s_sleep (imap_poller_t *self, int ms)
{
    struct timespec until;
    clock_gettime (CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock (&self->lock);
    while (!s_stopping (self)) {
        if (pthread_cond_timedwait (&self->cond, &self->lock, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock (&self->lock);
    return s_stopping (self);
}

/* Sleeps the backoff and doubles it; true when stopped. */
static bool
s_backoff (imap_poller_t *self, int *backoff_ms)
{
    bool stopped = s_sleep (self, *backoff_ms);
    *backoff_ms = *backoff_ms * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : *backoff_ms * 2;
    return stopped;
}

/* libcurl calls this about once a second and during waits: a non-zero
 * answer aborts the transfer, which is how a stop interrupts a slow
 * server. */
static int
s_progress (void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return s_stopping (arg) ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* The cursor                                                          */

static int
s_cursor_parse (const char *value, uint64_t *uidvalidity, uint64_t *uid)
{
    char *end;
    unsigned long long v, u;
    errno = 0;
    v = strtoull (value, &end, 10);
    if (errno || end == value || *end != ':')
        return -1;
    value = end + 1;
    u = strtoull (value, &end, 10);
    if (errno || end == value || *end != '\0')
        return -1;
    *uidvalidity = v;
    *uid = u;
    return 0;
}

/* Reads the stored cursor (none: start from the first UID). 0, or -1 when
 * PostgreSQL could not be asked. */
static int
s_cursor_load (imap_poller_t *self)
{
    /* A bounded connect, so a stop is not stuck behind an unreachable
     * server; a timeout in the DSN itself still wins. */
    const char *const keys[] = {"connect_timeout", "dbname", NULL};
    const char *const values[] = {"10", self->dsn, NULL};
    const char *params[1] = {self->cursor_name};
    PGconn *conn = PQconnectdbParams (keys, values, 1);
    PGresult *res = NULL;
    int rc = -1;
    if (PQstatus (conn) != CONNECTION_OK) {
        rt_log (RT_LOG_WARN, "IMAP cursor not read", rt_log_str ("inbox", self->id),
                rt_log_str ("error", PQerrorMessage (conn)));
        goto cleanup;
    }
    res = PQexecParams (conn, "SELECT value FROM ingest.cursors WHERE name = $1", 1, NULL, params,
                        NULL, NULL, 0);
    if (PQresultStatus (res) != PGRES_TUPLES_OK) {
        rt_log (RT_LOG_WARN, "IMAP cursor not read", rt_log_str ("inbox", self->id),
                rt_log_str ("error", PQerrorMessage (conn)));
        goto cleanup;
    }
    self->uidvalidity = 0;
    self->last_uid = 0;
    if (PQntuples (res) == 1 &&
        s_cursor_parse (PQgetvalue (res, 0, 0), &self->uidvalidity, &self->last_uid) != 0) {
        /* Only this code writes it; a value it cannot read means starting
         * over, which de-duplication makes safe. */
        rt_log (RT_LOG_WARN, "IMAP cursor unreadable, starting over",
                rt_log_str ("inbox", self->id), rt_log_str ("cursor", PQgetvalue (res, 0, 0)));
        self->uidvalidity = 0;
        self->last_uid = 0;
    }
    self->have_cursor = true;
    rt_log (RT_LOG_INFO, "IMAP cursor", rt_log_str ("inbox", self->id),
            rt_log_uint ("uidvalidity", self->uidvalidity),
            rt_log_uint ("last_uid", self->last_uid));
    rc = 0;
cleanup:
    PQclear (res);
    PQfinish (conn);
    return rc;
}

/* ------------------------------------------------------------------ */
/* IMAP commands                                                       */

/* Sets up one request on the session handle: the URL, a custom command
 * (or NULL for a fetch) and where the answer goes. */
static void
s_request (imap_poller_t *self, const char *url, const char *command, s_sink_t *sink)
{
    curl_easy_setopt (self->curl, CURLOPT_URL, url);
    curl_easy_setopt (self->curl, CURLOPT_CUSTOMREQUEST, command);
    curl_easy_setopt (self->curl, CURLOPT_WRITEFUNCTION, s_sink_write);
    curl_easy_setopt (self->curl, CURLOPT_WRITEDATA, sink);
    self->curl_err[0] = '\0';
}

static void
s_fail (imap_poller_t *self, const char *what, CURLcode code)
{
    rt_counter_inc (self->errors);
    if (code == CURLE_ABORTED_BY_CALLBACK && s_stopping (self))
        return;
    rt_log (RT_LOG_WARN, "IMAP request failed", rt_log_str ("inbox", self->id),
            rt_log_str ("request", what),
            rt_log_str ("error", self->curl_err[0] ? self->curl_err : curl_easy_strerror (code)));
}

/* The number after `key` in the text ("[UIDVALIDITY 123]"); 0 when absent. */
static uint64_t
s_number_after (const char *text, const char *key)
{
    const char *p = text ? strstr (text, key) : NULL;
    if (!p)
        return 0;
    return strtoull (p + strlen (key), NULL, 10);
}

/* EXAMINE: UIDVALIDITY and UIDNEXT (0 when the server left it out). */
static int
s_examine (imap_poller_t *self, uint64_t *uidvalidity, uint64_t *uidnext)
{
    s_sink_t sink = {0};
    char *command = NULL;
    CURLcode code;
    int rc = -1;
    s_sink_reset (&sink, S_MAX_RESPONSE);
    if (asprintf (&command, "EXAMINE \"%s\"", self->mailbox) < 0) {
        command = NULL;
        goto cleanup;
    }
    s_request (self, self->mailbox_url, command, &sink);
    code = curl_easy_perform (self->curl);
    if (code != CURLE_OK) {
        s_fail (self, "EXAMINE", code);
        goto cleanup;
    }
    *uidvalidity = s_number_after (sink.data, "[UIDVALIDITY ");
    *uidnext = s_number_after (sink.data, "[UIDNEXT ");
    if (*uidvalidity == 0) {
        rt_counter_inc (self->errors);
        rt_log (RT_LOG_WARN, "IMAP server sent no UIDVALIDITY", rt_log_str ("inbox", self->id));
        goto cleanup;
    }
    rc = 0;
cleanup:
    free (command);
    s_sink_reset (&sink, 0);
    return rc;
}

static int
s_cmp_u64 (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* UID SEARCH for UIDs above the cursor; an owned ascending array. */
static int
s_search (imap_poller_t *self, uint64_t **uids, size_t *nuids)
{
    s_sink_t sink = {0};
    char command[96];
    const char *p;
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    CURLcode code;
    int rc = -1;
    *uids = NULL;
    *nuids = 0;
    s_sink_reset (&sink, S_MAX_RESPONSE);
    snprintf (command, sizeof command, "UID SEARCH UID %" PRIu64 ":*", self->last_uid + 1);
    s_request (self, self->mailbox_url, command, &sink);
    code = curl_easy_perform (self->curl);
    if (code != CURLE_OK) {
        s_fail (self, "UID SEARCH", code);
        goto cleanup;
    }
    if (sink.truncated) {
        rt_counter_inc (self->errors);
        rt_log (RT_LOG_WARN, "IMAP SEARCH answer too long", rt_log_str ("inbox", self->id));
        goto cleanup;
    }
    /* "* SEARCH 4 5 6" lines; anything in parentheses (a MODSEQ) is not a UID. */
    for (p = sink.data ? strstr (sink.data, "* SEARCH") : NULL; p; p = strstr (p, "* SEARCH")) {
        p += 8;
        while (*p && *p != '\r' && *p != '\n' && *p != '(') {
            char *end;
            unsigned long long uid;
            if (*p < '0' || *p > '9') {
                p++;
                continue;
            }
            uid = strtoull (p, &end, 10);
            p = end;
            if (uid <= self->last_uid)
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                uint64_t *nv = realloc (v, ncap * sizeof *nv);
                if (!nv)
                    goto cleanup;
                v = nv;
                cap = ncap;
            }
            v[n++] = uid;
        }
    }
    if (n > 1)
        qsort (v, n, sizeof *v, s_cmp_u64);
    *uids = v;
    *nuids = n;
    v = NULL;
    rc = 0;
cleanup:
    free (v);
    s_sink_reset (&sink, 0);
    return rc;
}

/* Fetches one message. 0 fetched, 1 gone from the server, -1 failed. */
static int
s_fetch (imap_poller_t *self, uint64_t uid, s_sink_t *sink)
{
    char *url = NULL;
    CURLcode code;
    int rc = -1;
    s_sink_reset (sink, S_MAX_MESSAGE);
    if (asprintf (&url, "%s;UID=%" PRIu64, self->mailbox_url, uid) < 0)
        return -1;
    s_request (self, url, NULL, sink);
    code = curl_easy_perform (self->curl);
    if (code == CURLE_REMOTE_FILE_NOT_FOUND) {
        /* libcurl's answer to a FETCH that returned no message: expunged
         * since the SEARCH. */
        rt_log (RT_LOG_WARN, "IMAP message gone before it was fetched",
                rt_log_str ("inbox", self->id), rt_log_uint ("uid", uid));
        rc = 1;
    } else if (code != CURLE_OK) {
        s_fail (self, "UID FETCH", code);
    } else if (sink->oom) {
        rt_counter_inc (self->errors);
    } else {
        if (sink->truncated)
            rt_log (RT_LOG_WARN, "IMAP message cut to the size limit",
                    rt_log_str ("inbox", self->id), rt_log_uint ("uid", uid),
                    rt_log_int ("limit", (int)S_MAX_MESSAGE));
        rc = 0;
    }
    free (url);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

/* A copy of at most max bytes of s, cut at a UTF-8 character boundary. */
static int
s_set_cut (char **field, const char *s, size_t max)
{
    size_t n = strlen (s);
    char *copy;
    if (n <= max)
        return ingest_set (field, s);
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    copy = strndup (s, max);
    if (!copy)
        return -1;
    free (*field);
    *field = copy;
    return 0;
}

static const char *
s_kind (const char *mime_type)
{
    if (strncmp (mime_type, "image/", 6) == 0)
        return "image";
    if (strncmp (mime_type, "video/", 6) == 0)
        return "video";
    if (strncmp (mime_type, "audio/", 6) == 0)
        return "audio";
    return "document";
}

/* The InboundMessage of one parsed message into result. 0 or -1 (out of
 * memory). */
static int
s_build (imap_poller_t *self, const mime_message_t *m, uint64_t uidvalidity, uint64_t uid,
         ingest_result_t *result)
{
    Retain__V1__InboundMessage *msg = ingest_inbound_new (&self->box);
    char external_id[1024], file_id[128];
    size_t i;
    if (!msg)
        return -1;
    if (m->message_id[0] && strlen (m->message_id) < sizeof external_id)
        snprintf (external_id, sizeof external_id, "%s", m->message_id);
    else
        snprintf (external_id, sizeof external_id, "uid:%" PRIu64 ":%" PRIu64, uidvalidity, uid);
    if (ingest_set (&msg->external_id, external_id) != 0 ||
        s_set_cut (&msg->external_user_id, m->from_email, S_MAX_NAME) != 0 ||
        s_set_cut (&msg->email, m->from_email, S_MAX_NAME) != 0 ||
        s_set_cut (&msg->display_name, m->from_name, S_MAX_NAME) != 0 ||
        s_set_cut (&msg->subject, m->subject, S_MAX_NAME) != 0 ||
        s_set_cut (&msg->text, m->text, S_MAX_TEXT) != 0 ||
        s_set_cut (&msg->thread_id, m->thread_id, S_MAX_NAME) != 0 ||
        s_set_cut (&msg->reply_to, m->in_reply_to, S_MAX_NAME) != 0 ||
        ingest_set (&msg->event, "message") != 0)
        goto fail;
    msg->sent_at = m->date_ms;
    for (i = 0; i < m->nattachments && i < S_MAX_ATTACHMENTS; i++) {
        const mime_attachment_t *a = &m->attachments[i];
        Retain__V1__Attachment *att = ingest_attachment_add (msg, s_kind (a->mime_type));
        if (!att)
            goto fail;
        snprintf (file_id, sizeof file_id, "imap:%" PRIu64 ":%" PRIu64 "#%zu", uidvalidity, uid, i);
        if (s_set_cut (&att->name, a->name, S_MAX_NAME) != 0 ||
            s_set_cut (&att->mime_type, a->mime_type, S_MAX_NAME) != 0 ||
            ingest_set (&att->file_id, file_id) != 0)
            goto fail;
        att->size = a->size;
    }
    /* ingest_item_add owns msg from here, also when it fails. */
    return ingest_item_add (result, "InboundMessage", external_id, &msg->base,
                            ingest_channel_name (self->box.channel), self->box.id,
                            msg->external_user_id);
fail:
    protobuf_c_message_free_unpacked (&msg->base, NULL);
    return -1;
}

/* Parses, builds and commits one fetched message with its cursor,
 * retrying until it is committed. 0 committed, -1 stopped first. */
static int
s_deliver (imap_poller_t *self, const s_sink_t *raw, uint64_t uidvalidity, uint64_t uid)
{
    int backoff = S_BACKOFF_MIN_MS;
    char cursor[64];
    snprintf (cursor, sizeof cursor, "%" PRIu64 ":%" PRIu64, uidvalidity, uid);
    for (;;) {
        ingest_result_t result;
        writer_job_t job;
        mime_message_t *m = mime_parse (raw->data ? raw->data : "", raw->len);
        size_t fresh = 0, duplicates = 0;
        int rc = -1;
        memset (&result, 0, sizeof result);
        if (m && m->damaged)
            rt_log (RT_LOG_WARN, "e-mail damaged, kept what could be decoded",
                    rt_log_str ("inbox", self->id), rt_log_uint ("uid", uid),
                    rt_log_str ("note", m->note));
        if (m && s_build (self, m, uidvalidity, uid, &result) == 0) {
            memset (&job, 0, sizeof job);
            job.inbox = &self->box;
            job.result = &result;
            job.raw = (const uint8_t *)(raw->data ? raw->data : "");
            job.raw_len = raw->len;
            job.raw_type = "message/rfc822";
            job.cursor_name = self->cursor_name;
            job.cursor_value = cursor;
            rc = writer_submit_wait (self->writer, &job, &fresh, &duplicates);
            if (rc == 1) {
                /* This message can never be stored (the writer says why):
                 * keep its raw copy and move the cursor past it, or the
                 * mailbox would stop at it forever. */
                rt_counter_inc (self->errors);
                rt_log (RT_LOG_WARN, "e-mail refused; kept raw and skipped",
                        rt_log_str ("inbox", self->id), rt_log_uint ("uid", uid),
                        rt_log_str ("reason", result.reason[0] ? result.reason : "unstorable"));
                ingest_result_reset (&result);
                memset (&result, 0, sizeof result);
                job.result = &result;
                rc = writer_submit_wait (self->writer, &job, &fresh, &duplicates);
            }
        }
        ingest_result_reset (&result);
        mime_free (&m);
        if (rc == 0) {
            rt_counter_inc (self->fetched);
            rt_log (RT_LOG_DEBUG, "e-mail taken in", rt_log_str ("inbox", self->id),
                    rt_log_uint ("uid", uid), rt_log_uint ("duplicate", duplicates));
            return 0;
        }
        rt_counter_inc (self->errors);
        rt_log (RT_LOG_WARN, "e-mail not committed, retrying", rt_log_str ("inbox", self->id),
                rt_log_uint ("uid", uid), rt_log_int ("retry_ms", backoff));
        if (s_backoff (self, &backoff))
            return -1;
    }
}

/* One poll. 0 done (also when stopped), -1 failed (back off). */
static int
s_poll (imap_poller_t *self)
{
    uint64_t uidvalidity = 0, uidnext = 0, *uids = NULL;
    size_t nuids = 0, i;
    s_sink_t raw = {0};
    int rc = -1;

    if (s_examine (self, &uidvalidity, &uidnext) != 0)
        goto cleanup;
    if (uidvalidity != self->uidvalidity) {
        /* A new mailbox as far as UIDs go (a first run, or the server
         * renumbered): from the first UID; Message-IDs catch repeats. */
        if (self->uidvalidity != 0)
            rt_log (RT_LOG_WARN, "IMAP UIDVALIDITY changed, reading the mailbox again",
                    rt_log_str ("inbox", self->id), rt_log_uint ("was", self->uidvalidity),
                    rt_log_uint ("now", uidvalidity));
        self->uidvalidity = uidvalidity;
        self->last_uid = 0;
    }
    if (uidnext != 0 && uidnext <= self->last_uid + 1) {
        rc = 0; /* nothing new */
        goto cleanup;
    }
    if (s_search (self, &uids, &nuids) != 0)
        goto cleanup;
    for (i = 0; i < nuids && !s_stopping (self); i++) {
        int got = s_fetch (self, uids[i], &raw);
        if (got < 0)
            goto cleanup;
        if (got == 0 && s_deliver (self, &raw, uidvalidity, uids[i]) != 0)
            break; /* stopped */
        self->last_uid = uids[i];
    }
    rc = 0;
cleanup:
    free (uids);
    s_sink_reset (&raw, 0);
    return rc;
}

static void *
s_run (void *arg)
{
    imap_poller_t *self = arg;
    int backoff = S_BACKOFF_MIN_MS;
    while (!s_stopping (self)) {
        if (!self->have_cursor) {
            if (s_cursor_load (self) != 0) {
                rt_counter_inc (self->errors);
                s_backoff (self, &backoff);
                continue;
            }
            backoff = S_BACKOFF_MIN_MS;
        }
        if (s_poll (self) != 0) {
            rt_log (RT_LOG_DEBUG, "IMAP poll failed, retrying", rt_log_str ("inbox", self->id),
                    rt_log_int ("retry_ms", backoff));
            s_backoff (self, &backoff);
            continue;
        }
        backoff = S_BACKOFF_MIN_MS;
        s_sleep (self, self->poll_ms);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

/* Splits "imap[s]://[user@]host[:port]/[mailbox][;params][?query]" into a
 * mailbox URL without user info or parameters, and the decoded mailbox
 * name ("INBOX" when none). */
static int
s_parse_url (imap_poller_t *self, const char *url, char *err, size_t errlen)
{
    const char *rest, *slash, *at, *end;
    size_t schemelen;
    char *name = NULL;
    int namelen = 0, i;
    if (strncmp (url, "imap://", 7) == 0)
        schemelen = 7;
    else if (strncmp (url, "imaps://", 8) == 0)
        schemelen = 8;
    else {
        snprintf (err, errlen, "imap_url must start with imap:// or imaps://");
        return -1;
    }
    rest = url + schemelen;
    slash = strchr (rest, '/');
    at = strchr (rest, '@');
    if (at && (!slash || at < slash))
        rest = at + 1; /* credentials belong in username and the secret */
    if ((slash ? slash : rest + strlen (rest)) == rest) {
        snprintf (err, errlen, "imap_url has no host");
        return -1;
    }
    end = slash ? slash + 1 + strcspn (slash + 1, ";?") : NULL;
    if (slash && end > slash + 1) {
        name = curl_easy_unescape (NULL, slash + 1, (int)(end - slash - 1), &namelen);
        if (!name)
            return -1;
    }
    /* The name goes into a quoted IMAP string of our own command. */
    for (i = 0; name && i < namelen; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7F || c == '"' || c == '\\') {
            curl_free (name);
            snprintf (err, errlen, "imap_url names a mailbox with characters not supported");
            return -1;
        }
    }
    if (name && namelen > 0) {
        self->mailbox = strdup (name);
        if (asprintf (&self->mailbox_url, "%.*s%.*s/%.*s", (int)schemelen, url, (int)(slash - rest),
                      rest, (int)(end - slash - 1), slash + 1) < 0)
            self->mailbox_url = NULL;
    } else {
        self->mailbox = strdup ("INBOX");
        if (asprintf (&self->mailbox_url, "%.*s%.*s/INBOX", (int)schemelen, url,
                      (int)((slash ? slash : rest + strlen (rest)) - rest), rest) < 0)
            self->mailbox_url = NULL;
    }
    curl_free (name);
    return self->mailbox && self->mailbox_url ? 0 : -1;
}

static void
s_destroy (imap_poller_t *self)
{
    if (self->curl)
        curl_easy_cleanup (self->curl);
    free (self->id);
    free (self->secret);
    json_decref (self->config);
    free (self->mailbox_url);
    free (self->mailbox);
    free (self->username);
    free (self->dsn);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->cond);
    free (self);
    curl_global_cleanup ();
}

imap_poller_t *
imap_poller_start (const ingest_inbox_t *inbox, writer_t *writer, const char *dsn,
                   rt_metrics_t *metrics, char *err, size_t errlen)
{
    imap_poller_t *self;
    pthread_condattr_t attr;
    const char *url, *user;
    json_t *interval, *insecure;
    char labels[160];

    /* Reference-counted; on the control thread, before any poller thread
     * uses libcurl. */
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != 0) {
        snprintf (err, errlen, "libcurl failed to initialise");
        return NULL;
    }
    self = calloc (1, sizeof *self);
    if (!self) {
        curl_global_cleanup ();
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&self->cond, &attr);
    pthread_condattr_destroy (&attr);
    atomic_init (&self->stop, false);

    url = json_string_value (json_object_get (inbox->config, "imap_url"));
    user = json_string_value (json_object_get (inbox->config, "username"));
    interval = json_object_get (inbox->config, "poll_interval");
    insecure = json_object_get (inbox->config, "insecure_tls");
    if (!url) {
        snprintf (err, errlen, "no imap_url in the inbox configuration");
        goto fail;
    }
    if (!user || !*user) {
        snprintf (err, errlen, "no username in the inbox configuration");
        goto fail;
    }
    if (interval && (!json_is_integer (interval) || json_integer_value (interval) < 1 ||
                     json_integer_value (interval) > 86400)) {
        snprintf (err, errlen, "poll_interval must be whole seconds from 1 to 86400");
        goto fail;
    }
    if (insecure && !json_is_boolean (insecure)) {
        snprintf (err, errlen, "insecure_tls must be true or false");
        goto fail;
    }
    self->poll_ms = interval ? (int)json_integer_value (interval) * 1000 : 30000;
    self->insecure = insecure && json_is_true (insecure);
    if (s_parse_url (self, url, err, errlen) != 0) {
        if (!err[0])
            snprintf (err, errlen, "out of memory");
        goto fail;
    }
    self->id = strdup (inbox->id);
    self->secret = strdup (inbox->secret ? inbox->secret : "");
    self->config = json_deep_copy (inbox->config);
    self->username = strdup (user);
    self->dsn = strdup (dsn ? dsn : "");
    self->curl = curl_easy_init ();
    if (!self->id || !self->secret || !self->config || !self->username || !self->dsn ||
        !self->curl) {
        snprintf (err, errlen, "out of memory");
        goto fail;
    }
    self->box.id = self->id;
    self->box.channel = inbox->channel;
    self->box.secret = self->secret;
    self->box.previous_secret = "";
    self->box.config = self->config;
    snprintf (self->cursor_name, sizeof self->cursor_name, "imap:%s", self->id);
    self->writer = writer;
    snprintf (labels, sizeof labels, "inbox=\"%s\"", self->id);
    self->fetched = rt_metrics_counter (metrics, "retain_ingest_imap_fetched_total", labels,
                                        "E-mails read over IMAP and committed.");
    self->errors = rt_metrics_counter (metrics, "retain_ingest_imap_errors_total", labels,
                                       "IMAP and commit failures of the pollers, each retried.");
    if (!self->fetched || !self->errors) {
        snprintf (err, errlen, "out of memory");
        goto fail;
    }

    curl_easy_setopt (self->curl, CURLOPT_USERNAME, self->username);
    curl_easy_setopt (self->curl, CURLOPT_PASSWORD, self->secret);
    curl_easy_setopt (self->curl, CURLOPT_ERRORBUFFER, self->curl_err);
    curl_easy_setopt (self->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (self->curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    /* A server that stops answering mid-command or mid-message. */
    curl_easy_setopt (self->curl, CURLOPT_SERVER_RESPONSE_TIMEOUT, 30L);
    curl_easy_setopt (self->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt (self->curl, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt (self->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt (self->curl, CURLOPT_XFERINFOFUNCTION, s_progress);
    curl_easy_setopt (self->curl, CURLOPT_XFERINFODATA, self);
    curl_easy_setopt (self->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    /* imap:// upgrades with STARTTLS when the server offers it. */
    curl_easy_setopt (self->curl, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
    if (self->insecure) {
        curl_easy_setopt (self->curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt (self->curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }

    if (pthread_create (&self->thread, NULL, s_run, self) != 0) {
        snprintf (err, errlen, "cannot start a thread");
        goto fail;
    }
    return self;
fail:
    s_destroy (self);
    return NULL;
}

void
imap_poller_stop (imap_poller_t **self_p)
{
    imap_poller_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    pthread_mutex_lock (&self->lock);
    atomic_store (&self->stop, true);
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->thread, NULL);
    s_destroy (self);
    *self_p = NULL;
}
