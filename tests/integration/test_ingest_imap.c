/*
 * retain-ingestd polling a real IMAP server (Debian's Dovecot, started
 * here on a free port with a throw-away configuration and maildir).
 *
 * Messages are appended over IMAP, as a mail server would deliver them:
 * plain, multipart with an attachment, Cyrillic subjects in UTF-8 and
 * KOI8-R, a reply in a thread, one without a Message-ID. They must come
 * out on the bus as InboundMessages with the decoded subject, the reply's
 * quote stripped and its thread id. Then ingestd is SIGKILLed in the
 * middle of a burst, more mail arrives while it is down, and after a
 * restart every message is on the bus exactly once and was read exactly
 * once (one raw copy each in ingest.raw): nothing twice, nothing skipped.
 * Last, Dovecot goes away: the poller counts errors and backs off, and
 * when Dovecot is back the mail that arrived meanwhile comes in.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "rt_test.h"
#include "rt_test_ingest.h"

#define USER     "support-test"
#define PASSWORD "imap-s3cret"
#define BURST    60 /* messages appended before the kill */
#define LATE     10 /* appended while ingestd is down */
#define OUTAGE   5  /* appended while Dovecot was down */

typedef struct {
    pid_t pid;      /* the dovecot master, 0 when not running */
    int port;       /* its IMAP port */
    char dir[512];  /* configuration, runtime and mail */
    char conf[600]; /* dovecot.conf */
} s_dovecot_t;

/* What the teardown must stop if a test fails midway. */
static s_dovecot_t s_dove;
static rt_test_ingest_t s_t;

/* --- Dovecot -------------------------------------------------------- */

static const char *const s_dovecot_paths[] = {"/usr/sbin/dovecot", "/usr/local/sbin/dovecot", NULL};

/* A configuration that runs as root (the packaged unprivileged users for
 * Dovecot's own processes, mail owned by "nobody", since Dovecot refuses
 * mail access as root) and as an ordinary user (everything as that user). */
static void
s_dovecot_configure (s_dovecot_t *d)
{
    char path[700], conf[4096], internal[64], group[64], login[64];
    unsigned mail_uid, mail_gid;
    d->port = rt_test_free_port ();
    snprintf (d->dir, sizeof d->dir, "%s/dovecot-XXXXXX", rt_test_dir ());
    if (!mkdtemp (d->dir))
        fail_msg ("mkdtemp: %s", strerror (errno));
    /* Dovecot's unprivileged processes read the password file here. */
    chmod (d->dir, 0755);
    snprintf (path, sizeof path, "%s/run", d->dir);
    mkdir (path, 0755);
    snprintf (path, sizeof path, "%s/state", d->dir);
    mkdir (path, 0755);
    snprintf (path, sizeof path, "%s/mail", d->dir);
    mkdir (path, 0755);
    if (geteuid () == 0) {
        /* getpwnam's answer is overwritten by the next call: copy first. */
        struct passwd *nobody = getpwnam ("nobody");
        if (!nobody)
            fail_msg ("user nobody is needed to own the test mail");
        mail_uid = nobody->pw_uid;
        mail_gid = nobody->pw_gid;
        if (!getpwnam ("dovecot") || !getpwnam ("dovenull"))
            fail_msg ("users dovecot and dovenull are needed (dovecot-imapd creates them)");
        snprintf (internal, sizeof internal, "dovecot");
        snprintf (group, sizeof group, "dovecot");
        snprintf (login, sizeof login, "dovenull");
        if (chown (path, mail_uid, mail_gid) != 0)
            fail_msg ("chown %s: %s", path, strerror (errno));
    } else {
        struct passwd *me = getpwuid (getuid ());
        struct group *gr = getgrgid (getgid ());
        if (!me || !gr)
            fail_msg ("who am I?");
        /* Unprivileged, Dovecot can only chown its sockets to our group. */
        snprintf (group, sizeof group, "%s", gr->gr_name);
        snprintf (internal, sizeof internal, "%s", me->pw_name);
        snprintf (login, sizeof login, "%s", me->pw_name);
        mail_uid = getuid ();
        mail_gid = getgid ();
    }
    snprintf (path, sizeof path, "%s/passwd", d->dir);
    rt_test_file_write (path, USER ":{PLAIN}" PASSWORD "\n");
    chmod (path, 0644);
    snprintf (conf, sizeof conf,
              "protocols = imap\n"
              "listen = 127.0.0.1\n"
              "base_dir = %s/run\n"
              "state_dir = %s/state\n"
              "instance_name = retain-test-%d\n"
              "log_path = /dev/stderr\n"
              "ssl = no\n"
              "disable_plaintext_auth = no\n"
              "auth_mechanisms = plain login\n"
              "default_internal_user = %s\n"
              "default_internal_group = %s\n"
              "default_login_user = %s\n"
              "passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%%u "
              "%s/passwd\n}\n"
              "userdb {\n  driver = static\n  args = uid=%u gid=%u home=%s/mail/%%u\n}\n"
              "mail_location = maildir:~/Maildir\n"
              "service imap-login {\n  chroot =\n"
              "  inet_listener imap {\n    port = %d\n  }\n"
              "  inet_listener imaps {\n    port = 0\n  }\n}\n"
              "service anvil {\n  chroot =\n}\n",
              d->dir, d->dir, (int)getpid (), internal, group, login, d->dir, mail_uid, mail_gid,
              d->dir, d->port);
    snprintf (d->conf, sizeof d->conf, "%s/dovecot.conf", d->dir);
    rt_test_file_write (d->conf, conf);
}

