/*
 * rt_test_mail: Exim for a test, and mail read back (see rt_test_mail.h).
 */
#include "rt_test_mail.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "rt_codec.h"
#include "rt_test.h"
#include "rt_utf8.h"

static const char *const s_exim_paths[] = {"/usr/sbin/exim4", "/usr/sbin/exim", NULL};

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
 * rejected, refused at RCPT with 550 5.1.1. */
void
rt_test_mail_server_configure (rt_test_mail_server_t *e, const char *rejected)
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
              "  deny recipients = %s\n"
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
              e->dir, e->dir, e->dir, user, group, e->port, e->dir, e->dir, rejected, e->mbox, user,
              group);
    snprintf (e->conf, sizeof e->conf, "%s/exim.conf", e->dir);
    rt_test_file_write (e->conf, conf);
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

void
rt_test_mail_server_start (rt_test_mail_server_t *e, const char *log)
{
    char *argv[] = {"exim4", "-C", e->conf, "-bdf", "-odi", NULL};
    int64_t deadline = rt_test_now_ms () + 20000;
    e->pid = rt_test_spawn (rt_test_program (s_exim_paths, "exim", "exim4-daemon-light"), argv,
                            NULL, log);
    while (!s_listening (e->port)) {
        if (rt_test_now_ms () > deadline)
            fail_msg ("exim did not listen on port %d; see %s/%s and %s/log", e->port,
                      rt_test_dir (), log, e->dir);
        usleep (100000);
    }
}

void
rt_test_mail_server_stop (rt_test_mail_server_t *e)
{
    if (e->pid <= 0)
        return;
    rt_test_kill_tree (e->pid);
    e->pid = 0;
}

char *
rt_test_mail_find (const rt_test_mail_server_t *e, const char *message_id, int *n)
{
    size_t len = 0;
    char *box = rt_test_file_read (e->mbox, &len), *found = NULL;
    char needle[128];
    *n = 0;
    if (!box)
        return NULL;
    snprintf (needle, sizeof needle, "\nMessage-ID: <%s>\n", message_id);
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

char *
rt_test_mail_wait (const rt_test_mail_server_t *e, const char *message_id, int timeout_ms)
{
    int64_t until = rt_test_now_ms () + timeout_ms;
    int n;
    do {
        char *m = rt_test_mail_find (e, message_id, &n);
        if (m)
            return m;
        usleep (50 * 1000);
    } while (rt_test_now_ms () < until);
    fail_msg ("no e-mail with Message-ID <%s> in %s", message_id, e->mbox);
    return NULL;
}

/* Header name's value, unfolded, into out; false when absent. */
bool
rt_test_mail_header (const char *msg, const char *name, char *out, size_t outlen)
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

void
rt_test_mail_decode_words (const char *v, char *out, size_t outlen)
{
    size_t o = 0;
    bool last_word = false;
    while (*v) {
        if (strncmp (v, "=?UTF-8?B?", 10) == 0) {
            const char *end = strstr (v + 10, "?=");
            uint8_t bytes[128];
            long n;
            assert_non_null (end);
            assert_true (end + 2 - v <= 75);
            n = rt_base64_decode (v + 10, (size_t)(end - v - 10), bytes, sizeof bytes);
            assert_true (n > 0);
            assert_true (rt_utf8_text_ok ((const char *)bytes, (size_t)n));
            assert_true (o + (size_t)n < outlen);
            memcpy (out + o, bytes, (size_t)n);
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
void
rt_test_mail_part (const char *msg, const char *type, char *out, size_t outlen)
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
