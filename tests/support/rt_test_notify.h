/*
 * rt_test_notify: what notifyd's integration tests share.
 *
 * A test's world: a database with the outbox's and crm's schemas
 * (rt_test_router; notifyd applies its own migrations when it starts),
 * optionally on a clock file the test sets, a retain-busd on it (on the
 * same clock, so that the ids made at the set time are inside its log's
 * window), and a connection that publishes through the outbox as a
 * producing daemon does. retain-notifyd replicas started as children,
 * killed and started again; NotificationRequested and other events
 * published; and what notifyd made of them read back: a send's status in
 * notify.sends, and the MessageDelivered and MessageFailed it said on the
 * bus. Built on rt_test and rt_test_router (the tests including this
 * header ask for routerd's folder, as rt_test_router.h does). Setup errors
 * fail the test (cmocka).
 */
#ifndef RT_TEST_NOTIFY_H
#define RT_TEST_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

#include "retain/v1/common.pb-c.h"
#include "rt_db.h"
#include "rt_test.h"
#include "rt_test_router.h"
#include "rt_uuid.h"

/* --- retain-notifyd --- */

/* A retain-notifyd replica started for a test (rt_test.h's bus-client
 * daemon), and what it takes to start it again. */
typedef rt_test_clientd_t rt_test_notifyd_t;

/* Starts retain-notifyd as member on dsn, subscribed to pub, following
 * clock (NULL or "" for the real time), output appended to
 * <rt_test_dir>/<log>, and waits for its /readyz (60 s; fails the test
 * otherwise, naming the log). extra are further arguments (NULL-terminated,
 * may be NULL; at most 24, each under 128 bytes). Everything is copied
 * into *n. */
void rt_test_notifyd_start (rt_test_notifyd_t *n, const char *dsn, const char *pub,
                            const char *clock, const char *member, const char *log,
                            const char *const extra[]);

/* Starts it again as rt_test_notifyd_start last did (same admin port,
 * member, log and arguments), after the test killed it. */
void rt_test_notifyd_restart (rt_test_notifyd_t *n);

/* Stops it with SIGTERM when it runs (rt_test_stop: it must exit 0); pid
 * 0 after, so a second call does nothing. */
void rt_test_notifyd_stop (rt_test_notifyd_t *n);

/* --- the world --- */

/* A notify test's database, log and publisher. */
typedef struct {
    rt_test_router_t t;  /* the database (t.dsn), the test's connection (t.pg), the clock */
    rt_test_busd_t busd; /* the log, its output in <name>-busd.log */
    rt_db_t *db;         /* publishes through the outbox */
} rt_test_notify_t;

/* Zeroes *w, opens database <name>_<pid> (rt_test_router_open without
 * routing), with a clock file set to clock_at (unix ms) when it is not 0,
 * starts retain-busd on it (following that clock) and connects w->db. */
void rt_test_notify_open (rt_test_notify_t *w, const char *name, int64_t clock_at);

/* Stops busd and closes everything rt_test_notify_open made; a second
 * call does nothing. Stop the notifyd replicas first. */
void rt_test_notify_close (rt_test_notify_t *w);

/* A test file's teardown: stops the replica n (rt_test_notifyd_stop),
 * closes w (rt_test_notify_close) and stops the fake *fake
 * (rt_fake_provider_stop, *fake NULL after). */
struct rt_fake_provider_t;
void rt_test_notify_teardown (rt_test_notifyd_t *n, rt_test_notify_t *w,
                              struct rt_fake_provider_t **fake);

/* Sets the wall clock of every process following w's clock file to at_ms,
 * its monotonic clock left running. */
void rt_test_notify_clock_set (const rt_test_notify_t *w, int64_t at_ms);

/* --- customers --- */

/* A customer in crm named Olena (locale en; zone and preferred channel ""
 * for none) with the identities `identities` in inbox, as
 * "sms=+380...,telegram=2201": each first seen ten days ago, a later one
 * written on more recently than the one before. Its id into id. */
void rt_test_notify_customer (PGconn *pg, const char *inbox, const char *zone,
                              const char *preferred, const char *identities,
                              char id[RT_UUID_STR_LEN + 1]);

/* --- publishing --- */

/* An envelope of type for payload keyed key from producer, with id (NULL:
 * a fresh one), packed into *packed (owned: free packed->data). */
void rt_test_notify_pack (const char *type, const char *key, const ProtobufCMessage *payload,
                          const char *producer, const char *id, ProtobufCBinaryData *packed);

/* Appends packed[0..n) to the outbox on db in one transaction, and frees
 * their data; fails the test when it does not commit. */
void rt_test_notify_publish (rt_db_t *db, ProtobufCBinaryData *packed, size_t n);

/* rt_test_notify_pack and rt_test_notify_publish of one event. */
void rt_test_notify_publish_one (rt_db_t *db, const char *type, const char *key,
                                 const ProtobufCMessage *payload, const char *producer,
                                 const char *id);

/* A NotificationRequested's fields; everything but customer and
 * template_name may be left zero. */
typedef struct {
    const char *customer;        /* the customer's id, also the envelope's key */
    const char *template_name;   /* the template */
    const char *const *vars;     /* its variables, name then value, NULL-terminated */
    Retain__V1__Channel channel; /* the channel asked for, UNSPECIFIED for notifyd's choice */
    const char *category;        /* NULL: "transactional" */
    int64_t not_before;          /* unix ms, 0: at once */
    int64_t expires_at;          /* unix ms, 0: never */
    const char *envelope_id;     /* NULL: a fresh one */
} rt_test_notify_request_t;

/* Publishes q as NotificationRequested from retain-loyaltyd on db, at most
 * 8 variables; its notification id (a fresh one when id is "", else id
 * as given) is id. */
void rt_test_notify_request (rt_db_t *db, const rt_test_notify_request_t *q,
                             char id[RT_UUID_STR_LEN + 1]);

/* --- what notifyd did --- */

/* What notifyd said on the bus about one message (a send's id). */
typedef struct {
    int delivered;      /* MessageDelivered events */
    int read;           /* those of them saying read */
    int failed;         /* MessageFailed events */
    bool permanent;     /* the last MessageFailed's */
    char code[64];      /* its error_code */
    char error[512];    /* its error */
    char external[128]; /* the last MessageDelivered's external id */
} rt_test_notify_said_t;

/* Reads bus.events for what retain-notifyd said about message_id. */
void rt_test_notify_said (PGconn *pg, const char *message_id, rt_test_notify_said_t *out);

/* rt_test_notify_said until it said anything, timeout_ms at most. */
void rt_test_notify_said_wait (PGconn *pg, const char *message_id, rt_test_notify_said_t *out,
                               int timeout_ms);

/* Waits up to timeout_ms until the send send_id has status; returns 1
 * then, else 0. */
long long rt_test_notify_status_wait (PGconn *pg, const char *send_id, const char *status,
                                      int timeout_ms);

#endif