/* EXAMINE INBOX; the UIDVALIDITY, 0 when the server does not answer. */
static unsigned long long
s_uidvalidity (int port)
{
    CURL *c = curl_easy_init ();
    char url[128];
    rt_test_reply_t reply;
    const char *p;
    unsigned long long v = 0;
    snprintf (url, sizeof url, "imap://127.0.0.1:%d/INBOX", port);
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_USERNAME, USER);
    curl_easy_setopt (c, CURLOPT_PASSWORD, PASSWORD);
    curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, "EXAMINE INBOX");
    memset (&reply, 0, sizeof reply);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, rt_test_reply_write);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt (c, CURLOPT_TIMEOUT, 5L);
    if (curl_easy_perform (c) == CURLE_OK) {
        p = strstr (reply.body, "[UIDVALIDITY ");
        if (p)
            v = strtoull (p + 13, NULL, 10);
    }
    curl_easy_cleanup (c);
    return v;
}

static unsigned long long
s_dovecot_start (s_dovecot_t *d, const char *log)
{
    char *argv[] = {"dovecot", "-F", "-c", d->conf, NULL};
    int64_t deadline = rt_test_now_ms () + 20000;
    unsigned long long uidvalidity = 0;
    d->pid = rt_test_spawn (rt_test_program (s_dovecot_paths, "dovecot", "dovecot-imapd"), argv,
                            NULL, log);
    while (uidvalidity == 0 && rt_test_now_ms () < deadline) {
        usleep (100000);
        uidvalidity = s_uidvalidity (d->port);
    }
    if (uidvalidity == 0)
        fail_msg ("dovecot did not answer on port %d; see %s/%s", d->port, rt_test_dir (), log);
    return uidvalidity;
}

/* An abrupt outage: the master and every process it started get SIGKILL
 * (a SIGTERM lets sessions linger while the master shuts down, still
 * serving the poller's open connection). */
static void
s_dovecot_stop (s_dovecot_t *d)
{
    if (d->pid <= 0)
        return;
    rt_test_kill_tree (d->pid);
    d->pid = 0;
}

/* --- appending mail over IMAP ---------------------------------------- */

typedef struct {
    const char *data; /* the message */
    size_t len;       /* its size */
    size_t pos;       /* bytes sent */
} s_upload_t;

static size_t
s_read (char *buf, size_t size, size_t n, void *arg)
{
    s_upload_t *u = arg;
    size_t left = u->len - u->pos, take = size * n < left ? size * n : left;
    memcpy (buf, u->data + u->pos, take);
    u->pos += take;
    return take;
}

