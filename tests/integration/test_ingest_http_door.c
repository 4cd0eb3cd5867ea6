/*
 * retain-ingestd's HTTP door against hostile clients: 200 connections
 * trickling their headers are closed at the header deadline while signed
 * Telegram webhooks keep their latency; two different Content-Length
 * headers are refused with 400 and the connection closed; a body over the
 * limit is answered 413 as problem details by ingestd itself and counted
 * against the inbox's channel.
 *
 * The header deadline is ingestd's default (10 s) unless its --help lists
 * --http-header-timeout, which the test then sets to 1 s to stay fast.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "rt_test.h"
#include "rt_test_ingest.h"

#define SECRET "door-secret"
#define SLOW   200

static rt_test_ingest_t s_t;
static int s_header_timeout_ms; /* ingestd's header deadline */

/* Whether retain-ingestd's --help lists a setting. */
static bool
s_has_setting (const char *flag)
{
    char cmd[1024], line[512];
    bool found = false;
    FILE *out;
    snprintf (cmd, sizeof cmd, "%s/retain-ingestd --help 2>&1", RT_TEST_BIN_DIR);
    out = popen (cmd, "r");
    if (!out)
        fail_msg ("cannot run retain-ingestd --help");
    while (fgets (line, sizeof line, out))
        found = found || strstr (line, flag) != NULL;
    pclose (out);
    return found;
}

static int
s_setup (void **state)
{
    static const rt_test_inbox_t inboxes[] = {{"door-bot", "telegram", SECRET, "{}"}};
    const char *extra[] = {"--max-body=64k", "--http-threads=2", NULL, NULL};
    s_header_timeout_ms = 10000;
    if (s_has_setting ("--http-header-timeout")) {
        extra[2] = "--http-header-timeout=1s";
        s_header_timeout_ms = 1000;
    }
    *state = &s_t;
    rt_test_ingest_start (&s_t, "ingest_door", "", extra);
    rt_test_ingest_inboxes (&s_t, inboxes, 1);
    return 0;
}

