/*
 * retain-notifyd sending e-mail to a real SMTP server: Debian's Exim
 * (exim4-daemon-light), started here on a free loopback port with a
 * throw-away configuration, STARTTLS with a certificate made here by the
 * openssl command (notifyd told not to verify it: tests only), and every
 * message delivered to an mbox the test reads as a mail reader would.
 *
 * What a customer would notice: a NotificationRequested on the e-mail
 * channel arrives once, from the shop's name and address, to theirs, with
 * the Cyrillic subject decoded back exactly, a text part and an HTML part
 * (a variable holding "<b>" & co. escaped in the HTML and left as it is
 * in the text), a Message-ID naming the notification, List-Unsubscribe
 * with the https one-click link (its token verifying as this customer's
 * e-mail consent to that category) and the mailto, and
 * List-Unsubscribe-Post; it went over TLS (Exim's "esmtps"). The send is
 * delivered and MessageDelivered says so. An address the server rejects
 * (550 5.1.1 at RCPT) fails with MessageFailed, permanent, with the code;
 * nothing is delivered. With the server down, the message waits and is
 * retried (transient), and arrives once when the server is back.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "rt_bus.h"
#include "rt_codec.h"
#include "rt_db.h"
#include "rt_outbox.h"
#include "rt_signed.h"
#include "rt_test.h"
#include "rt_test_router.h"
#include "rt_utf8.h"
#include "rt_uuid.h"
#include "retain/v1/message.pb-c.h"
#include "retain/v1/notification.pb-c.h"

#define S_KEYS     "k1:0123456789abcdef0123456789abcdef"
#define S_SENDER   "Крамниця «Ромашка» <shop@shop.example>"
#define S_SUBJECT  "Олена, ваше замовлення №1042 вже в дорозі"
#define S_REJECTED "nobody-here@example.com"
#define S_WAIT_MS  30000

static rt_test_router_t s_t;
static rt_test_busd_t s_busd;
static rt_db_t *s_db; /* publishes through the outbox */
static pid_t s_notifyd;
static int s_admin;

/* --- Exim -------------------------------------------------------------- */

typedef struct {
    pid_t pid;      /* the daemon, 0 when not running */
    int port;       /* its SMTP port */
    char dir[512];  /* configuration, spool, log, mail */
    char conf[600]; /* exim.conf */
    char mbox[600]; /* where every message is delivered */
} s_exim_t;

static s_exim_t s_exim;

static const char *
s_exim_bin (void)
{
    static const char *const paths[] = {"/usr/sbin/exim4", "/usr/sbin/exim", NULL};
    for (size_t i = 0; paths[i]; i++) {
        if (access (paths[i], X_OK) == 0)
            return paths[i];
    }
    fail_msg ("exim is not installed: run deploy/deps --test (exim4-daemon-light)");
    return NULL;
}

static void
s_write_file (const char *path, const char *text)
{
    FILE *f = fopen (path, "w");
    if (!f)
        fail_msg ("cannot write %s: %s", path, strerror (errno));
    fputs (text, f);
    fclose (f);
}

/* Lets another user pass through dir (not read it): Exim's own user
 * reaches its spool under the test's folder. */
static void
s_traversable (const char *dir)
{
    struct stat st;
    if (stat (dir, &st) == 0 && st.st_uid == geteuid ())
        chmod (dir, (st.st_mode & 07777) | 0011);
}

/* A configuration that runs as root (Exim's receiving processes and the
 * delivery as Debian-exim: Exim never delivers as root) and as an ordinary
 * user (everything as that user, Exim having dropped its privilege for
 * -C). Every recipient is accepted and delivered to one mbox, but
 * S_REJECTED, refused at RCPT with 550 5.1.1. */
