/*
 * rt_test_router: what the routerd integration tests share.
 *
 * A test database with routerd's migrations applied (the outbox's, crm's
 * and, unless a test is about identity alone, routing's) and connections
 * prepared as routerd's consumer handler prepares its own, so a test
 * drives identity and routing the way a replica does; an optional clock
 * file the test moves; teams, operators and customers written straight
 * into the tables (a test about assignment is not about how operators
 * are made); inbound messages and replies through routing; retain-routerd
 * replicas started as children against a retain-busd, and killed and
 * started again; InboundMessage batches published through the outbox, one
 * transaction a batch, the producer path busd relays; and the recounts
 * the promises of routerd are checked by (every message in exactly one
 * conversation, one open conversation per customer, unanswered equal to
 * the timeline, no operator over capacity); and operators made with
 * retainctl, keys and all. Built on rt_test. Setup errors
 * fail the test (cmocka) rather than being returned.
 */
#ifndef RT_TEST_ROUTER_H
#define RT_TEST_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "retain/v1/message.pb-c.h"
#include "routing.h"
#include "rt_db.h"
#include "rt_test.h"
#include "rt_uuid.h"

/* What a test database gets besides the outbox's and crm's schemas. */
typedef struct {
    bool routing; /* routing's migrations, and routing_prepare on each connection */
    bool clock;   /* a clock file (<rt_test_dir>/<name>.clock) this process follows */
    bool second;  /* a second connection, as a second replica's */
} rt_test_router_opts_t;

/* A test's routerd database and its connections. */
typedef struct {
    char dsn[1024];             /* the test database */
    char clock[1024];           /* the clock file this process follows, "" for none */
    PGconn *pg;                 /* the test's own connection, for setup and assertions */
    rt_db_t *db;                /* prepared as routerd's handler's (rt_test_router_connect) */
    rt_db_t *db2;               /* a second one, NULL unless opts.second */
    rt_test_router_opts_t opts; /* what it was opened with */
} rt_test_router_t;

/* Zeroes *t, creates database <name>_<pid>, applies the outbox's, crm's
 * and (opts->routing) routing's migrations, connects t->db (and t->db2)
 * and t->pg. t->db's application name (pg_stat_activity) is <name>-a with
 * dashes for underscores ("router-routing-a"), t->db2's <name>-b. With
 * opts->clock, sets the clock file to the real time and has this process
 * follow it. opts NULL: routing and nothing else. */
void rt_test_router_open (rt_test_router_t *t, const char *name, const rt_test_router_opts_t *opts);

/* Closes what rt_test_router_open connected; a second call does nothing. */
void rt_test_router_close (rt_test_router_t *t);

/* A further connection to t's database, prepared as routerd's consumer
 * handler prepares its own: rt_outbox_prepare, identity_prepare, and
 * routing_prepare when t has routing. app names it in pg_stat_activity.
 * Owned: rt_db_destroy. */
rt_db_t *rt_test_router_connect (const rt_test_router_t *t, const char *app);

/* Empties every table of crm, routing (when t has it) and outbox.pending. */
void rt_test_router_clean (rt_test_router_t *t);

/* Sets t's clock back to the real time (wall and monotonic). */
void rt_test_router_clock_reset (const rt_test_router_t *t);

/* Moves t's clock forward by ms (wall and monotonic). */
void rt_test_router_clock_advance (const rt_test_router_t *t, int64_t ms);

