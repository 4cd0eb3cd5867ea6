/*
 * smtp: e-mail through libcurl's smtp:// on a few threads of its own
 * (smtp.h).
 *
 * Why threads and not the worker's curl multi. The worker's requests run
 * on rt_http_client, a libcurl multi driven by its libevent loop, and that
 * client speaks http(s) alone (CURLOPT_PROTOCOLS_STR "http,https", its
 * answers are HTTP responses); an SMTP session is another protocol with
 * another result (a reply code and its enhanced code after each command,
 * not a status and a body). Rather than widen the shared client, e-mail
 * runs its sessions here: each thread takes one queued message, runs it
 * with its own easy handle to the end (curl_easy_perform; the connection
 * stays in the handle's cache for the next message to the same server),
 * puts the result on a list and wakes the loop through a pipe. The loop
 * then calls each done callback on its own thread, so the outcome is
 * recorded on the worker's PostgreSQL connection exactly as an HTTP
 * answer's is. E-mail is sent in far smaller numbers than chat messages,
 * so a few threads per worker are enough; the sessions queued or running
 * are bounded (queue_max, the worker's share of --in-flight).
 *
 * What a session said is kept from libcurl's debug callback: every reply
 * line from the server (CURLINFO_HEADER_IN), and which command it
 * answered (the commands going out, CURLINFO_HEADER_OUT, only their verb
 * looked at: AUTH's line carries the password), up to the QUIT libcurl
 * sends after a refusal, whose 221 says nothing. After DATA's 354 the
 * message is on its way, and a session that dies then, without the final
 * reply, may have been queued by the server: provider_smtp_classify calls
 * it uncertain.
 *
 * Stopping: smtp_destroy raises a flag that each session's progress
 * callback reads, so a session under way ends within a second; the
 * threads are joined, and every session not reported yet is reported
 * (cancelled, unless it had ended on its own) before the memory goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "rt_log.h"
#include "rt_signed.h"
#include "smtp.h"

typedef struct s_job_t s_job_t;

/* One session, from submit to its report. */
struct s_job_t {
    char *url;            /* owned */
    char *user;           /* owned, NULL: no login */
    char *password;       /* owned, wiped before it is freed */
    char *from;           /* owned: MAIL FROM's address */
    char *to;             /* owned: RCPT TO's */
    char *data;           /* owned: the message */
    size_t len;           /* its length */
    size_t sent;          /* bytes of it handed to libcurl */
    int64_t timeout_ms;   /* the session at most */
    smtp_done_fn done;    /* the report */
    void *arg;            /* done's */
    smtp_result_t result; /* how it ended */
    bool ended;           /* it ran to its end (not cut short) */
    bool quit;            /* QUIT went out: its 221 is not the answer kept */
    s_job_t *next;        /* the list it is on */
};

struct smtp_t {
    smtp_config_t cfg;           /* the settings (strings lent) */
    rt_signed_keys_t *keys;      /* the link's key set, NULL: no link */
    struct event_base *base;     /* the worker's loop */
    struct event *wake;          /* the pipe's read side on it */
    int pipe[2];                 /* threads write a byte per ended session */
    pthread_mutex_t lock;        /* guards the lists and counts below */
    pthread_cond_t cond;         /* a job queued, or stop */
    s_job_t *queue, *queue_tail; /* waiting for a thread */
    s_job_t *ended, *ended_tail; /* waiting for the loop */
    int pending;                 /* queued + running + ended, not reported */
    int queue_max;               /* pending at most */
    pthread_t *threads;          /* cfg.threads of them */
    int started;                 /* threads created */
    atomic_bool stop;            /* cut sessions short, end the threads */
    bool curl_init;              /* curl_global_init done */
};

