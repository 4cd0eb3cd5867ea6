/*
 * Two retain-routerd replicas share the group "router" while 50,000
 * messages from 5,000 customers flow in on Telegram, WhatsApp, Viber and
 * Instagram; one replica is SIGKILLed mid-flow, the other takes over its
 * partitions, and the killed one is started again and takes its share
 * back. Afterwards every message is in exactly one conversation's
 * timeline, once; every customer has exactly one open conversation; a
 * customer who writes on WhatsApp and shares the same number on Telegram
 * is one customer (their first Telegram message and their first WhatsApp
 * message, keyed apart, can reach the two replicas at once); every
 * conversation's unanswered counter and waiting_since equal a recount of
 * its timeline, with operators' replies written meanwhile as the operator
 * API writes them; no operator holds more than their capacity, and
 * nobody waits in the queue while an operator has room.
 *
 * Messages go into the outbox in batches, one transaction each, the way a
 * producer's do, and busd relays them; the test publishes at most WINDOW
 * messages ahead of what the group has handled, so the kill lands while
 * both publishing and handling are under way. Progress is read from the
 * group's offsets (one row per partition), the recounts once at the end.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rt_clock.h"
#include "rt_test.h"
#include "rt_test_router.h"

#define CUSTOMERS      5000
#define PER_CUSTOMER   10
#define MESSAGES       (CUSTOMERS * PER_CUSTOMER)
#define BATCH          1000 /* messages per outbox transaction */
#define WINDOW         6000 /* published ahead of the group at most */
#define JOINED_EVERY   10   /* every 10th customer writes on WhatsApp and Telegram */
#define OPERATORS      25
#define CAPACITY       180    /* 25 x 180 = 4,500 seats for 5,000 customers: 500 queue */
#define REPLIES        20     /* operators' replies at a time */
#define REPLY_PAUSE_US 200000 /* between two rounds of replies */
#define PARTITIONS     16     /* of the stream "message" (busd's default) */
#define STALL_MS       90000

static rt_test_router_t s_t;
static rt_test_busd_t s_busd;
static rt_test_routerd_t s_r1, s_r2;

/* One message being put together, and the text its fields point to. */
typedef struct {
    Retain__V1__InboundMessage msg; /* what is published */
    char external_id[48];           /* the provider's message id */
    char user[32];                  /* the provider's sender id */
    char phone[24];                 /* E.164, when the channel gives one */
    char text[64];                  /* what they wrote */
} s_message_t;

static s_message_t s_batch[BATCH];

static const Retain__V1__Channel s_channels[] = {
    RETAIN__V1__CHANNEL__TELEGRAM,
    RETAIN__V1__CHANNEL__WHATSAPP,
    RETAIN__V1__CHANNEL__VIBER,
    RETAIN__V1__CHANNEL__INSTAGRAM,
};

static int
s_setup (void **state)
{
    char id[16];
    (void)state;
    rt_test_router_open (&s_t, "router_kill", NULL);
    rt_test_router_team (s_t.pg, "care", "balanced", 0);
    for (int i = 0; i < OPERATORS; i++) {
        snprintf (id, sizeof id, "op-%02d", i);
        rt_test_router_operator (&s_t, id, "care", CAPACITY, true, NULL);
    }
    rt_test_busd_start (&s_busd, s_t.dsn, "router_kill-busd.log", NULL, true);
    rt_test_routerd_start (&s_r1, s_t.dsn, s_busd.pub, "r1", "router_kill-r1.log", NULL);
    rt_test_routerd_start (&s_r2, s_t.dsn, s_busd.pub, "r2", "router_kill-r2.log", NULL);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    rt_test_routerd_stop (&s_r1);
    rt_test_routerd_stop (&s_r2);
    if (s_busd.pid > 0) {
        pid_t pid = s_busd.pid;
        s_busd.pid = 0;
        rt_test_stop (pid, "retain-busd");
    }
    rt_test_router_close (&s_t);
    return 0;
}

