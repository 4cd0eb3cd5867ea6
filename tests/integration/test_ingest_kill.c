/*
 * retain-ingestd killed with SIGKILL during a burst of webhooks: every
 * request that got a 2xx is on the bus exactly once (requests cut off by
 * the kill are retried by the sender, as a provider would).
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "rt_test.h"
#include "retain/v1/message.pb-c.h"

#define SENDERS    4
#define PER_SENDER 1500
#define SECRET     "kill-test-secret"

static int s_http_port;
static atomic_int s_accepted;

typedef struct {
    int index;  /* sender number */
    int *acked; /* message ids answered 2xx */
    int nacked; /* their count */
} s_sender_t;

static size_t
s_discard (char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

static void *
s_send (void *arg)
{
    s_sender_t *s = arg;
    CURL *curl = curl_easy_init ();
    struct curl_slist *headers = NULL;
    char url[128];
    int i;
    headers = curl_slist_append (headers, "Content-Type: application/json");
    headers = curl_slist_append (headers, "X-Telegram-Bot-Api-Secret-Token: " SECRET);
    snprintf (url, sizeof url, "http://127.0.0.1:%d/hooks/telegram/kill-bot", s_http_port);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_discard);
    for (i = 0; i < PER_SENDER; i++) {
        int id = s->index * PER_SENDER + i + 1;
        char body[512];
        long status = 0;
        snprintf (body, sizeof body,
                  "{\"update_id\":%d,\"message\":{\"message_id\":%d,\"from\":{\"id\":%d,"
                  "\"is_bot\":false,\"first_name\":\"C\"},\"chat\":{\"id\":%d,\"type\":"
                  "\"private\"},\"date\":1795500000,\"text\":\"order question %d\"}}",
                  id, id, 1000 + s->index, 1000 + s->index, id);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
        /* Like a provider: retry until a 2xx. */
        for (;;) {
            status = 0;
            if (curl_easy_perform (curl) == CURLE_OK)
                curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
            if (status == 200)
                break;
            usleep (50000);
        }
        s->acked[s->nacked++] = id;
        atomic_fetch_add (&s_accepted, 1);
    }
    curl_slist_free_all (headers);
    curl_easy_cleanup (curl);
    return NULL;
}

static pid_t
s_start (const char *dsn, int admin_port)
{
    char a_dsn[1100], a_http[64], a_admin[64];
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", dsn);
    snprintf (a_http, sizeof a_http, "--http=127.0.0.1:%d", s_http_port);
    snprintf (a_admin, sizeof a_admin, "--admin=127.0.0.1:%d", admin_port);
    char *argv[] = {"retain-ingestd", a_dsn, a_http, a_admin, NULL};
    pid_t pid = rt_test_spawn ("retain-ingestd", argv, NULL, "ingest-kill.log");
    if (!rt_test_wait_ready (admin_port, 30000))
        fail_msg ("retain-ingestd did not become ready");
    return pid;
}

static int
s_cmp_int (const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

static void
test_kill_during_burst (void **state)
{
    (void)state;
    char dsn[1024];
    rt_test_busd_t busd;
    PGconn *conn;
    pid_t ingestd;
    int admin_port = rt_test_free_port ();
    s_sender_t senders[SENDERS];
    pthread_t threads[SENDERS];
    int kills = 0, i, r, total = 0, *seen;
    PGresult *res;
    int64_t deadline;

    memset (&busd, 0, sizeof busd);
    rt_test_db_create ("ingest_kill", dsn, sizeof dsn);
    rt_test_busd_start (&busd, dsn, "ingest-kill-busd.log", NULL, true);
    s_http_port = rt_test_free_port ();
    ingestd = s_start (dsn, admin_port);
    conn = rt_test_pg (dsn);
    rt_test_pg_exec (conn, "INSERT INTO ingest.inboxes (id, channel, secret) VALUES "
                           "('kill-bot', 'telegram', '" SECRET "')");
    usleep (1500000);

    for (i = 0; i < SENDERS; i++) {
        senders[i].index = i;
        senders[i].nacked = 0;
        senders[i].acked = calloc (PER_SENDER, sizeof (int));
        pthread_create (&threads[i], NULL, s_send, &senders[i]);
    }
    while (kills < 3) {
        if (atomic_load (&s_accepted) >= SENDERS * PER_SENDER * (kills + 1) / 4) {
            rt_test_kill (ingestd, SIGKILL);
            kills++;
            ingestd = s_start (dsn, admin_port);
        } else
            usleep (10000);
    }
    for (i = 0; i < SENDERS; i++)
        pthread_join (threads[i], NULL);

    /* Everything answered 2xx reaches the log (busd drains the outbox). */
    deadline = rt_test_now_ms () + 30000;
    while (rt_test_now_ms () < deadline &&
           rt_test_pg_long (conn, "SELECT count(*) FROM bus.outbox") > 0)
        usleep (50000);
    res = PQexec (conn, "SELECT payload FROM bus.events WHERE type = 'InboundMessage'");
    assert_int_equal (PQresultStatus (res), PGRES_TUPLES_OK);
    seen = calloc (SENDERS * PER_SENDER + 1, sizeof (int));
    for (r = 0; r < PQntuples (res); r++) {
        size_t len;
        unsigned char *p = PQunescapeBytea ((const unsigned char *)PQgetvalue (res, r, 0), &len);
        Retain__V1__InboundMessage *m = retain__v1__inbound_message__unpack (NULL, len, p);
        const char *colon;
        int id;
        assert_non_null (m);
        colon = strchr (m->external_id, ':');
        assert_non_null (colon);
        id = atoi (colon + 1);
        assert_true (id >= 1 && id <= SENDERS * PER_SENDER);
        seen[id]++;
        retain__v1__inbound_message__free_unpacked (m, NULL);
        PQfreemem (p);
    }
    PQclear (res);
    for (i = 0; i < SENDERS; i++) {
        qsort (senders[i].acked, (size_t)senders[i].nacked, sizeof (int), s_cmp_int);
        for (int k = 0; k < senders[i].nacked; k++) {
            if (seen[senders[i].acked[k]] != 1)
                fail_msg ("message %d answered 2xx is on the bus %d times", senders[i].acked[k],
                          seen[senders[i].acked[k]]);
            total++;
        }
        free (senders[i].acked);
    }
    assert_int_equal (total, SENDERS * PER_SENDER);
    for (i = 1; i <= SENDERS * PER_SENDER; i++)
        assert_true (seen[i] <= 1);
    print_message ("%d webhooks, %d kills: each on the bus once\n", total, kills);
    free (seen);
    PQfinish (conn);
    {
        int status = rt_test_kill (ingestd, SIGTERM);
        assert_true (WIFEXITED (status));
        assert_int_equal (WEXITSTATUS (status), 0);
        status = rt_test_kill (busd.pid, SIGTERM);
        assert_true (WIFEXITED (status));
        assert_int_equal (WEXITSTATUS (status), 0);
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_kill_during_burst),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, NULL, NULL);
}
