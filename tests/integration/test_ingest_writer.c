/*
 * ingestd's writer driven directly, with jobs no HTTP request can make: a
 * job PostgreSQL refuses (a CHECK this test adds to ingest.raw) among good
 * ones commits nothing of its own and fails nobody else's (the round is
 * split until it stands alone), the others commit in their order; values
 * that are not text are stored escaped or refused before they reach a
 * round; and PostgreSQL away still fails the whole round, refusing no one.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "channel.h"
#include "retain/v1/envelope.pb-c.h"
#include "rt_metrics.h"
#include "rt_bus.h"
#include "rt_test.h"
#include "writer.h"

#define NJOBS 24

/* One job and what became of it. */
typedef struct {
    ingest_result_t result; /* its items */
    writer_job_t job;       /* as submitted */
    char ext[64];           /* its item's external id */
    bool settled;           /* done was called */
    int status;             /* with this status */
    size_t fresh;           /* new items */
    size_t duplicates;      /* items already there */
} s_job_t;

static struct {
    char dsn[1024];          /* the test database */
    PGconn *conn;            /* for assertions */
    rt_metrics_t *metrics;   /* the writer's */
    writer_t *writer;        /* under test */
    ingest_inbox_t inbox;    /* a Telegram inbox */
    json_t *config;          /* its settings */
    pthread_mutex_t lock;    /* guards the jobs' outcomes */
    s_job_t jobs[NJOBS + 8]; /* the jobs of a step */
    int step;                /* numbers external ids apart across steps */
} s_f;

static void
s_done (void *arg, int status, size_t fresh, size_t duplicates)
{
    s_job_t *j = arg;
    pthread_mutex_lock (&s_f.lock);
    j->settled = true;
    j->status = status;
    j->fresh = fresh;
    j->duplicates = duplicates;
    pthread_mutex_unlock (&s_f.lock);
}

/* A job of one InboundMessage with external id `ext`, content type
 * `raw_type`. */
static void
s_job_make (s_job_t *j, const char *ext, const char *raw_type)
{
    Retain__V1__InboundMessage *msg = ingest_inbound_new (&s_f.inbox);
    ingest_result_reset (&j->result);
    memset (j, 0, sizeof *j);
    snprintf (j->ext, sizeof j->ext, "%s", ext);
    assert_non_null (msg);
    assert_int_equal (ingest_set (&msg->external_id, ext), 0);
    assert_int_equal (ingest_set (&msg->text, "hello"), 0);
    assert_int_equal (ingest_item_add (&j->result, "InboundMessage", ext, &msg->base, "telegram",
                                       s_f.inbox.id, "42"),
                      0);
    j->job.inbox = &s_f.inbox;
    j->job.result = &j->result;
    j->job.raw = (const uint8_t *)"{}";
    j->job.raw_len = 2;
    j->job.raw_type = raw_type;
    j->job.done = s_done;
    j->job.done_arg = j;
}

static void
s_submit (s_job_t *j)
{
    assert_int_equal (writer_submit (s_f.writer, &j->job), 0);
}

/* Waits until jobs[0..n) are all settled (10 s at most). */
static void
s_wait_settled (s_job_t *jobs, size_t n)
{
    int64_t deadline = rt_test_now_ms () + 10000;
    size_t i;
    pthread_mutex_lock (&s_f.lock);
    for (i = 0; i < n; i++) {
        while (!jobs[i].settled && rt_test_now_ms () < deadline) {
            pthread_mutex_unlock (&s_f.lock);
            usleep (2000);
            pthread_mutex_lock (&s_f.lock);
        }
        if (!jobs[i].settled) {
            pthread_mutex_unlock (&s_f.lock);
            fail_msg ("job %zu was never settled", i);
        }
    }
    pthread_mutex_unlock (&s_f.lock);
}

static uint64_t
s_counter (const char *name, const char *labels)
{
    return rt_counter_value (rt_metrics_counter (s_f.metrics, name, labels, ""));
}