static void
s_exim_configure (s_exim_t *e)
{
    char path[700], cmd[2048], conf[4096], user[64], group[64];
    struct passwd *pw;
    struct group *gr;
    e->port = rt_test_free_port ();
    s_traversable (rt_test_dir ());
    {
        char parent[512];
        snprintf (parent, sizeof parent, "%s", rt_test_dir ());
        *strrchr (parent, '/') = '\0';
        s_traversable (parent);
    }
    snprintf (e->dir, sizeof e->dir, "%s/exim-XXXXXX", rt_test_dir ());
    if (!mkdtemp (e->dir))
        fail_msg ("mkdtemp: %s", strerror (errno));
    chmod (e->dir, 0755);
    snprintf (path, sizeof path, "%s/spool", e->dir);
    mkdir (path, 0750);
    snprintf (path, sizeof path, "%s/log", e->dir);
    mkdir (path, 0755);
    snprintf (path, sizeof path, "%s/mail", e->dir);
    mkdir (path, 0755);
    snprintf (e->mbox, sizeof e->mbox, "%s/mail/mbox", e->dir);
    /* The server's certificate, self-signed, made for this run. */
    snprintf (cmd, sizeof cmd,
              "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost"
              " -keyout '%s/key.pem' -out '%s/cert.pem' >'%s/openssl.log' 2>&1",
              e->dir, e->dir, e->dir);
    if (system (cmd) != 0)
        fail_msg ("openssl could not make a certificate; see %s/openssl.log", e->dir);
    pw = geteuid () == 0 ? getpwnam ("Debian-exim") : getpwuid (geteuid ());
    if (!pw)
        fail_msg ("user Debian-exim is needed (exim4-daemon-light creates it)");
    snprintf (user, sizeof user, "%s", pw->pw_name);
    gr = getgrgid (pw->pw_gid);
    if (!gr)
        fail_msg ("no group %u", (unsigned)pw->pw_gid);
    snprintf (group, sizeof group, "%s", gr->gr_name);
    if (geteuid () == 0) {
        const char *const sub[] = {"", "/spool", "/log", "/mail", "/key.pem", "/cert.pem", NULL};
        for (size_t i = 0; sub[i]; i++) {
            snprintf (path, sizeof path, "%s%s", e->dir, sub[i]);
            if (chown (path, pw->pw_uid, pw->pw_gid) != 0)
                fail_msg ("chown %s: %s", path, strerror (errno));
        }
    }
    snprintf (conf, sizeof conf,
              "primary_hostname = mail.test\n"
              "qualify_domain = mail.test\n"
              "spool_directory = %s/spool\n"
              "log_file_path = %s/log/%%slog\n"
              "pid_file_path = %s/exim.pid\n"
              "exim_user = %s\n"
              "exim_group = %s\n"
              "daemon_smtp_ports = %d\n"
              "local_interfaces = 127.0.0.1\n"
              "tls_advertise_hosts = *\n"
              "tls_certificate = %s/cert.pem\n"
              "tls_privatekey = %s/key.pem\n"
              "acl_smtp_rcpt = acl_rcpt\n"
              "keep_environment =\n"
              "host_lookup =\n"
              "rfc1413_hosts =\n"
              "begin acl\n"
              "acl_rcpt:\n"
              "  deny recipients = " S_REJECTED "\n"
              "       message = 5.1.1 <$local_part@$domain>: no such user here\n"
              "  accept\n"
              "begin routers\n"
              "all:\n"
              "  driver = accept\n"
              "  transport = mbox\n"
              "begin transports\n"
              "mbox:\n"
              "  driver = appendfile\n"
              "  file = %s\n"
              "  user = %s\n"
              "  group = %s\n"
              "  mode = 0644\n"
              "begin retry\n"
              "* * F,1m,1m\n",
              e->dir, e->dir, e->dir, user, group, e->port, e->dir, e->dir, e->mbox, user, group);
    snprintf (e->conf, sizeof e->conf, "%s/exim.conf", e->dir);
    s_write_file (e->conf, conf);
}

/* Whether something answers on port (a connection and nothing said). */
static bool
s_listening (int port)
{
    char url[64];
    CURL *c = curl_easy_init ();
    CURLcode rc;
    snprintf (url, sizeof url, "telnet://127.0.0.1:%d", port);
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT_MS, 500L);
    rc = curl_easy_perform (c);
    curl_easy_cleanup (c);
    return rc == CURLE_OK;
}