/* APPENDs a message written with "\n" line ends (sent as CRLF). */
static void
s_append (CURL *c, int port, const char *text)
{
    char url[128], *crlf = malloc (strlen (text) * 2 + 1);
    size_t i, k = 0;
    s_upload_t up;
    CURLcode code;
    assert_non_null (crlf);
    for (i = 0; text[i]; i++) {
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
            crlf[k++] = '\r';
        crlf[k++] = text[i];
    }
    up.data = crlf;
    up.len = k;
    up.pos = 0;
    snprintf (url, sizeof url, "imap://127.0.0.1:%d/INBOX", port);
    curl_easy_reset (c);
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_USERNAME, USER);
    curl_easy_setopt (c, CURLOPT_PASSWORD, PASSWORD);
    curl_easy_setopt (c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt (c, CURLOPT_READFUNCTION, s_read);
    curl_easy_setopt (c, CURLOPT_READDATA, &up);
    curl_easy_setopt (c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up.len);
    curl_easy_setopt (c, CURLOPT_TIMEOUT, 10L);
    code = curl_easy_perform (c);
    free (crlf);
    if (code != CURLE_OK)
        fail_msg ("IMAP APPEND failed: %s", curl_easy_strerror (code));
}

static void
s_append_simple (CURL *c, int port, const char *id, int n)
{
    char msg[1024];
    snprintf (msg, sizeof msg,
              "From: Customer %d <customer%d@example.com>\n"
              "To: support@shop.test\n"
              "Subject: Question %s\n"
              "Date: Mon, 15 Jan 2024 10:%02d:00 +0000\n"
              "Message-ID: <%s@retain.test>\n"
              "Content-Type: text/plain; charset=utf-8\n"
              "\n"
              "Message %s: where is order %d?\n",
              n, n, id, n % 60, id, id, n);
    s_append (c, port, msg);
}

/* The first messages: the shapes mail really comes in. */
static const char *const s_first[] = {
    /* plain */
    "From: Anna Kowalska <anna@Example.COM>\n"
    "To: support@shop.test\n"
    "Subject: Where is my parcel?\n"
    "Date: Mon, 15 Jan 2024 10:00:00 +0100\n"
    "Message-ID: <plain@retain.test>\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "Hello, my parcel has not arrived.\n",
    /* multipart/alternative, Cyrillic subject in UTF-8 base64, body base64 */
    "From: =?UTF-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivan@example.ru>\n"
    "To: support@shop.test\n"
    "Subject: =?UTF-8?B?0JLQvtC/0YDQvtGBINC/0L4g0LfQsNC60LDQt9GD?=\n"
    "Date: Tue, 16 Jan 2024 11:00:00 +0300\n"
    "Message-ID: <alternative@retain.test>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/alternative; boundary=\"alt\"\n"
    "\n"
    "--alt\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "0JPQtNC1INC80L7QuSDQt9Cw0LrQsNC3Pw==\n"
    "--alt\n"
    "Content-Type: text/html; charset=utf-8\n"
    "\n"
    "<p>HTML</p>\n"
    "--alt--\n",
    /* multipart/mixed with a PDF */
    "From: Maria <maria@example.net>\n"
    "To: support@shop.test\n"
    "Subject: Invoice\n"
    "Date: Wed, 17 Jan 2024 12:00:00 +0000\n"
    "Message-ID: <mixed@retain.test>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"mix\"\n"
    "\n"
    "--mix\n"
    "Content-Type: text/plain\n"
    "\n"
    "Invoice attached.\n"
    "--mix\n"
    "Content-Type: application/pdf\n"
    "Content-Disposition: attachment; filename=\"invoice.pdf\"\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "JVBERi0xLjQKJSVFT0YK\n"
    "--mix--\n",
    /* KOI8-R subject (Q) and body (quoted-printable) */
    "From: Petr <petr@example.ru>\n"
    "To: support@shop.test\n"
    "Subject: =?KOI8-R?Q?=F7=CF=DA=D7=D2=C1=D4_=D4=CF=D7=C1=D2=C1?=\n"
    "Date: Thu, 18 Jan 2024 09:00:00 +0300\n"
    "Message-ID: <koi8@retain.test>\n"
    "Content-Type: text/plain; charset=koi8-r\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "=F7=C5=D2=CE=C9=D4=C5 =C4=C5=CE=D8=C7=C9.\n",
    /* a thread: the customer's first message ... */
    "From: Olena <olena@example.ua>\n"
    "To: support@shop.test\n"
    "Subject: Order 77\n"
    "Date: Fri, 19 Jan 2024 08:00:00 +0200\n"
    "Message-ID: <thread-1@retain.test>\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "Can I change the size?\n",
    /* ... and the customer's reply to the shop's answer */
    "From: Olena <olena@example.ua>\n"
    "To: support@shop.test\n"
    "Subject: Re: Order 77\n"
    "Date: Fri, 19 Jan 2024 12:00:00 +0200\n"
    "Message-ID: <thread-3@retain.test>\n"
    "In-Reply-To: <thread-2@shop.test>\n"
    "References: <thread-1@retain.test> <thread-2@shop.test>\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "Size M, thank you!\n"
    "\n"
    "On Fri, 19 Jan 2024 at 10:00, Shop <support@shop.test> wrote:\n"
    "> Which size would you like?\n",
    /* no Message-ID at all */
    "From: Robot <robot@example.com>\n"
    "To: support@shop.test\n"
    "Subject: No id\n"
    "\n"
    "A message without a Message-ID.\n",
};
#define NFIRST (sizeof s_first / sizeof s_first[0])