/* Message g of the flow: round k = g / CUSTOMERS, customer c = g %
 * CUSTOMERS. A joined customer writes on Telegram in even rounds (the
 * first a share of their own contact, which proves the number) and on
 * WhatsApp, from that number, in odd ones; everybody else on one channel.
 * The provider's time is the flow's order, a millisecond apart. */
static void
s_message (s_message_t *m, int g, int64_t t0)
{
    int c = g % CUSTOMERS, k = g / CUSTOMERS;
    bool joined = c % JOINED_EVERY == 0;
    Retain__V1__Channel ch =
        joined ? (k % 2 ? RETAIN__V1__CHANNEL__WHATSAPP : RETAIN__V1__CHANNEL__TELEGRAM)
               : s_channels[c % 4];
    retain__v1__inbound_message__init (&m->msg);
    m->msg.channel = ch;
    m->msg.inbox = "main";
    snprintf (m->external_id, sizeof m->external_id, "m-%d", g);
    snprintf (m->text, sizeof m->text, "where is order %d? (%d)", c, k);
    m->msg.external_id = m->external_id;
    m->msg.text = m->text;
    m->msg.sent_at = t0 + g;
    m->msg.display_name = "Customer";
    snprintf (m->phone, sizeof m->phone, "+38050%07d", c);
    switch (ch) {
    case RETAIN__V1__CHANNEL__TELEGRAM:
        snprintf (m->user, sizeof m->user, "%d", 700000 + c);
        if (joined && k == 0)
            m->msg.phone = m->phone;
        break;
    case RETAIN__V1__CHANNEL__WHATSAPP:
        /* The sender's WhatsApp id is their number's digits. */
        snprintf (m->user, sizeof m->user, "%s", m->phone + 1);
        m->msg.phone = m->phone;
        break;
    case RETAIN__V1__CHANNEL__VIBER:
        snprintf (m->user, sizeof m->user, "viber-%d", c);
        break;
    default:
        snprintf (m->user, sizeof m->user, "1784%06d", c);
        break;
    }
    m->msg.external_user_id = m->user;
}

/* Operators replying meanwhile, as the API would: a third writer beside
 * the two replicas, on a connection of its own, REPLIES waiting
 * conversations at a time until told to stop. Failures are kept for the
 * test's thread to report (cmocka fails on its own thread only). */
typedef struct {
    rt_db_t *db;      /* its connection, prepared as the handler's */
    PGconn *pg;       /* where it picks conversations */
    atomic_bool stop; /* set by the test when the flow is in */
    atomic_long sent; /* replies committed */
    char failed[256]; /* what went wrong, "" for nothing */
} s_replier_t;

static void *
s_replier_run (void *arg)
{
    s_replier_t *r = arg;
    char sql[256];
    snprintf (sql, sizeof sql,
              "SELECT id, assignee FROM routing.conversations WHERE assignee IS NOT NULL"
              " AND unanswered > 0 ORDER BY random() LIMIT %d",
              REPLIES);
    while (!atomic_load (&r->stop) && !r->failed[0]) {
        PGresult *res = PQexec (r->pg, sql);
        if (PQresultStatus (res) != PGRES_TUPLES_OK) {
            snprintf (r->failed, sizeof r->failed, "picking conversations: %s",
                      PQerrorMessage (r->pg));
            PQclear (res);
            break;
        }
        for (int i = 0; i < PQntuples (res) && !r->failed[0]; i++) {
            routing_outbound_result_t out;
            routing_status_t st =
                rt_test_router_reply (r->db, PQgetvalue (res, i, 0), PQgetvalue (res, i, 1),
                                      RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, NULL, &out);
            if (st == ROUTING_OK)
                atomic_fetch_add (&r->sent, 1);
            else
                snprintf (r->failed, sizeof r->failed, "a reply in %s: %d (%s)",
                          PQgetvalue (res, i, 0), st, rt_db_error (r->db));
        }
        PQclear (res);
        usleep (REPLY_PAUSE_US);
    }
    return NULL;
}