static void
s_exim_start (s_exim_t *e, const char *log)
{
    char *argv[] = {"exim4", "-C", e->conf, "-bdf", "-odi", NULL};
    int64_t deadline = rt_test_now_ms () + 20000;
    e->pid = rt_test_spawn (s_exim_bin (), argv, NULL, log);
    while (!s_listening (e->port)) {
        if (rt_test_now_ms () > deadline)
            fail_msg ("exim did not listen on port %d; see %s/%s and %s/log", e->port,
                      rt_test_dir (), log, e->dir);
        usleep (100000);
    }
}

/* The server gone at once: the daemon and the sessions it forked (a
 * session notifyd keeps open for its next message among them), all with
 * SIGKILL. */
static void
s_exim_stop (s_exim_t *e)
{
    DIR *proc;
    struct dirent *d;
    if (e->pid <= 0)
        return;
    kill (e->pid, SIGSTOP); /* no new sessions while we look */
    proc = opendir ("/proc");
    while (proc && (d = readdir (proc)) != NULL) {
        char path[300], stat[512];
        FILE *f;
        int pid = atoi (d->d_name), ppid = 0;
        const char *close;
        if (pid <= 0)
            continue;
        snprintf (path, sizeof path, "/proc/%d/stat", pid);
        f = fopen (path, "r");
        if (!f)
            continue;
        if (fgets (stat, sizeof stat, f)) {
            /* "pid (comm) state ppid ...": comm may hold spaces */
            close = strrchr (stat, ')');
            if (close)
                sscanf (close + 1, " %*c %d", &ppid);
        }
        fclose (f);
        if (ppid == e->pid)
            kill (pid, SIGKILL);
    }
    if (proc)
        closedir (proc);
    rt_test_kill (e->pid, SIGKILL);
    e->pid = 0;
}

/* --- the mbox ---------------------------------------------------------- */

/* The message holding "Message-ID: <id@shop.example>" (owned, LF line
 * ends as the mbox keeps them), NULL when none; how many hold it into *n. */
static char *
s_mail_find (const char *id, int *n)
{
    size_t len = 0;
    char *box = rt_test_file_read (s_exim.mbox, &len), *found = NULL;
    char needle[128];
    *n = 0;
    if (!box)
        return NULL;
    snprintf (needle, sizeof needle, "\nMessage-ID: <%s@shop.example>\n", id);
    for (char *p = box; p && *p;) {
        /* Messages start at "From " lines (mboxo: a body's own are ">From "). */
        char *next = strstr (p + 1, "\n\nFrom ");
        size_t mlen = next ? (size_t)(next - p) + 1 : strlen (p);
        char *hit = strstr (p, needle);
        if (hit && hit < p + mlen) {
            (*n)++;
            if (!found)
                found = strndup (p, mlen);
        }
        p = next ? next + 2 : NULL;
    }
    free (box);
    return found;
}

static char *
s_mail_wait (const char *id)
{
    int64_t until = rt_test_now_ms () + S_WAIT_MS;
    int n;
    do {
        char *m = s_mail_find (id, &n);
        if (m)
            return m;
        usleep (50 * 1000);
    } while (rt_test_now_ms () < until);
    fail_msg ("no e-mail with Message-ID <%s@shop.example> in %s", id, s_exim.mbox);
    return NULL;
}