static long long
s_count (const char *fmt, const char *value)
{
    char sql[512], *lit = PQescapeLiteral (s_f.conn, value, strlen (value));
    assert_non_null (lit);
    snprintf (sql, sizeof sql, fmt, lit);
    PQfreemem (lit);
    return rt_test_pg_long (s_f.conn, sql);
}

/* The envelopes in outbox.pending, in the order they were appended (no busd
 * runs here, so they stay). Owned; free each with
 * retain__v1__envelope__free_unpacked, the array with free. */
static Retain__V1__Envelope **
s_outbox (size_t *n)
{
    PGresult *res = PQexec (s_f.conn, "SELECT envelope FROM outbox.pending ORDER BY id");
    Retain__V1__Envelope **out;
    int i;
    assert_int_equal (PQresultStatus (res), PGRES_TUPLES_OK);
    *n = (size_t)PQntuples (res);
    out = calloc (*n + 1, sizeof *out);
    for (i = 0; i < PQntuples (res); i++) {
        size_t len;
        unsigned char *bytes =
            PQunescapeBytea ((const unsigned char *)PQgetvalue (res, i, 0), &len);
        out[i] = retain__v1__envelope__unpack (NULL, len, bytes);
        assert_non_null (out[i]);
        PQfreemem (bytes);
    }
    PQclear (res);
    return out;
}

static void
s_outbox_free (Retain__V1__Envelope **envs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        retain__v1__envelope__free_unpacked (envs[i], NULL);
    free (envs);
}

static int
s_setup (void **state)
{
    static const char *const migrate[] = {"migrate", NULL};
    char err[256], *out;
    (void)state;
    memset (&s_f, 0, sizeof s_f);
    pthread_mutex_init (&s_f.lock, NULL);
    rt_test_db_create ("ingest_writer", s_f.dsn, sizeof s_f.dsn);
    if (rt_test_retainctl (s_f.dsn, migrate, &out) != 0)
        fail_msg ("retainctl migrate failed:\n%s", out);
    free (out);
    s_f.conn = rt_test_pg (s_f.dsn);
    s_f.config = json_object ();
    s_f.inbox.id = "shop-bot";
    s_f.inbox.channel = RETAIN__V1__CHANNEL__TELEGRAM;
    s_f.inbox.secret = "s";
    s_f.inbox.previous_secret = "";
    s_f.inbox.config = s_f.config;
    s_f.metrics = rt_metrics_new ();
    s_f.writer = writer_start (s_f.dsn, s_f.metrics, err, sizeof err);
    if (!s_f.writer)
        fail_msg ("writer_start: %s", err);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    writer_stop (&s_f.writer);
    for (size_t i = 0; i < sizeof s_f.jobs / sizeof *s_f.jobs; i++)
        ingest_result_reset (&s_f.jobs[i].result);
    rt_metrics_destroy (&s_f.metrics);
    json_decref (s_f.config);
    PQfinish (s_f.conn);
    pthread_mutex_destroy (&s_f.lock);
    return 0;
}

/* One round of NJOBS jobs where those whose index is in poison[0..npoison)
 * carry a value PostgreSQL refuses. They are queued while the writer is held
 * in an earlier round, so they all meet in one. */
/* Makes PostgreSQL refuse a content type of "poison". */
static void
s_poison_check (void)
{
    rt_test_pg_exec (s_f.conn, "ALTER TABLE ingest.raw DROP CONSTRAINT IF EXISTS no_poison");
    rt_test_pg_exec (s_f.conn, "ALTER TABLE ingest.raw ADD CONSTRAINT no_poison "
                               "CHECK (content_type <> 'poison')");
}