static int
s_connect (void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons ((uint16_t)s_t.ingestd.http_port)};
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (fd < 0 || connect (fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        fail_msg ("connect: %s", strerror (errno));
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Reads until the server closes or timeout_ms pass; returns the bytes
 * read (into buf, NUL-terminated), or -1 when the connection stayed open. */
static ssize_t
s_read_to_close (int fd, char *buf, size_t cap, int timeout_ms)
{
    int64_t deadline = rt_test_now_ms () + timeout_ms;
    size_t len = 0;
    for (;;) {
        int64_t left = deadline - rt_test_now_ms ();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll (&p, 1, (int)left) <= 0)
            return -1;
        char tmp[4096];
        ssize_t n = recv (fd, tmp, sizeof tmp, 0);
        if (n <= 0)
            break;
        if (len + (size_t)n < cap) {
            memcpy (buf + len, tmp, (size_t)n);
            len += (size_t)n;
        }
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

/* A good sender: signed Telegram updates on one keep-alive connection. */
typedef struct {
    atomic_bool stop;  /* set by the test */
    int next_id;       /* update ids to use */
    int sent;          /* requests answered */
    int failures;      /* answered other than 200 */
    int64_t lat[4096]; /* latencies, ms */
} s_good_t;

static void *
s_good_sender (void *arg)
{
    s_good_t *g = arg;
    CURL *curl = curl_easy_init ();
    struct curl_slist *headers = NULL;
    char url[128];
    headers = curl_slist_append (headers, "Content-Type: application/json");
    headers = curl_slist_append (headers, "X-Telegram-Bot-Api-Secret-Token: " SECRET);
    snprintf (url, sizeof url, "%s/hooks/telegram/door-bot", s_t.ingestd.base);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, rt_test_reply_drop);
    while (!atomic_load (&g->stop) && g->sent < 4096) {
        char body[512];
        long status = 0;
        int id = g->next_id++;
        snprintf (body, sizeof body,
                  "{\"update_id\":%d,\"message\":{\"message_id\":%d,\"from\":{\"id\":77,"
                  "\"is_bot\":false,\"first_name\":\"D\"},\"chat\":{\"id\":77,\"type\":"
                  "\"private\"},\"date\":1795500000,\"text\":\"where is my parcel %d\"}}",
                  id, id, id);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
        int64_t t0 = rt_test_now_ms ();
        if (curl_easy_perform (curl) == CURLE_OK)
            curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
        g->lat[g->sent++] = rt_test_now_ms () - t0;
        if (status != 200)
            g->failures++;
        usleep (50000);
    }
    curl_slist_free_all (headers);
    curl_easy_cleanup (curl);
    return NULL;
}

static int
s_cmp (const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sends for ms milliseconds with a good sender; returns its median and
 * max latency. */
static void
s_measure (s_good_t *g, int ms, int64_t *median, int64_t *max, void (*meanwhile) (int64_t))
{
    pthread_t thread;
    int64_t t0 = rt_test_now_ms ();
    atomic_init (&g->stop, false);
    g->sent = g->failures = 0;
    pthread_create (&thread, NULL, s_good_sender, g);
    while (rt_test_now_ms () - t0 < ms) {
        if (meanwhile)
            meanwhile (t0);
        usleep (100000);
    }
    atomic_store (&g->stop, true);
    pthread_join (thread, NULL);
    assert_true (g->sent > 0);
    qsort (g->lat, (size_t)g->sent, sizeof *g->lat, s_cmp);
    *median = g->lat[g->sent / 2];
    *max = g->lat[g->sent - 1];
}

static int s_slow[SLOW];
static size_t s_trickled;

/* One more header byte on every slow connection, every half second. */
static void
s_trickle (int64_t t0)
{
    static const char head[] = "POST /hooks/telegram/door-bot HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "X-Telegram-Bot-Api-Secret-Token: " SECRET "\r\nX-Slow: "
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    size_t due = (size_t)((rt_test_now_ms () - t0) / 500);
    for (; s_trickled <= due && s_trickled < sizeof head - 1; s_trickled++) {
        for (int i = 0; i < SLOW; i++)
            send (s_slow[i], head + s_trickled, 1, MSG_NOSIGNAL);
    }
}

static void
test_slowloris (void **state)
{
    (void)state;
    static s_good_t good;
    int64_t base_median, base_max, median, max;
    char buf[4096];

    good.next_id = 1;
    s_measure (&good, 1500, &base_median, &base_max, NULL);
    assert_int_equal (good.failures, 0);

    for (int i = 0; i < SLOW; i++)
        s_slow[i] = s_connect ();
    s_trickled = 0;
    /* Trickle past the deadline, signed webhooks meanwhile. */
    s_measure (&good, s_header_timeout_ms + 1500, &median, &max, s_trickle);
    print_message ("webhook latency: median %lld ms, max %lld ms before; median %lld ms, "
                   "max %lld ms under %d trickling connections (%d requests)\n",
                   (long long)base_median, (long long)base_max, (long long)median, (long long)max,
                   SLOW, good.sent);
    assert_int_equal (good.failures, 0);
    if (median > 3 * base_median + 50 || max > 1000)
        fail_msg ("webhooks slowed down: median %lld ms (was %lld), max %lld ms", (long long)median,
                  (long long)base_median, (long long)max);
    /* Every trickling connection was closed at the deadline (after a 408). */
    int answered = 0;
    for (int i = 0; i < SLOW; i++) {
        ssize_t n = s_read_to_close (s_slow[i], buf, sizeof buf, 500);
        if (n < 0)
            fail_msg ("slow connection %d still open %d ms after the deadline", i, 1500);
        if (n > 0 && strncmp (buf, "HTTP/1.1 408 ", 13) == 0)
            answered++;
        close (s_slow[i]);
    }
    assert_true (answered > 0);
    assert_true (rt_test_metric (s_t.ingestd.admin_port,
                                 "retain_http_refused_total{server=\"ingest\",reason=\"header_"
                                 "timeout\"}") >= SLOW);
}

static void
test_two_content_lengths (void **state)
{
    (void)state;
    static const char req[] =
        "POST /hooks/telegram/door-bot HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "X-Telegram-Bot-Api-Secret-Token: " SECRET "\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}";
    char buf[4096];
    int fd = s_connect ();
    send (fd, req, sizeof req - 1, MSG_NOSIGNAL);
    ssize_t n = s_read_to_close (fd, buf, sizeof buf, 5000);
    close (fd);
    if (n <= 0)
        fail_msg ("no answer and no close");
    assert_int_equal (strncmp (buf, "HTTP/1.1 400 ", 13), 0);
    assert_non_null (strstr (buf, "Content-Type: application/problem+json\r\n"));
    assert_non_null (strstr (buf, "Connection: close\r\n"));
    assert_non_null (strstr (buf, "\"status\":400"));
}

static void
test_oversized_body (void **state)
{
    (void)state;
    const char *series = "retain_ingest_rejected_total{channel=\"telegram\",reason=\"too_large\"}";
    const char *headers[] = {"Content-Type: application/json",
                             "X-Telegram-Bot-Api-Secret-Token: " SECRET, NULL};
    double before = rt_test_metric (s_t.ingestd.admin_port, series);
    size_t big = 100 * 1024;
    char *body = malloc (big);
    rt_test_reply_t r;
    json_t *json;

    assert_non_null (body);
    memset (body, 'x', big);
    /* The server answers before the body is sent; curl may then report
     * the send it could not finish, after the answer it read: the answer
     * is in r whatever the exchange's end. */
    rt_test_http_request (s_t.ingestd.http_port, "POST", "/hooks/telegram/door-bot", body, big,
                          headers, &r);
    assert_int_equal (r.status, 413);
    assert_string_equal (r.type, "application/problem+json");
    json = json_loads (r.body, 0, NULL);
    if (!json)
        fail_msg ("413 body is not problem details: %s", r.body);
    assert_int_equal (json_integer_value (json_object_get (json, "status")), 413);
    assert_string_equal (json_string_value (json_object_get (json, "type")),
                         "https://retain.dev/problems/too-large");
    json_decref (json);
    free (body);
    assert_true (rt_test_metric (s_t.ingestd.admin_port, series) == (before < 0 ? 0 : before) + 1);
    assert_true (rt_test_metric (s_t.ingestd.admin_port,
                                 "retain_http_refused_total{server=\"ingest\",reason=\"too_"
                                 "large\"}") >= 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_two_content_lengths),
        cmocka_unit_test (test_oversized_body),
        cmocka_unit_test (test_slowloris),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, s_setup, rt_test_ingest_teardown);
}