/* Header name's value, unfolded, into out; false when absent. */
static bool
s_header (const char *msg, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen (name), o = 0;
    const char *end = strstr (msg, "\n\n");
    for (const char *p = strchr (msg, '\n') + 1; p && p < end; p = strchr (p, '\n') + 1) {
        if (strncasecmp (p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            for (; v < end && o + 1 < outlen; v++) {
                if (*v == '\n' && (v[1] == ' ' || v[1] == '\t')) {
                    continue;
                }
                if (*v == '\n')
                    break;
                out[o++] = *v;
            }
            out[o] = '\0';
            return true;
        }
    }
    return false;
}

/* RFC 2047 B words (UTF-8) decoded, white space between words dropped. */
static void
s_decode_words (const char *v, char *out, size_t outlen)
{
    size_t o = 0;
    bool last_word = false;
    while (*v) {
        if (strncmp (v, "=?UTF-8?B?", 10) == 0) {
            const char *end = strstr (v + 10, "?=");
            long n;
            assert_non_null (end);
            n = rt_base64_decode (v + 10, (size_t)(end - v - 10), (uint8_t *)out + o,
                                  outlen - o - 1);
            assert_true (n > 0);
            o += (size_t)n;
            v = end + 2;
            last_word = true;
            continue;
        }
        if (*v == ' ' && last_word) {
            const char *q = v;
            while (*q == ' ')
                q++;
            if (strncmp (q, "=?", 2) == 0) {
                v = q;
                continue;
            }
        }
        last_word = false;
        assert_true (o + 1 < outlen);
        out[o++] = *v++;
    }
    out[o] = '\0';
}

/* The part of content type `type` in msg, its base64 decoded, into out. */
static void
s_part (const char *msg, const char *type, char *out, size_t outlen)
{
    char needle[128];
    const char *p;
    size_t o = 0;
    snprintf (needle, sizeof needle, "\nContent-Type: %s; charset=UTF-8\n", type);
    p = strstr (msg, needle);
    if (!p)
        fail_msg ("no %s part in:\n%s", type, msg);
    assert_non_null (strstr (p, "Content-Transfer-Encoding: base64\n"));
    p = strstr (p, "\n\n");
    assert_non_null (p);
    for (p += 2; *p && *p != '-' && *p != '\n';) {
        const char *nl = strchr (p, '\n');
        long n;
        assert_non_null (nl);
        n = rt_base64_decode (p, (size_t)(nl - p), (uint8_t *)out + o, outlen - o - 1);
        assert_true (n > 0);
        o += (size_t)n;
        p = nl + 1;
    }
    out[o] = '\0';
}

/* --- the bus ----------------------------------------------------------- */

typedef struct {
    int delivered;   /* MessageDelivered events */
    int failed;      /* MessageFailed events */
    bool permanent;  /* the last MessageFailed's */
    char code[64];   /* its error_code */
    char error[512]; /* its error */
} s_said_t;

static void
s_said (const char *message_id, s_said_t *out)
{
    PGresult *r = PQexecParams (s_t.pg,
                                "SELECT type, payload FROM bus.events WHERE producer = "
                                "'retain-notifyd' AND type IN ('MessageDelivered', "
                                "'MessageFailed') ORDER BY seq",
                                0, NULL, NULL, NULL, NULL, 1);
    assert_int_equal (PQresultStatus (r), PGRES_TUPLES_OK);
    memset (out, 0, sizeof *out);
    for (int i = 0; i < PQntuples (r); i++) {
        const uint8_t *data = (const uint8_t *)PQgetvalue (r, i, 1);
        size_t len = (size_t)PQgetlength (r, i, 1);
        if (strcmp (PQgetvalue (r, i, 0), "MessageDelivered") == 0) {
            Retain__V1__MessageDelivered *d =
                retain__v1__message_delivered__unpack (NULL, len, data);
            assert_non_null (d);
            out->delivered += strcmp (d->message_id, message_id) == 0;
            retain__v1__message_delivered__free_unpacked (d, NULL);
        } else {
            Retain__V1__MessageFailed *f = retain__v1__message_failed__unpack (NULL, len, data);
            assert_non_null (f);
            if (strcmp (f->message_id, message_id) == 0) {
                out->failed++;
                out->permanent = f->permanent;
                snprintf (out->code, sizeof out->code, "%s", f->error_code);
                snprintf (out->error, sizeof out->error, "%s", f->error);
            }
            retain__v1__message_failed__free_unpacked (f, NULL);
        }
    }
    PQclear (r);
}

static void
s_said_wait (const char *message_id, s_said_t *out)
{
    int64_t until = rt_test_now_ms () + S_WAIT_MS;
    do {
        s_said (message_id, out);
        if (out->delivered || out->failed)
            return;
        usleep (50 * 1000);
    } while (rt_test_now_ms () < until);
}

static void
s_publish (const char *type, const char *key, const ProtobufCMessage *payload)
{
    Retain__V1__Envelope *env = rt_envelope_new (type, key, payload, "retain-loyaltyd");
    ProtobufCBinaryData packed;
    assert_non_null (env);
    packed.data = rt_envelope_pack (env, &packed.len);
    assert_non_null (packed.data);
    rt_envelope_free (env);
    if (rt_db_begin (s_db) != 0 || rt_outbox_append_batch (s_db, &packed, 1) != 0 ||
        rt_db_commit (s_db) != 0) {
        char why[512];
        snprintf (why, sizeof why, "%s", rt_db_error (s_db));
        rt_db_rollback (s_db);
        fail_msg ("publishing: %s", why);
    }
    free (packed.data);
}

/* Asks for the "shipped" e-mail to customer about order; its id into id. */
static void
s_notify (const char *customer, const char *order, char id[RT_UUID_STR_LEN + 1])
{
    Retain__V1__NotificationRequested m = RETAIN__V1__NOTIFICATION_REQUESTED__INIT;
    Retain__V1__NotificationRequested__VariablesEntry e =
        RETAIN__V1__NOTIFICATION_REQUESTED__VARIABLES_ENTRY__INIT;
    Retain__V1__NotificationRequested__VariablesEntry *ptrs[1] = {&e};
    rt_test_router_uuid (id);
    e.key = "order";
    e.value = (char *)order;
    m.notification_id = id;
    m.customer_id = (char *)customer;
    m.template_ = "shipped";
    m.n_variables = 1;
    m.variables = ptrs;
    m.preferred_channel = RETAIN__V1__CHANNEL__EMAIL;
    m.category = "transactional";
    m.correlation = "";
    s_publish ("NotificationRequested", customer, &m.base);
}

/* A customer named Олена (uk) who wrote to the shop from address. */
static void
s_customer (char id[RT_UUID_STR_LEN + 1], const char *address)
{
    rt_test_router_uuid (id);
    rt_test_router_sql (
        s_t.pg, "INSERT INTO crm.customers (id, name, locale) VALUES ('%s', 'Олена', 'uk')", id);
    rt_test_router_sql (s_t.pg,
                        "INSERT INTO crm.identities (channel, inbox, external_user_id,"
                        " customer_id, first_seen, last_seen) VALUES ('email', 'mail', '%s', '%s',"
                        " now() - interval '1 day', now() - interval '1 day')",
                        address, id);
}

static long long
s_status_wait (const char *send_id, const char *status)
{
    char sql[256];
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.sends WHERE id = '%s' AND status = '%s'", send_id,
              status);
    return rt_test_pg_wait_long (s_t.pg, sql, 1, S_WAIT_MS);
}