static void
s_round_with_poison (const size_t *poison, size_t npoison)
{
    s_job_t *jobs = s_f.jobs, *first = &s_f.jobs[NJOBS];
    uint64_t splits = s_counter ("retain_ingest_writer_splits_total", "");
    uint64_t refused = s_counter ("retain_ingest_writer_refused_total", "reason=\"postgres\"");
    Retain__V1__Envelope **envs;
    size_t i, p, n, good = 0, o = 0;
    char ext[64];

    s_f.step++;
    rt_test_pg_exec (s_f.conn, "DELETE FROM outbox.pending");
    for (i = 0; i < NJOBS; i++) {
        bool bad = false;
        for (p = 0; p < npoison; p++)
            bad = bad || poison[p] == i;
        snprintf (ext, sizeof ext, "s%d-j%zu", s_f.step, i);
        s_job_make (&jobs[i], ext, bad ? "poison" : "application/json");
    }
    snprintf (ext, sizeof ext, "s%d-first", s_f.step);
    s_job_make (first, ext, "application/json");

    /* Hold the writer in a round of its own, queue the rest behind it. */
    rt_test_pg_exec (s_f.conn, "BEGIN");
    rt_test_pg_exec (s_f.conn, "LOCK TABLE ingest.raw IN ACCESS EXCLUSIVE MODE");
    s_submit (first);
    usleep (300000);
    for (i = 0; i < NJOBS; i++)
        s_submit (&jobs[i]);
    rt_test_pg_exec (s_f.conn, "COMMIT");
    s_wait_settled (first, 1);
    s_wait_settled (jobs, NJOBS);

    assert_int_equal (first->status, 0);
    for (i = 0; i < NJOBS; i++) {
        bool bad = false;
        for (p = 0; p < npoison; p++)
            bad = bad || poison[p] == i;
        if (bad) {
            assert_int_equal (jobs[i].status, 1);
            assert_int_equal (jobs[i].result.status, 422);
            assert_string_equal (jobs[i].result.label, WRITER_REFUSED_LABEL);
            assert_non_null (strstr (jobs[i].result.reason, "23514"));
            assert_int_equal (
                s_count ("SELECT count(*) FROM ingest.messages WHERE external_id = %s",
                         jobs[i].ext),
                0);
        } else {
            assert_int_equal (jobs[i].status, 0);
            assert_int_equal (jobs[i].fresh, 1);
            assert_int_equal (
                s_count ("SELECT count(*) FROM ingest.messages WHERE external_id = %s",
                         jobs[i].ext),
                1);
            good++;
        }
    }
    assert_int_equal (s_counter ("retain_ingest_writer_refused_total", "reason=\"postgres\""),
                      refused + npoison);
    assert_true (s_counter ("retain_ingest_writer_splits_total", "") > splits);

    /* The good ones' envelopes, once each, in the order they were queued. */
    envs = s_outbox (&n);
    assert_int_equal (n, good + 1);
    assert_string_equal (envs[o++]->id, first->result.items[0].event_id);
    for (i = 0; i < NJOBS; i++)
        if (jobs[i].status == 0)
            assert_string_equal (envs[o++]->id, jobs[i].result.items[0].event_id);
    s_outbox_free (envs, n);
}

static void
test_refused_item_fails_nobody_else (void **state)
{
    static const size_t at_start[] = {0}, at_end[] = {NJOBS - 1}, middle[] = {11},
                        several[] = {0, 5, 6, 17, NJOBS - 1};
    size_t all[NJOBS];
    for (size_t i = 0; i < NJOBS; i++)
        all[i] = i;
    (void)state;
    s_poison_check ();
    s_round_with_poison (at_start, 1);
    s_round_with_poison (at_end, 1);
    s_round_with_poison (middle, 1);
    s_round_with_poison (several, sizeof several / sizeof *several);
    s_round_with_poison (all, NJOBS);

    /* A poller waiting for its job hears the same refusal. */
    {
        s_job_t *j = &s_f.jobs[0];
        s_job_make (j, "poller-poisoned", "poison");
        j->job.cursor_name = "imap:shop-bot";
        j->job.cursor_value = "7:42";
        assert_int_equal (writer_submit_wait (s_f.writer, &j->job, NULL, NULL), 1);
        assert_int_equal (j->result.status, 422);
        assert_int_equal (rt_test_pg_long (s_f.conn, "SELECT count(*) FROM ingest.cursors"), 0);
    }
    rt_test_pg_exec (s_f.conn, "ALTER TABLE ingest.raw DROP CONSTRAINT no_poison");
}