/* --- the daemons ------------------------------------------------------ */

/* Adds the mailbox as an operator would: retainctl inbox add, an email
 * inbox polled over IMAP every second. */
static void
s_inbox_add (const char *dsn, int imap_port)
{
    char a_config[256], *out;
    const char *args[] = {"inbox",    "add",    "--channel", "email",  "--id", "support",
                          "--secret", PASSWORD, "--config",  a_config, NULL};
    snprintf (a_config, sizeof a_config,
              "{\"imap_url\":\"imap://127.0.0.1:%d/INBOX\",\"username\":\"" USER
              "\",\"poll_interval\":1}",
              imap_port);
    if (rt_test_retainctl (dsn, args, &out) != 0)
        fail_msg ("retainctl inbox add failed:\n%s", out);
    free (out);
}

/* Waits until the query counts want (or more); fails after timeout_ms. */
static void
s_wait_count (PGconn *conn, const char *sql, long long want, int timeout_ms)
{
    long long have = rt_test_pg_wait_long (conn, sql, want, timeout_ms);
    if (have < want)
        fail_msg ("waited for %lld from [%s], have %lld", want, sql, have);
}

#define MESSAGES_SQL "SELECT count(*) FROM ingest.messages WHERE inbox = 'support'"
#define RAW_SQL      "SELECT count(*) FROM ingest.raw WHERE inbox = 'support'"

/* The InboundMessages on the bus once busd has drained the outbox, in
 * log order. Returns their number; *out owned (rt_test_ingest_messages). */
static size_t
s_bus_messages (PGconn *conn, Retain__V1__InboundMessage ***out)
{
    size_t n;
    assert_int_equal (rt_test_ingest_wait_drained (conn), 0);
    *out = rt_test_ingest_messages (conn, &n);
    return n;
}

static const Retain__V1__InboundMessage *
s_find (Retain__V1__InboundMessage **msgs, size_t n, const char *external_id)
{
    const Retain__V1__InboundMessage *found = NULL;
    size_t i;
    for (i = 0; i < n; i++) {
        if (strcmp (msgs[i]->external_id, external_id) == 0) {
            if (found)
                fail_msg ("%s is on the bus twice", external_id);
            found = msgs[i];
        }
    }
    if (!found)
        fail_msg ("%s is not on the bus", external_id);
    return found;
}

/* Every expected message id exactly once on the bus, and nothing else. */
static void
s_check_exactly_once (PGconn *conn, size_t want)
{
    Retain__V1__InboundMessage **msgs;
    size_t n = s_bus_messages (conn, &msgs), i;
    char id[64];
    if (n != want)
        fail_msg ("%zu InboundMessages on the bus, want %zu", n, want);
    for (i = 0; i < NFIRST - 1; i++) {
        static const char *const ids[] = {"plain@retain.test",    "alternative@retain.test",
                                          "mixed@retain.test",    "koi8@retain.test",
                                          "thread-1@retain.test", "thread-3@retain.test"};
        s_find (msgs, n, ids[i]);
    }
    for (i = 1; i <= BURST; i++) {
        snprintf (id, sizeof id, "burst-%zu@retain.test", i);
        s_find (msgs, n, id);
    }
    for (i = 1; i <= LATE && want > NFIRST + BURST; i++) {
        snprintf (id, sizeof id, "late-%zu@retain.test", i);
        s_find (msgs, n, id);
    }
    for (i = 1; i <= OUTAGE && want > NFIRST + BURST + LATE; i++) {
        snprintf (id, sizeof id, "outage-%zu@retain.test", i);
        s_find (msgs, n, id);
    }
    rt_test_ingest_messages_free (msgs, n);
}