/* --- the world --------------------------------------------------------- */

static void
s_notifyd_start (void)
{
    char a_dsn[1100], a_pub[96], a_admin[64], a_url[64];
    char *argv[] = {"retain-notifyd",
                    a_dsn,
                    a_pub,
                    a_admin,
                    a_url,
                    "--member=n1",
                    "--smtp-tls=required",
                    "--smtp-tls-no-verify-tests-only",
                    "--link-base=https://shop.example/u/",
                    "--link-keys=" S_KEYS,
                    "--unsubscribe-mail=unsubscribe@shop.example",
                    "--fallback-chain=email",
                    "--request-timeout=3s",
                    "--backoff=100ms",
                    "--backoff-max=300ms",
                    "--retry-max=100",
                    "--poll=20ms",
                    "--sweep=200ms",
                    NULL};
    s_admin = rt_test_free_port ();
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", s_t.dsn);
    snprintf (a_pub, sizeof a_pub, "--pub=%s", s_busd.pub);
    snprintf (a_admin, sizeof a_admin, "--admin=127.0.0.1:%d", s_admin);
    snprintf (a_url, sizeof a_url, "--smtp-url=smtp://127.0.0.1:%d", s_exim.port);
    s_notifyd = rt_test_spawn ("retain-notifyd", argv, NULL, "notifyd-email.log");
    if (!rt_test_wait_ready (s_admin, 60000))
        fail_msg ("retain-notifyd did not become ready; see %s/notifyd-email.log", rt_test_dir ());
}