/* Splitting is for a round PostgreSQL refused, never for a clean one. */
static void
test_clean_round_is_not_split (void **state)
{
    uint64_t splits = s_counter ("retain_ingest_writer_splits_total", "");
    size_t i;
    char ext[64];
    (void)state;
    for (i = 0; i < NJOBS; i++) {
        snprintf (ext, sizeof ext, "clean-%zu", i);
        s_job_make (&s_f.jobs[i], ext, "application/json");
        s_submit (&s_f.jobs[i]);
    }
    s_wait_settled (s_f.jobs, NJOBS);
    for (i = 0; i < NJOBS; i++)
        assert_int_equal (s_f.jobs[i].status, 0);
    assert_int_equal (s_counter ("retain_ingest_writer_splits_total", ""), splits);
}

static void
test_values_not_text (void **state)
{
    s_job_t *j = s_f.jobs;
    uint64_t splits = s_counter ("retain_ingest_writer_splits_total", "");
    uint64_t too_long = s_counter ("retain_ingest_writer_refused_total", "reason=\"too_long\"");
    uint64_t unknown = s_counter ("retain_ingest_writer_refused_total", "reason=\"unknown_type\"");
    uint64_t not_text = s_counter ("retain_ingest_writer_refused_total", "reason=\"not_text\"");
    uint64_t escaped = s_counter ("retain_ingest_writer_escaped_total", "");
    char long_id[WRITER_EXTERNAL_ID_MAX + 2];
    Retain__V1__Envelope **envs;
    size_t i, n;
    PGresult *res;
    (void)state;

    rt_test_pg_exec (s_f.conn, "DELETE FROM outbox.pending");
    memset (long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    /* 0: a content type that is not text: kept, escaped. */
    s_job_make (&j[0], "ct-bad", "application/json; x=\xff\xc0\xaf");
    /* 1, 2: an external id that is not text, and the provider's retry. */
    s_job_make (&j[1], "ext-\xfe\xff-1", "application/json");
    s_job_make (&j[2], "ext-\xfe\xff-1", "application/json");
    /* 3: a key that is not text. */
    s_job_make (&j[3], "key-bad", "application/json");
    free (j[3].result.items[0].key);
    j[3].result.items[0].key = strdup ("telegram:shop-bot:\xed\xa0\x80");
    /* 4: an external id too long for the index: refused before a round. */
    s_job_make (&j[4], long_id, "application/json");
    /* 5: an event type the bus does not know. */
    s_job_make (&j[5], "type-bad", "application/json");
    j[5].result.items[0].type = "NoSuchEvent";
    /* 6: a poller's cursor that is not text. */
    s_job_make (&j[6], "cursor-bad", "application/json");
    j[6].job.cursor_name = "imap:shop-bot";
    j[6].job.cursor_value = "7:\x80";
    /* 7: a good one among them. */
    s_job_make (&j[7], "good", "application/json");
    for (i = 0; i < 8; i++)
        s_submit (&j[i]);
    s_wait_settled (j, 8);

    assert_int_equal (j[0].status, 0);
    assert_int_equal (j[1].status, 0);
    assert_int_equal (j[1].fresh, 1);
    assert_int_equal (j[2].status, 0);
    assert_int_equal (j[2].duplicates, 1); /* escaped the same way: the same row */
    assert_int_equal (j[3].status, 0);
    assert_int_equal (j[7].status, 0);
    for (i = 4; i <= 6; i++) {
        assert_int_equal (j[i].status, 1);
        assert_int_equal (j[i].result.status, 422);
        assert_string_equal (j[i].result.label, WRITER_REFUSED_LABEL);
        assert_true (strlen (j[i].result.reason) > 0);
    }
    assert_non_null (strstr (j[4].result.reason, "2000"));
    /* Refused by the check, not found by splitting a round. */
    assert_int_equal (s_counter ("retain_ingest_writer_splits_total", ""), splits);
    assert_int_equal (s_counter ("retain_ingest_writer_refused_total", "reason=\"too_long\""),
                      too_long + 1);
    assert_int_equal (s_counter ("retain_ingest_writer_refused_total", "reason=\"unknown_type\""),
                      unknown + 1);
    assert_int_equal (s_counter ("retain_ingest_writer_refused_total", "reason=\"not_text\""),
                      not_text + 1);
    /* The content type, the two external ids, the key, and the two
     * messages' own copies of their external id (the payload's strings are
     * kept escaped too, or busd would refuse the envelope). */
    assert_int_equal (s_counter ("retain_ingest_writer_escaped_total", ""), escaped + 6);

    res = PQexec (s_f.conn, "SELECT r.content_type FROM ingest.raw r JOIN ingest.messages m "
                            "ON m.raw_id = r.id WHERE m.external_id = 'ct-bad'");
    assert_int_equal (PQntuples (res), 1);
    assert_string_equal (PQgetvalue (res, 0, 0), "application/json; x=\\xff\\xc0\\xaf");
    PQclear (res);
    assert_int_equal (rt_test_pg_long (s_f.conn, "SELECT count(*) FROM ingest.messages WHERE "
                                                 "external_id = 'ext-\\xfe\\xff-1'"),
                      1);
    assert_int_equal (rt_test_pg_long (s_f.conn, "SELECT count(*) FROM ingest.messages WHERE "
                                                 "external_id IN ('type-bad', 'cursor-bad') OR "
                                                 "length(external_id) > 1000"),
                      0);
    assert_int_equal (rt_test_pg_long (s_f.conn, "SELECT count(*) FROM ingest.cursors"), 0);

    /* Four envelopes (the retry is a duplicate), the bad key escaped. */
    envs = s_outbox (&n);
    assert_int_equal (n, 4);
    for (i = 0; i < n; i++)
        if (strcmp (envs[i]->id, j[3].result.items[0].event_id) == 0)
            assert_string_equal (envs[i]->key, "telegram:shop-bot:\\xed\\xa0\\x80");
    /* Each one busd will take: its strings and its payload's are text. */
    for (i = 0; i < n; i++) {
        char why[256];
        if (rt_envelope_check (envs[i], why, sizeof why) != 0)
            fail_msg ("busd would refuse outbox envelope %zu: %s", i, why);
    }
    s_outbox_free (envs, n);
}

static void
test_postgres_away_refuses_no_one (void **state)
{
    s_job_t *j = s_f.jobs;
    (void)state;
    s_poison_check ();
    PQfinish (s_f.conn);
    s_f.conn = NULL;
    rt_test_db_refuse (s_f.dsn);
    s_job_make (&j[0], "away-good", "application/json");
    s_job_make (&j[1], "away-poisoned", "poison");
    s_submit (&j[0]);
    s_submit (&j[1]);
    s_wait_settled (j, 2);
    /* Whose fault it is cannot be told without PostgreSQL: both retried. */
    assert_int_equal (j[0].status, -1);
    assert_int_equal (j[1].status, -1);

    rt_test_db_allow (s_f.dsn);
    s_f.conn = rt_test_pg (s_f.dsn);
    s_job_make (&j[0], "away-good", "application/json");
    s_job_make (&j[1], "away-poisoned", "poison");
    s_submit (&j[0]);
    s_submit (&j[1]);
    s_wait_settled (j, 2);
    assert_int_equal (j[0].status, 0);
    assert_int_equal (j[1].status, 1);
    rt_test_pg_exec (s_f.conn, "ALTER TABLE ingest.raw DROP CONSTRAINT no_poison");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_refused_item_fails_nobody_else),
        cmocka_unit_test (test_clean_round_is_not_split),
        cmocka_unit_test (test_values_not_text),
        cmocka_unit_test (test_postgres_away_refuses_no_one),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