static int
s_teardown (void **state)
{
    (void)state;
    if (s_t.ingestd.pid > 0)
        rt_test_kill (s_t.ingestd.pid, SIGKILL);
    if (s_t.busd.pid > 0)
        rt_test_kill (s_t.busd.pid, SIGKILL);
    s_dovecot_stop (&s_dove);
    s_t.ingestd.pid = 0;
    s_t.busd.pid = 0;
    if (s_t.conn)
        PQfinish (s_t.conn);
    s_t.conn = NULL;
    return 0;
}

static void
test_imap_polling (void **state)
{
    (void)state;
    char sql[256], cursor[64];
    PGconn *conn;
    CURL *append = curl_easy_init ();
    unsigned long long uidvalidity;
    Retain__V1__InboundMessage **msgs;
    size_t n, i;
    long long at_kill;
    int status;

    memset (&s_dove, 0, sizeof s_dove);
    s_dovecot_configure (&s_dove);
    uidvalidity = s_dovecot_start (&s_dove, "ingest-imap-dovecot.log");
    for (i = 0; i < NFIRST; i++)
        s_append (append, s_dove.port, s_first[i]);

    rt_test_ingest_start (&s_t, "ingest_imap", NULL, NULL);
    conn = s_t.conn;
    s_inbox_add (s_t.dsn, s_dove.port);

    /* The first messages, decoded as an agent should see them. */
    s_wait_count (conn, MESSAGES_SQL, NFIRST, 60000);
    n = s_bus_messages (conn, &msgs);
    assert_int_equal (n, NFIRST);
    {
        const Retain__V1__InboundMessage *m = s_find (msgs, n, "plain@retain.test");
        assert_int_equal (m->channel, RETAIN__V1__CHANNEL__EMAIL);
        assert_string_equal (m->inbox, "support");
        assert_string_equal (m->external_user_id, "anna@example.com");
        assert_string_equal (m->email, "anna@example.com");
        assert_string_equal (m->display_name, "Anna Kowalska");
        assert_string_equal (m->subject, "Where is my parcel?");
        assert_string_equal (m->text, "Hello, my parcel has not arrived.");
        assert_int_equal (m->sent_at, 1705309200000LL);
        assert_string_equal (m->thread_id, "plain@retain.test");
        m = s_find (msgs, n, "alternative@retain.test");
        assert_string_equal (m->subject, "Вопрос по заказу");
        assert_string_equal (m->display_name, "Иван Петров");
        assert_string_equal (m->text, "Где мой заказ?");
        assert_int_equal (m->n_attachments, 0);
        m = s_find (msgs, n, "mixed@retain.test");
        assert_string_equal (m->text, "Invoice attached.");
        assert_int_equal (m->n_attachments, 1);
        assert_string_equal (m->attachments[0]->name, "invoice.pdf");
        assert_string_equal (m->attachments[0]->mime_type, "application/pdf");
        assert_string_equal (m->attachments[0]->kind, "document");
        assert_int_equal (m->attachments[0]->size, 15);
        m = s_find (msgs, n, "koi8@retain.test");
        assert_string_equal (m->subject, "Возврат товара");
        assert_string_equal (m->text, "Верните деньги.");
        m = s_find (msgs, n, "thread-1@retain.test");
        assert_string_equal (m->thread_id, "thread-1@retain.test");
        m = s_find (msgs, n, "thread-3@retain.test");
        assert_string_equal (m->text, "Size M, thank you!");
        assert_string_equal (m->thread_id, "thread-1@retain.test");
        assert_string_equal (m->reply_to, "thread-2@shop.test");
        /* Without a Message-ID the id is the mailbox position. */
        snprintf (cursor, sizeof cursor, "uid:%llu:%zu", uidvalidity, NFIRST);
        m = s_find (msgs, n, cursor);
        assert_string_equal (m->subject, "No id");
    }
    rt_test_ingest_messages_free (msgs, n);
    assert_true (rt_test_metric (s_t.ingestd.admin_port,
                                 "retain_ingest_imap_fetched_total{inbox=\"support\"}") >=
                 (double)NFIRST);

    /* A burst, and ingestd killed while it reads it. */
    for (i = 1; i <= BURST; i++) {
        char id[32];
        snprintf (id, sizeof id, "burst-%zu", i);
        s_append_simple (append, s_dove.port, id, (int)i);
    }
    s_wait_count (conn, MESSAGES_SQL, NFIRST + 3, 60000);
    rt_test_kill (s_t.ingestd.pid, SIGKILL);
    s_t.ingestd.pid = 0;
    at_kill = rt_test_pg_long (conn, MESSAGES_SQL);
    print_message ("killed with %lld of %d messages read\n", at_kill, (int)(NFIRST + BURST));

    /* Mail keeps arriving while ingestd is down. */
    for (i = 1; i <= LATE; i++) {
        char id[32];
        snprintf (id, sizeof id, "late-%zu", i);
        s_append_simple (append, s_dove.port, id, (int)(100 + i));
    }
    rt_test_ingestd_restart (&s_t.ingestd);
    s_wait_count (conn, MESSAGES_SQL, NFIRST + BURST + LATE, 60000);
    /* Give a wrong re-read time to show. */
    sleep (2);
    assert_int_equal (rt_test_pg_long (conn, MESSAGES_SQL), NFIRST + BURST + LATE);
    /* One raw copy per message: none was read twice, even across the kill. */
    assert_int_equal (rt_test_pg_long (conn, RAW_SQL), NFIRST + BURST + LATE);
    s_check_exactly_once (conn, NFIRST + BURST + LATE);
    snprintf (sql, sizeof sql,
              "SELECT count(*) FROM ingest.cursors WHERE name = 'imap:support' AND value = "
              "'%llu:%zu'",
              uidvalidity, NFIRST + BURST + LATE);
    assert_int_equal (rt_test_pg_long (conn, sql), 1);

    /* Dovecot goes away: errors are counted, the poller backs off. */
    {
        const char *series = "retain_ingest_imap_errors_total{inbox=\"support\"}";
        double before = rt_test_metric (s_t.ingestd.admin_port, series), errors;
        int64_t t0 = rt_test_now_ms ();
        s_dovecot_stop (&s_dove);
        while (rt_test_now_ms () - t0 < 8000)
            usleep (200000);
        errors = rt_test_metric (s_t.ingestd.admin_port, series) - before;
        /* Polling every second would fail 8 times; backing off 1, 2, 4 s
         * fails about 4. */
        print_message ("%.0f IMAP errors in 8 s of outage\n", errors);
        assert_true (errors >= 2 && errors <= 5);
    }
    /* Back, with mail that arrived meanwhile: read after the backoff. */
    assert_int_equal (s_dovecot_start (&s_dove, "ingest-imap-dovecot.log"), uidvalidity);
    /* the old connection went down with the server */
    curl_easy_cleanup (append);
    append = curl_easy_init ();
    for (i = 1; i <= OUTAGE; i++) {
        char id[32];
        snprintf (id, sizeof id, "outage-%zu", i);
        s_append_simple (append, s_dove.port, id, (int)(200 + i));
    }
    s_wait_count (conn, MESSAGES_SQL, NFIRST + BURST + LATE + OUTAGE, 90000);
    assert_int_equal (rt_test_pg_long (conn, RAW_SQL), NFIRST + BURST + LATE + OUTAGE);
    s_check_exactly_once (conn, NFIRST + BURST + LATE + OUTAGE);

    /* A stop is prompt and clean, with the poller idle or mid-poll. */
    {
        int64_t t0 = rt_test_now_ms ();
        status = rt_test_kill (s_t.ingestd.pid, SIGTERM);
        s_t.ingestd.pid = 0;
        assert_true (WIFEXITED (status));
        assert_int_equal (WEXITSTATUS (status), 0);
        assert_true (rt_test_now_ms () - t0 < 10000);
    }
    status = rt_test_kill (s_t.busd.pid, SIGTERM);
    s_t.busd.pid = 0;
    assert_true (WIFEXITED (status));
    s_dovecot_stop (&s_dove);
    PQfinish (conn);
    s_t.conn = NULL;
    curl_easy_cleanup (append);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown (test_imap_polling, s_teardown),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, NULL, NULL);
}