static void
s_template (void)
{
    rt_test_router_sql (
        s_t.pg, "INSERT INTO notify.templates (name, locale, variant, subject, text, html) VALUES"
                " ('shipped', 'uk', 'email', '{{name}}, ваше замовлення №{{order}} вже в дорозі',"
                "  E'{{name}}, замовлення №{{order}} передано перевізнику.\\nДякуємо!',"
                "  '<p>{{name}}, замовлення <b>№{{order}}</b> передано перевізнику.</p>')");
}

static int
s_setup (void **state)
{
    rt_test_router_opts_t opts = {.routing = false};
    (void)state;
    s_exim_configure (&s_exim);
    s_exim_start (&s_exim, "exim.log");
    rt_test_router_open (&s_t, "notify_email", &opts);
    rt_test_busd_start (&s_busd, s_t.dsn, "busd-email.log", NULL, true);
    s_db = rt_test_router_connect (&s_t, "test-publisher");
    s_notifyd_start ();
    rt_test_router_sql (s_t.pg,
                        "INSERT INTO notify.accounts (id, inbox_id, channel, provider, sender)"
                        " VALUES ('mail-main', 'mail', 'email', 'smtp', '" S_SENDER "')");
    s_template ();
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    if (s_notifyd > 0)
        rt_test_stop (s_notifyd, "retain-notifyd");
    rt_test_stop (s_busd.pid, "retain-busd");
    rt_db_destroy (&s_db);
    rt_test_router_close (&s_t);
    s_exim_stop (&s_exim);
    return 0;
}

/* --- the tests --------------------------------------------------------- */

static void
test_delivered (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], v[2048], text[2048];
    char err[256];
    char *msg;
    int n;
    s_said_t said;
    rt_signed_keys_t *keys;
    rt_signed_unsubscribe_t u;
    (void)state;
    s_customer (customer, "olena@example.com");
    s_notify (customer, "1042", id);
    msg = s_mail_wait (id);

    assert_true (s_header (msg, "From", v, sizeof v));
    s_decode_words (v, text, sizeof text);
    assert_string_equal (text, S_SENDER);
    assert_true (s_header (msg, "To", v, sizeof v));
    assert_string_equal (v, "olena@example.com");
    assert_true (s_header (msg, "Subject", v, sizeof v));
    s_decode_words (v, text, sizeof text);
    assert_string_equal (text, S_SUBJECT);
    assert_true (s_header (msg, "Date", v, sizeof v));
    assert_true (s_header (msg, "MIME-Version", v, sizeof v));
    assert_string_equal (v, "1.0");
    /* Over TLS: Exim says "esmtps" for a session after STARTTLS. */
    assert_true (s_header (msg, "Received", v, sizeof v));
    if (!strstr (v, "esmtps"))
        fail_msg ("not received over TLS: %s", v);

    assert_true (s_header (msg, "List-Unsubscribe", v, sizeof v));
    if (strncmp (v, "<https://shop.example/u/", 24) != 0 ||
        !strstr (v, ">, <mailto:unsubscribe@shop.example?subject=unsubscribe>"))
        fail_msg ("List-Unsubscribe: %s", v);
    *strchr (v, '>') = '\0';
    keys = rt_signed_keys_parse (S_KEYS, err, sizeof err);
    assert_non_null (keys);
    assert_int_equal (rt_signed_unsubscribe_read (keys, v + 24, time (NULL), &u), RT_SIGNED_OK);
    assert_string_equal (u.customer_id, customer);
    assert_int_equal (u.channel, RETAIN__V1__CHANNEL__EMAIL);
    assert_string_equal (u.category, "transactional");
    rt_signed_keys_destroy (&keys);
    assert_true (s_header (msg, "List-Unsubscribe-Post", v, sizeof v));
    assert_string_equal (v, "List-Unsubscribe=One-Click");

    assert_true (s_header (msg, "Content-Type", v, sizeof v));
    assert_int_equal (strncmp (v, "multipart/alternative;", 22), 0);
    s_part (msg, "text/plain", text, sizeof text);
    assert_string_equal (text, "Олена, замовлення №1042 передано перевізнику.\r\nДякуємо!");
    s_part (msg, "text/html", text, sizeof text);
    assert_string_equal (text, "<p>Олена, замовлення <b>№1042</b> передано перевізнику.</p>");
    free (msg);

    assert_int_equal (s_status_wait (id, "delivered"), 1);
    s_said_wait (id, &said);
    assert_int_equal (said.delivered, 1);
    assert_int_equal (said.failed, 0);
    assert_int_equal (rt_test_router_long (s_t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE id = '%s'"
                                           " AND external_id = '%s@shop.example'",
                                           id, id),
                      1);

    /* A variable holding markup: escaped in the HTML, as it is in the text
     * and the subject. */
    s_notify (customer, "7 <b>&</b>", id);
    msg = s_mail_wait (id);
    s_part (msg, "text/html", text, sizeof text);
    assert_string_equal (
        text, "<p>Олена, замовлення <b>№7 &lt;b&gt;&amp;&lt;/b&gt;</b> передано перевізнику.</p>");
    s_part (msg, "text/plain", text, sizeof text);
    assert_string_equal (text, "Олена, замовлення №7 <b>&</b> передано перевізнику.\r\nДякуємо!");
    assert_true (s_header (msg, "Subject", v, sizeof v));
    s_decode_words (v, text, sizeof text);
    assert_string_equal (text, "Олена, ваше замовлення №7 <b>&</b> вже в дорозі");
    free (msg);
    assert_int_equal (s_status_wait (id, "delivered"), 1);
    free (s_mail_find (id, &n));
    assert_int_equal (n, 1);
}