static void
s_push (s_job_t **head, s_job_t **tail, s_job_t *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static s_job_t *
s_pop (s_job_t **head, s_job_t **tail)
{
    s_job_t *j = *head;
    if (j) {
        *head = j->next;
        if (!*head)
            *tail = NULL;
        j->next = NULL;
    }
    return j;
}

static void
s_job_free (s_job_t *j)
{
    if (!j)
        return;
    if (j->password) {
        memset (j->password, 0, strlen (j->password));
        free (j->password);
    }
    free (j->url);
    free (j->user);
    free (j->from);
    free (j->to);
    free (j->data);
    free (j);
}

/* --- a session, on a pool thread --- */

static size_t
s_read (char *buf, size_t size, size_t n, void *arg)
{
    s_job_t *j = arg;
    size_t room = size * n, left = j->len - j->sent;
    size_t take = left < room ? left : room;
    memcpy (buf, j->data + j->sent, take);
    j->sent += take;
    return take;
}

static int
s_progress (void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    smtp_t *self = arg;
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    return atomic_load (&self->stop) ? 1 : 0;
}

/* Which command the next reply answers, from a command line going out. */
static void
s_command (s_job_t *j, const char *line, size_t len)
{
    provider_smtp_stage_t *stage = &j->result.answer.stage;
    if (len >= 4 && strncasecmp (line, "QUIT", 4) == 0)
        j->quit = true;
    else if (len >= 4 && strncasecmp (line, "MAIL", 4) == 0)
        *stage = PROVIDER_SMTP_MAIL;
    else if (len >= 4 && strncasecmp (line, "RCPT", 4) == 0)
        *stage = PROVIDER_SMTP_RCPT;
    else if (len >= 4 && strncasecmp (line, "DATA", 4) == 0)
        *stage = PROVIDER_SMTP_DATA;
    else if (*stage != PROVIDER_SMTP_BODY)
        *stage = PROVIDER_SMTP_SESSION;
}

/* A reply line: its code and words kept when it is the reply's last. */
static void
s_reply (s_job_t *j, const char *line, size_t len)
{
    smtp_result_t *r = &j->result;
    size_t n;
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    if (j->quit || len < 3 || line[0] < '1' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
        line[2] < '0' || line[2] > '9' || (len > 3 && line[3] != ' '))
        return;
    r->answer.reply = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    n = len > 4 ? len - 4 : 0;
    if (n >= sizeof r->reply_text)
        n = sizeof r->reply_text - 1;
    memcpy (r->reply_text, line + (len > 4 ? 4 : len), n);
    r->reply_text[n] = '\0';
    /* DATA's go-ahead: from here the message is the server's to take. */
    if (r->answer.reply == 354 && r->answer.stage == PROVIDER_SMTP_DATA)
        r->answer.stage = PROVIDER_SMTP_BODY;
}

static int
s_debug (CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
    s_job_t *j = arg;
    (void)h;
    if (type != CURLINFO_HEADER_IN && type != CURLINFO_HEADER_OUT)
        return 0;
    /* One call may hold several lines. */
    while (size > 0) {
        char *nl = memchr (data, '\n', size);
        size_t len = nl ? (size_t)(nl - data) + 1 : size;
        if (type == CURLINFO_HEADER_IN)
            s_reply (j, data, len);
        else
            s_command (j, data, len);
        data += len;
        size -= len;
    }
    return 0;
}

static void
s_perform (smtp_t *self, CURL *h, s_job_t *j)
{
    struct curl_slist *rcpt = NULL;
    char from[PROVIDER_ADDR_MAX + 2], to[PROVIDER_ADDR_MAX + 2];
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode rc;
    snprintf (from, sizeof from, "<%s>", j->from);
    snprintf (to, sizeof to, "<%s>", j->to);
    rcpt = curl_slist_append (NULL, to);
    curl_easy_reset (h);
    curl_easy_setopt (h, CURLOPT_URL, j->url);
    curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (h, CURLOPT_USE_SSL,
                      self->cfg.tls_required ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_TRY);
    if (self->cfg.tls_no_verify) {
        curl_easy_setopt (h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt (h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (j->user) {
        curl_easy_setopt (h, CURLOPT_USERNAME, j->user);
        curl_easy_setopt (h, CURLOPT_PASSWORD, j->password ? j->password : "");
    }
    curl_easy_setopt (h, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt (h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt (h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt (h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)j->len);
    curl_easy_setopt (h, CURLOPT_READFUNCTION, s_read);
    curl_easy_setopt (h, CURLOPT_READDATA, j);
    curl_easy_setopt (h, CURLOPT_TIMEOUT_MS, (long)j->timeout_ms);
    curl_easy_setopt (h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt (h, CURLOPT_XFERINFOFUNCTION, s_progress);
    curl_easy_setopt (h, CURLOPT_XFERINFODATA, self);
    curl_easy_setopt (h, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt (h, CURLOPT_DEBUGFUNCTION, s_debug);
    curl_easy_setopt (h, CURLOPT_DEBUGDATA, j);
    curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
    if (!rcpt) {
        rc = CURLE_OUT_OF_MEMORY;
    } else {
        rc = curl_easy_perform (h);
    }
    curl_easy_setopt (h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt (h, CURLOPT_MAIL_RCPT, NULL);
    curl_slist_free_all (rcpt);
    j->result.answer.curl_code = (int)rc;
    snprintf (j->result.curl_error, sizeof j->result.curl_error, "%s",
              errbuf[0] ? errbuf : curl_easy_strerror (rc));
    j->ended = rc != CURLE_ABORTED_BY_CALLBACK || !atomic_load (&self->stop);
}

static void *
s_thread (void *arg)
{
    smtp_t *self = arg;
    CURL *h = curl_easy_init ();
    for (;;) {
        s_job_t *j;
        pthread_mutex_lock (&self->lock);
        while (!self->queue && !atomic_load (&self->stop))
            pthread_cond_wait (&self->cond, &self->lock);
        j = atomic_load (&self->stop) ? NULL : s_pop (&self->queue, &self->queue_tail);
        pthread_mutex_unlock (&self->lock);
        if (!j)
            break;
        if (h) {
            s_perform (self, h, j);
        } else {
            j->result.answer.curl_code = (int)CURLE_FAILED_INIT;
            snprintf (j->result.curl_error, sizeof j->result.curl_error, "no libcurl handle");
            j->ended = true;
        }
        pthread_mutex_lock (&self->lock);
        s_push (&self->ended, &self->ended_tail, j);
        pthread_mutex_unlock (&self->lock);
        /* The pipe holds far more bytes than sessions can be pending; a
         * full one still wakes the loop. */
        if (write (self->pipe[1], "x", 1) < 0 && errno != EAGAIN)
            rt_log (RT_LOG_WARN, "smtp: the loop could not be woken",
                    rt_log_str ("error", strerror (errno)));
    }
    if (h)
        curl_easy_cleanup (h);
    return NULL;
}

/* --- the loop's side --- */

static void
s_report (smtp_t *self, s_job_t *j, bool cancelled)
{
    smtp_result_t *r = &j->result;
    r->answer.curl_error = r->curl_error;
    r->answer.reply_text = r->reply_text;
    r->cancelled = cancelled;
    j->done (j->arg, r);
    self->pending--;
    s_job_free (j);
}

/* Reports what has ended. */
static void
s_drain (smtp_t *self)
{
    for (;;) {
        s_job_t *j;
        pthread_mutex_lock (&self->lock);
        j = s_pop (&self->ended, &self->ended_tail);
        pthread_mutex_unlock (&self->lock);
        if (!j)
            return;
        s_report (self, j, !j->ended);
    }
}

static void
s_on_wake (evutil_socket_t fd, short what, void *arg)
{
    char buf[256];
    (void)what;
    while (read (fd, buf, sizeof buf) > 0)
        ;
    s_drain (arg);
}

smtp_t *
smtp_new (struct event_base *base, const smtp_config_t *cfg, int queue_max, char *err,
          size_t errlen)
{
    smtp_t *self = calloc (1, sizeof *self);
    if (!self) {
        rt_errf (err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    self->base = base;
    self->queue_max = queue_max > 0 ? queue_max : 1;
    self->pipe[0] = self->pipe[1] = -1;
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->cond, NULL);
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rt_errf (err, errlen, "libcurl did not initialise");
        goto failed;
    }
    self->curl_init = true;
    if (cfg->link_keys && cfg->link_keys[0]) {
        self->keys = rt_signed_keys_parse (cfg->link_keys, err, errlen);
        if (!self->keys)
            goto failed;
    }
    if (pipe2 (self->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        rt_errf (err, errlen, "pipe: %s", strerror (errno));
        goto failed;
    }
    self->wake = event_new (base, self->pipe[0], EV_READ | EV_PERSIST, s_on_wake, self);
    self->threads = calloc ((size_t)(cfg->threads > 0 ? cfg->threads : 1), sizeof *self->threads);
    if (!self->wake || !self->threads || event_add (self->wake, NULL) != 0) {
        rt_errf (err, errlen, "out of memory");
        goto failed;
    }
    for (int i = 0; i < (cfg->threads > 0 ? cfg->threads : 1); i++) {
        if (pthread_create (&self->threads[i], NULL, s_thread, self) != 0) {
            rt_errf (err, errlen, "an SMTP thread did not start");
            goto failed;
        }
        self->started++;
    }
    return self;
failed:
    smtp_destroy (&self);
    return NULL;
}

const smtp_config_t *
smtp_config (const smtp_t *self)
{
    return &self->cfg;
}

long
smtp_link (const smtp_t *self, const char *customer_id, Retain__V1__Channel channel,
           const char *category, int64_t now_ms, char *out, size_t outlen)
{
    if (!self->keys || !self->cfg.link_base || !self->cfg.link_base[0] || !customer_id ||
        !customer_id[0])
        return 0;
    return provider_unsubscribe_link (self->keys, self->cfg.link_base, customer_id, channel,
                                      category, (now_ms + self->cfg.link_ttl_ms) / 1000, out,
                                      outlen);
}

static char *
s_dup (const char *s, bool *failed)
{
    char *d;
    if (!s || !s[0])
        return NULL;
    d = strdup (s);
    if (!d)
        *failed = true;
    return d;
}

int
smtp_submit (smtp_t *self, const smtp_job_t *job, smtp_done_fn done, void *arg, char *err,
             size_t errlen)
{
    bool failed = false;
    s_job_t *j;
    if (self->pending >= self->queue_max) {
        rt_errf (err, errlen, "%d e-mails in flight already", self->pending);
        return -1;
    }
    j = calloc (1, sizeof *j);
    if (!j) {
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    j->url = s_dup (job->url, &failed);
    j->user = s_dup (job->user, &failed);
    j->password = s_dup (job->password, &failed);
    j->from = s_dup (job->from, &failed);
    j->to = s_dup (job->to, &failed);
    j->data = malloc (job->len ? job->len : 1);
    if (failed || !j->url || !j->from || !j->to || !j->data) {
        s_job_free (j);
        rt_errf (err, errlen, "out of memory");
        return -1;
    }
    memcpy (j->data, job->data, job->len);
    j->len = job->len;
    j->timeout_ms = job->timeout_ms;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock (&self->lock);
    s_push (&self->queue, &self->queue_tail, j);
    self->pending++;
    pthread_cond_signal (&self->cond);
    pthread_mutex_unlock (&self->lock);
    return 0;
}

void
smtp_destroy (smtp_t **self_p)
{
    smtp_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    pthread_mutex_lock (&self->lock);
    atomic_store (&self->stop, true);
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->lock);
    for (int i = 0; i < self->started; i++)
        pthread_join (self->threads[i], NULL);
    /* Sessions that ended are recorded; the rest never left or were cut
     * short, and their sends stay `sending` for the crash policy. */
    s_drain (self);
    for (s_job_t *j = s_pop (&self->queue, &self->queue_tail); j;
         j = s_pop (&self->queue, &self->queue_tail))
        s_report (self, j, true);
    if (self->wake)
        event_free (self->wake);
    if (self->pipe[0] >= 0)
        close (self->pipe[0]);
    if (self->pipe[1] >= 0)
        close (self->pipe[1]);
    free (self->threads);
    rt_signed_keys_destroy (&self->keys);
    pthread_cond_destroy (&self->cond);
    pthread_mutex_destroy (&self->lock);
    if (self->curl_init)
        curl_global_cleanup ();
    free (self);
    *self_p = NULL;
}
