/*
 * rt_test_story: the world the product's stories (tests/e2e) run in.
 *
 * A database of the story's own and the story's connection to it;
 * optionally a clock file every daemon follows (the story moves it, this
 * process keeps the real time) and the shared fake of the providers
 * (rt_test_fake_provider); then retain-busd, retain-routerd,
 * retain-ingestd and, when the story sends, retain-notifyd pointed at the
 * fake; routerd's operator API opened for the OpenAPI check (rt_test_api);
 * a team and its operators made with retainctl, as an administrator makes
 * them. Every log is <name>-<daemon>.log under rt_test_dir.
 *
 * A story opens its world (the database, the clock, the fake), writes
 * what must be there before the daemons start (migrations, inboxes,
 * sending accounts), starts it, and stops it in its teardown. Around
 * that, the steps several stories take alike: retainctl runs that fail
 * the test with their output, an inbox, a shop's event published with
 * retainctl, webhooks signed as Meta and Telegram sign. Built on rt_test,
 * rt_test_api, rt_test_ingest, rt_test_router and rt_test_notify (the
 * stories ask for routerd's folder, as rt_test_router.h does). Setup
 * errors fail the test (cmocka).
 */
#ifndef RT_TEST_STORY_H
#define RT_TEST_STORY_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "rt_test.h"
#include "rt_test_api.h"
#include "rt_test_fake_provider.h"
#include "rt_test_ingest.h"
#include "rt_test_notify.h"
#include "rt_test_router.h"

/* An operator of the story's team, made with `retainctl operator add`
 * (capacity 8). */
typedef struct {
    const char *id;   /* "op-anna" */
    const char *role; /* operator, supervisor or admin */
    char *key;        /* where its API key goes (80 bytes, the story's) */
} rt_test_story_operator_t;

/* What differs between the stories' worlds. Every array is NULL-terminated
 * and may be NULL. */
typedef struct {
    const char *name;           /* the database <name>_<pid>, the logs, the answers file */
    bool clock;                 /* a clock file (<rt_test_dir>/<name>.clock) for the daemons */
    bool fake;                  /* the shared fake of the providers */
    const char *routerd_member; /* routerd's --member, the owner in bus.offsets */
    const char *const *routerd_extra; /* routerd's further arguments ("--tick=200ms") */
    const char *notifyd_member;       /* notifyd's --member; NULL: no notifyd */
    const char *notifyd_fake;         /* notifyd's flag for the fake's address ("--meta-api") */
    const char *const *notifyd_extra; /* notifyd's further arguments, after that flag */
    const char *team;                 /* the team's id, "care"; NULL: no team, no operators */
    const char *team_name;            /* its name, "Customer care" */
    const rt_test_story_operator_t *operators; /* its operators, ended by one with id NULL */
    const char *secret; /* a text (a token) no retainctl run may print, NULL for none */
} rt_test_story_opts_t;

/* A story's world. */
typedef struct {
    rt_test_story_opts_t opts; /* what it was opened with */
    char dsn[1024];            /* the story's database */
    char clock[1024];          /* the clock file the daemons follow, "" for none */
    PGconn *pg;                /* the story's own look at it */
    rt_fake_provider_t *fake;  /* the providers' fake, NULL unless opts.fake */
    rt_test_busd_t busd;       /* the log */
    rt_test_routerd_t routerd; /* customers, conversations, the operator API */
    rt_test_ingestd_t ingestd; /* the webhooks */
    rt_test_notifyd_t notifyd; /* the sends; pid 0 unless opts.notifyd_member */
    rt_test_api_t api;         /* the operator API, every answer kept for the OpenAPI check */
} rt_test_story_t;

/* Zeroes *w, keeps *opts (it and what it points to are read until
 * rt_test_story_start returns), creates the database and connects w->pg;
 * with opts->clock names the clock file in w->clock (the story sets it
 * before starting the daemons); with opts->fake starts the fake. */
void rt_test_story_open (rt_test_story_t *w, const rt_test_story_opts_t *opts);

/* Starts busd, routerd, ingestd and (opts.notifyd_member) notifyd on w's
 * database, in that order, each waited for ready and following w's clock
 * when it has one; notifyd gets "<opts.notifyd_fake>=<the fake's
 * address>" first when opts.notifyd_fake is set. Then opens the operator
 * API's answers file (<name>-answers.jsonl) and adds opts.team and its
 * operators, their keys written where opts.operators say. */
void rt_test_story_start (rt_test_story_t *w);

/* Closes w->pg, stops notifyd, ingestd, routerd and busd, whichever runs
 * (each must exit 0), and the fake; a part never started is passed over,
 * so a teardown after a failed setup stops what there is. */
void rt_test_story_stop (rt_test_story_t *w);

/* Runs retainctl with args (as rt_test_retainctl) on w's database; fails
 * the test, naming `what` and with what it printed, unless it exits 0, or
 * when it printed opts.secret. */
void rt_test_story_ctl (const rt_test_story_t *w, const char *const args[], const char *what);

/* An inbox made with `retainctl inbox add`: id on channel, its webhooks
 * signed with secret. ingestd sees it within a second or so (it reloads
 * its inboxes every second). */
void rt_test_story_inbox (const rt_test_story_t *w, const char *id, const char *channel,
                          const char *secret);

/* Publishes an event as a shop's integration does: `retainctl publish`
 * into busd's ingress, of type, keyed key, its payload json, from
 * producer; output in <name>-publish.log. Fails the test unless it exits
 * 0 within 30 s. */
void rt_test_story_publish (const rt_test_story_t *w, const char *type, const char *key,
                            const char *json, const char *producer);

/* POSTs body to ingestd's path signed as Meta signs (under the app
 * secret); fails the test unless it is answered 200. */
void rt_test_story_meta_post (const rt_test_story_t *w, const char *secret, const char *path,
                              const char *body);

/* POSTs body to ingestd's Telegram webhook of inbox with the bot's secret
 * token (X-Telegram-Bot-Api-Secret-Token); fails the test unless it is
 * answered 200. */
void rt_test_story_telegram_post (const rt_test_story_t *w, const char *inbox, const char *secret,
                                  const char *body);

#endif
