/*
 * rt_test_mail: a real mail server for notifyd's e-mail tests, and mail
 * read back as a mail reader reads it.
 *
 * The server is Debian's Exim (exim4-daemon-light), started as the
 * test's child on a free loopback port with a throw-away configuration
 * under rt_test_dir: STARTTLS with a certificate the openssl command makes
 * for the run (so the client must be told not to verify it), every
 * recipient accepted and delivered to one mbox, but one address refused at
 * RCPT with "550 5.1.1 ... no such user here". It runs as root (Exim's
 * processes and the delivery as Debian-exim, since Exim never delivers as
 * root) and as an ordinary user (everything as that user). Stopping it is
 * an outage: the daemon and the sessions it forked are SIGKILLed.
 *
 * The readers take a message as the mbox keeps it (LF line ends): its
 * headers unfolded, its RFC 2047 encoded words (UTF-8, B) decoded, the
 * base64 of a part of multipart/alternative decoded. Failures fail the
 * test (cmocka).
 */
#ifndef RT_TEST_MAIL_H
#define RT_TEST_MAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* An Exim for a test. */
typedef struct {
    pid_t pid;      /* the daemon, 0 when not running */
    int port;       /* its SMTP port */
    char dir[512];  /* configuration, spool, log, mail */
    char conf[600]; /* exim.conf */
    char mbox[600]; /* where every message is delivered */
} rt_test_mail_server_t;

/* Chooses a port and writes the configuration, the certificate and the
 * folders under a new folder of rt_test_dir; `rejected` is the address
 * refused at RCPT. */
void rt_test_mail_server_configure (rt_test_mail_server_t *e, const char *rejected);

/* Starts it, output in <rt_test_dir>/<log>, and waits (20 s) until it
 * listens. */
void rt_test_mail_server_start (rt_test_mail_server_t *e, const char *log);

/* The server gone at once (rt_test_kill_tree): the daemon and every
 * session it forked, one a client keeps open among them. Nothing when it
 * does not run. */
void rt_test_mail_server_stop (rt_test_mail_server_t *e);

/* The first message in the mbox whose Message-ID is <message_id> (owned,
 * LF line ends), NULL when none; how many carry it into *n. */
char *rt_test_mail_find (const rt_test_mail_server_t *e, const char *message_id, int *n);

/* rt_test_mail_find until it finds one, timeout_ms at most; fails the
 * test then. */
char *rt_test_mail_wait (const rt_test_mail_server_t *e, const char *message_id, int timeout_ms);

/* The value of header name in msg (an mbox message), unfolded, into out;
 * false when absent. */
bool rt_test_mail_header (const char *msg, const char *name, char *out, size_t outlen);

/* RFC 2047 B words (UTF-8) of a header's value decoded and the text
 * between them kept, white space between two words dropped, as a mail
 * reader shows it; each word is asserted under 76 characters and to
 * decode to whole UTF-8 characters. */
void rt_test_mail_decode_words (const char *v, char *out, size_t outlen);

/* The part of msg (an mbox message) of content type `type` (UTF-8,
 * base64), decoded, into out. */
void rt_test_mail_part (const char *msg, const char *type, char *out, size_t outlen);

#endif