/* A statement (printf-style) on pg; fails the test on error. */
void rt_test_router_sql (PGconn *pg, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* A query (printf-style) returning one number; fails the test on error. */
long long rt_test_router_long (PGconn *pg, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* The first cell of a query (printf-style) into out, "" for no row or
 * NULL; fails the test on error. */
void rt_test_router_text (PGconn *pg, char *out, size_t outlen, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* A fresh UUIDv7 as text (a customer's, an event's, a message's id). */
void rt_test_router_uuid (char id[RT_UUID_STR_LEN + 1]);

/* A team: routing.teams (id, name = id, policy, manager_wait_ms). */
void rt_test_router_team (PGconn *pg, const char *id, const char *policy, long long wait_ms);

/* An operator of team with capacity and languages (a text[] literal such
 * as "{uk,en}", NULL for none), online through routing_presence on
 * t->db at t's clock, or offline. */
void rt_test_router_operator (const rt_test_router_t *t, const char *id, const char *team,
                              int capacity, bool online, const char *languages);

/* A new customer (manager NULL for none) with an identity (inbox "main",
 * the customer id as the user's) on each channel named in channels
 * ("telegram,instagram"; NULL or "" for none); its id into id. */
void rt_test_router_customer (PGconn *pg, char id[RT_UUID_STR_LEN + 1], const char *manager,
                              const char *channels);

/* An inbound message of customer on channel (inbox "main", a text in
 * several scripts with SQL and HTML in it) through routing_inbound on db,
 * in a transaction of its own; event NULL or "" for a message, event_id
 * NULL for a fresh one. Returns routing_inbound's status, ROUTING_ERR_DB
 * when the transaction failed (rolled back); the result in out. Fails no
 * test itself, so a thread of the test's may call it. */
routing_status_t rt_test_router_inbound (rt_db_t *db, const char *customer,
                                         Retain__V1__Channel channel, const char *event,
                                         const char *event_id, routing_inbound_result_t *out);

/* An operator's reply in conversation conv through routing_outbound and
 * routing_outbound_emit on db, in a transaction of its own; channel
 * CHANNEL_UNSPECIFIED for the conversation's, message_id NULL for a fresh
 * one. Returns the status, ROUTING_ERR_DB when the transaction failed
 * (rolled back on any error); the result in out. Fails no test itself,
 * as rt_test_router_inbound. */
routing_status_t rt_test_router_reply (rt_db_t *db, const char *conv, const char *op,
                                       Retain__V1__Channel channel, const char *message_id,
                                       routing_outbound_result_t *out);

/* --- retain-routerd replicas --- */

/* A retain-routerd replica started for a test, and what it takes to start
 * it again. */
typedef struct {
    pid_t pid;          /* the process, 0 when not running */
    int admin_port;     /* its admin port */
    int http_port;      /* its operator API port */
    char member[32];    /* its --member, the owner it writes into bus.offsets */
    char log[64];       /* its log under rt_test_dir (appended across restarts) */
    char dsn[1024];     /* the database it was started on */
    char pub[64];       /* the busd PUB endpoint it subscribes to */
    char extra[8][128]; /* further arguments it was started with */
    size_t nextra;      /* how many of extra */
} rt_test_routerd_t;

/* Starts retain-routerd as member `member` of the group "router" on dsn,
 * subscribed to pub, output appended to <rt_test_dir>/<log>, and waits for
 * its /readyz (60 s; fails the test otherwise, naming the log). Ports left
 * 0 in *r are chosen free. extra are further arguments (NULL-terminated,
 * may be NULL; at most 8, each under 128 bytes). Everything is copied into
 * *r. */
void rt_test_routerd_start (rt_test_routerd_t *r, const char *dsn, const char *pub,
                            const char *member, const char *log, const char *const extra[]);

/* Starts it again as rt_test_routerd_start last did (same ports, member,
 * log and arguments), after the test killed it. */
void rt_test_routerd_restart (rt_test_routerd_t *r);

/* SIGKILLs it (no chance to finish its round) and reaps it; pid 0 after.
 * Fails the test unless it died of the signal. */
void rt_test_routerd_kill (rt_test_routerd_t *r);

/* Stops it with SIGTERM when it runs (rt_test_stop: it must exit 0); pid
 * 0 after, so a second call does nothing. */
void rt_test_routerd_stop (rt_test_routerd_t *r);

/* Partitions of stream the group "router" has in bus.offsets with owner
 * `member` (the last replica to take each). */
long long rt_test_routerd_owned (PGconn *pg, const char *stream, const char *member);

/* Events of stream the group "router" has handled: the sum of its
 * offsets (each partition's pseq counts from 1). One cheap query, for
 * polling. */
long long rt_test_routerd_handled (PGconn *pg, const char *stream);

/* --- publishing --- */

/* Publishes msgs[0..n) as InboundMessage envelopes (producer
 * "retain-ingestd", keyed "<channel>:<inbox>:<external_user_id>" as
 * ingestd keys them) into the outbox on db, in one transaction; busd
 * relays them into the log in that order. db needs rt_outbox_prepare
 * (rt_test_router_connect does it). Each envelope's id, the event id
 * routing's timeline keeps, goes into ids[i] when ids is not NULL. Fails
 * the test when the transaction does not commit. */
void rt_test_router_publish (rt_db_t *db, Retain__V1__InboundMessage *const msgs[], size_t n,
                             char (*ids)[RT_UUID_STR_LEN + 1]);

/* --- the promises, as recounts: each returns the rows breaking one --- */

/* InboundMessage events in bus.events whose id is not in exactly one
 * timeline entry. */
long long rt_test_router_misplaced (PGconn *pg);

/* Customers with more than one conversation that is not resolved. */
long long rt_test_router_doubly_open (PGconn *pg);

/* Conversations whose unanswered counter or waiting_since differs from a
 * recount of their timeline: the counted entries after the last outbound
 * one, and the oldest of their times. */
long long rt_test_router_miscounted (PGconn *pg);

/* Operators over capacity, or whose open_count is not the number of
 * conversations assigned to them and not resolved. */
long long rt_test_router_over_capacity (PGconn *pg);

/* --- staff made as an administrator makes them --- */

/* An operator of team made with `retainctl operator add` on dsn (role
 * operator, supervisor or admin; capacity as text), the token it printed
 * into key (80 bytes). */
void rt_test_router_ctl_operator (const char *dsn, const char *id, const char *team,
                                  const char *role, const char *capacity, char key[80]);

#endif