static void
test_rejected_recipient (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1];
    s_said_t said;
    int n;
    char *msg;
    (void)state;
    s_customer (customer, S_REJECTED);
    s_notify (customer, "1043", id);
    s_said_wait (id, &said);
    assert_int_equal (said.failed, 1);
    assert_true (said.permanent);
    assert_string_equal (said.code, "550 5.1.1");
    if (!strstr (said.error, "no such user here"))
        fail_msg ("MessageFailed's error: %s", said.error);
    assert_int_equal (said.delivered, 0);
    assert_int_equal (rt_test_router_long (s_t.pg,
                                           "SELECT count(*) FROM notify.sends WHERE id = '%s'"
                                           " AND status = 'failed' AND last_verdict ="
                                           " 'stop_recipient' AND attempts = 1",
                                           id),
                      1);
    msg = s_mail_find (id, &n);
    assert_null (msg);
}

static void
test_server_down (void **state)
{
    char customer[RT_UUID_STR_LEN + 1], id[RT_UUID_STR_LEN + 1], sql[256];
    s_said_t said;
    int n;
    char *msg;
    (void)state;
    s_exim_stop (&s_exim);
    s_customer (customer, "taras@example.com");
    s_notify (customer, "1044", id);
    /* Refused connections: transient, retried with backoff. */
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM notify.sends WHERE id = '%s' AND failures >= 2"
              " AND last_verdict = 'retry' AND last_code = 'curl 7'",
              id);
    assert_int_equal (rt_test_pg_wait_long (s_t.pg, sql, 1, S_WAIT_MS), 1);
    s_said (id, &said);
    assert_int_equal (said.failed, 0);
    s_exim_start (&s_exim, "exim-again.log");
    msg = s_mail_wait (id);
    free (msg);
    assert_int_equal (s_status_wait (id, "delivered"), 1);
    s_said_wait (id, &said);
    assert_int_equal (said.delivered, 1);
    assert_int_equal (said.failed, 0);
    usleep (500 * 1000);
    free (s_mail_find (id, &n));
    assert_int_equal (n, 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_delivered),
        cmocka_unit_test (test_rejected_recipient),
        cmocka_unit_test (test_server_down),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