/* Waits until the group has handled `want` events of the stream message,
 * failing when nothing moves for STALL_MS. */
static void
s_wait_handled (long long want)
{
    long long last = -1, now;
    int64_t moved = rt_test_now_ms ();
    for (;;) {
        now = rt_test_routerd_handled (s_t.pg, "message");
        if (now >= want)
            return;
        if (now != last) {
            last = now;
            moved = rt_test_now_ms ();
        } else if (rt_test_now_ms () - moved > STALL_MS)
            fail_msg ("the group handled %lld of %lld events and stopped; see %s", now, want,
                      rt_test_dir ());
        usleep (20000);
    }
}

/* Waits up to timeout_ms until member owns at least `want` partitions of
 * the stream message; returns what it owns then. */
static long long
s_wait_owned (const char *member, long long want, int timeout_ms)
{
    int64_t deadline = rt_test_now_ms () + timeout_ms;
    long long n = rt_test_routerd_owned (s_t.pg, "message", member);
    while (n < want && rt_test_now_ms () < deadline) {
        usleep (50000);
        n = rt_test_routerd_owned (s_t.pg, "message", member);
    }
    return n;
}

static void
test_kill_mid_flow (void **state)
{
    Retain__V1__InboundMessage *msgs[BATCH];
    int64_t t0 = rt_clock_now_ms (), start = rt_test_now_ms (), killed_at = 0, restarted_at = 0;
    long long replies, backlog_at_kill = -1;
    bool killed = false, restarted = false;
    static s_replier_t replier;
    pthread_t thread;
    (void)state;

    /* Both replicas hold a share before anything flows. */
    if (s_wait_owned ("r1", 1, 30000) < 1 || s_wait_owned ("r2", 1, 30000) < 1)
        fail_msg ("the two replicas do not share the stream message");
    for (int i = 0; i < BATCH; i++)
        msgs[i] = &s_batch[i].msg;
    replier.db = rt_test_router_connect (&s_t, "router-kill-replies");
    replier.pg = rt_test_pg (s_t.dsn);
    assert_int_equal (pthread_create (&thread, NULL, s_replier_run, &replier), 0);

    for (int g = 0; g < MESSAGES; g += BATCH) {
        long long handled;
        for (int i = 0; i < BATCH; i++)
            s_message (&s_batch[i], g + i, t0);
        rt_test_router_publish (s_t.db, msgs, BATCH, NULL);
        handled = rt_test_routerd_handled (s_t.pg, "message");
        if (!killed && handled >= MESSAGES * 3 / 10) {
            /* r1 dies with its share of a backlog in hand. */
            backlog_at_kill = g + BATCH + atomic_load (&replier.sent) - handled;
            if (rt_test_routerd_owned (s_t.pg, "message", "r1") == 0)
                fail_msg ("r1 owns no partition when it is to be killed");
            rt_test_routerd_kill (&s_r1);
            killed = true;
            killed_at = rt_test_now_ms ();
        } else if (killed && !restarted && handled >= MESSAGES * 6 / 10) {
            /* r2 took every partition r1 held. */
            if (s_wait_owned ("r2", PARTITIONS, 30000) != PARTITIONS)
                fail_msg ("r2 did not take over r1's partitions");
            rt_test_routerd_restart (&s_r1);
            restarted = true;
            restarted_at = rt_test_now_ms ();
        }
        /* Never more than WINDOW ahead of the group. */
        while (g + BATCH + atomic_load (&replier.sent) -
                   rt_test_routerd_handled (s_t.pg, "message") >
               WINDOW)
            usleep (20000);
    }
    atomic_store (&replier.stop, true);
    pthread_join (thread, NULL);
    rt_db_destroy (&replier.db);
    PQfinish (replier.pg);
    if (replier.failed[0])
        fail_msg ("%s", replier.failed);
    replies = atomic_load (&replier.sent);
    assert_true (killed && restarted);
    print_message ("killed r1 with %lld events waiting, %.1f s in; restarted it %.1f s later\n",
                   backlog_at_kill, (double)(killed_at - start) / 1000,
                   (double)(restarted_at - killed_at) / 1000);
    assert_true (backlog_at_kill > 0);
    assert_true (replies > 0);
    /* The restarted replica takes its share back. */
    if (s_wait_owned ("r1", 1, 30000) < 1)
        fail_msg ("the restarted r1 took no partition back");
    s_wait_handled (MESSAGES + replies);
    print_message ("%d messages and %lld replies handled in %.1f s\n", MESSAGES, replies,
                   (double)(rt_test_now_ms () - start) / 1000);

    /* Every message once in one conversation's timeline. */
    assert_int_equal (rt_test_pg_long (s_t.pg, "SELECT count(*) FROM bus.events"
                                               " WHERE type = 'InboundMessage'"),
                      MESSAGES);
    assert_int_equal (rt_test_router_misplaced (s_t.pg), 0);
    assert_int_equal (rt_test_pg_long (s_t.pg, "SELECT count(*) FROM routing.timeline"
                                               " WHERE kind = 'inbound' AND counted"),
                      MESSAGES);
    assert_int_equal (rt_test_pg_long (s_t.pg, "SELECT count(*) FROM routing.timeline"
                                               " WHERE kind = 'outbound'"),
                      replies);
    /* 5,000 customers: each joined pair is one, on both channels. */
    assert_int_equal (rt_test_pg_long (s_t.pg, "SELECT count(*) FROM crm.customers"
                                               " WHERE merged_into IS NULL"),
                      CUSTOMERS);
    assert_int_equal (rt_test_pg_long (s_t.pg, "SELECT count(*) FROM (SELECT customer_id FROM"
                                               " crm.identities GROUP BY 1 HAVING"
                                               " count(DISTINCT channel) = 2) x"),
                      CUSTOMERS / JOINED_EVERY);
    /* One open conversation each. */
    assert_int_equal (rt_test_router_doubly_open (s_t.pg), 0);
    assert_int_equal (rt_test_pg_long (s_t.pg, "SELECT count(DISTINCT customer_id) FROM"
                                               " routing.conversations WHERE status <> 'resolved'"),
                      CUSTOMERS);
    /* Counters equal their recount, replies and all; a reply goes out on
     * the channel of the customer's latest message. */
    assert_int_equal (rt_test_router_miscounted (s_t.pg), 0);
    assert_int_equal (rt_test_pg_long (s_t.pg, "SELECT count(*) FROM routing.conversations c"
                                               " WHERE c.channel <> (SELECT t.channel FROM"
                                               " routing.timeline t WHERE t.conversation_id = c.id"
                                               " AND t.kind = 'inbound'"
                                               " ORDER BY t.occurred_at DESC LIMIT 1)"),
                      0);
    /* Nobody over capacity; the queue holds only what no seat could take
     * (the routing timer hands out what a busy moment left behind). */
    assert_int_equal (rt_test_router_over_capacity (s_t.pg), 0);
    assert_int_equal (
        rt_test_pg_wait_long (s_t.pg,
                              "SELECT count(*) FROM routing.operators WHERE open_count = capacity",
                              OPERATORS, 30000),
        OPERATORS);
    assert_int_equal (rt_test_pg_long (s_t.pg, "SELECT count(*) FROM routing.conversations"
                                               " WHERE assignee IS NULL AND status = 'open'"),
                      CUSTOMERS - OPERATORS * CAPACITY);
    assert_int_equal (rt_test_router_over_capacity (s_t.pg), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_kill_mid_flow),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
