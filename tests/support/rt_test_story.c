/*
 * rt_test_story: the stories' world, its start and stop, and the steps
 * the stories share (see rt_test_story.h).
 */
#include "rt_test_story.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Room for a daemon's further arguments: the clock's, the fake's, the
 * story's, the NULL. */
#define S_EXTRA_MAX 16

/* Into out (S_EXTRA_MAX): first when not NULL, then extra. */
static void
s_args (const char *out[S_EXTRA_MAX], const char *first, const char *const *extra)
{
    size_t n = 0;
    if (first)
        out[n++] = first;
    for (; extra && *extra; extra++) {
        assert_true (n < S_EXTRA_MAX - 1);
        out[n++] = *extra;
    }
    out[n] = NULL;
}

void
rt_test_story_open (rt_test_story_t *w, const rt_test_story_opts_t *opts)
{
    assert_non_null (opts->name);
    memset (w, 0, sizeof *w);
    w->opts = *opts;
    rt_test_db_create (opts->name, w->dsn, sizeof w->dsn);
    w->pg = rt_test_pg (w->dsn);
    if (opts->clock)
        snprintf (w->clock, sizeof w->clock, "%s/%s.clock", rt_test_dir (), opts->name);
    if (opts->fake)
        w->fake = rt_fake_provider_start ();
}

/* <name>-<daemon>.log into log (128 bytes). */
static void
s_log (const rt_test_story_t *w, const char *daemon, char log[128])
{
    snprintf (log, 128, "%s-%s.log", w->opts.name, daemon);
}

void
rt_test_story_start (rt_test_story_t *w)
{
    const rt_test_story_opts_t *o = &w->opts;
    char log[128], clock[1100], fake[256];
    const char *clock_arg = w->clock[0] ? clock : NULL;
    const char *extra[S_EXTRA_MAX];
    snprintf (clock, sizeof clock, "--clock-file=%s", w->clock);

    s_log (w, "busd", log);
    s_args (extra, clock_arg, NULL);
    rt_test_busd_start (&w->busd, w->dsn, log, extra, true);
    s_log (w, "routerd", log);
    s_args (extra, clock_arg, o->routerd_extra);
    rt_test_routerd_start (&w->routerd, w->dsn, w->busd.pub, o->routerd_member, log, extra);
    s_log (w, "ingestd", log);
    s_args (extra, clock_arg, NULL);
    rt_test_ingestd_start (&w->ingestd, w->dsn, log, NULL, extra);
    if (o->notifyd_member) {
        /* notifyd follows the clock through its own parameter. */
        if (o->notifyd_fake) {
            assert_non_null (w->fake);
            snprintf (fake, sizeof fake, "%s=%s", o->notifyd_fake, rt_fake_provider_base (w->fake));
        }
        s_log (w, "notifyd", log);
        s_args (extra, o->notifyd_fake ? fake : NULL, o->notifyd_extra);
        rt_test_notifyd_start (&w->notifyd, w->dsn, w->busd.pub, w->clock, o->notifyd_member, log,
                               extra);
    }
    rt_test_api_open (&w->api, o->name, w->routerd.http_port);

    if (o->team) {
        const char *team[] = {"team", "add", "--id", o->team, "--name", o->team_name, NULL};
        rt_test_story_ctl (w, team, "team add");
        for (const rt_test_story_operator_t *op = o->operators; op && op->id; op++)
            rt_test_router_ctl_operator (w->dsn, op->id, o->team, op->role, "8", op->key);
    }
}

void
rt_test_story_stop (rt_test_story_t *w)
{
    if (w->pg) {
        PQfinish (w->pg);
        w->pg = NULL;
    }
    rt_test_notifyd_stop (&w->notifyd);
    if (w->ingestd.pid > 0) {
        rt_test_stop (w->ingestd.pid, "retain-ingestd");
        w->ingestd.pid = 0;
    }
    rt_test_routerd_stop (&w->routerd);
    if (w->busd.pid > 0) {
        rt_test_stop (w->busd.pid, "retain-busd");
        w->busd.pid = 0;
    }
    rt_fake_provider_stop (&w->fake);
}

void
rt_test_story_ctl (const rt_test_story_t *w, const char *const args[], const char *what)
{
    char *out = NULL;
    if (rt_test_retainctl (w->dsn, args, &out) != 0)
        fail_msg ("retainctl %s: %s", what, out ? out : "");
    if (w->opts.secret && out && strstr (out, w->opts.secret))
        fail_msg ("retainctl %s printed the token: %s", what, out);
    free (out);
}

void
rt_test_story_inbox (const rt_test_story_t *w, const char *id, const char *channel,
                     const char *secret)
{
    const char *args[] = {"inbox", "add",      "--id", id,  "--channel",
                          channel, "--secret", secret, NULL};
    char what[128];
    snprintf (what, sizeof what, "inbox add --id %s", id);
    rt_test_story_ctl (w, args, what);
}

void
rt_test_story_publish (const rt_test_story_t *w, const char *type, const char *key,
                       const char *json, const char *producer)
{
    char log[128];
    s_log (w, "publish", log);
    rt_test_retainctl_publish (w->busd.ingress, log, type, key, json, producer);
}

void
rt_test_story_meta_post (const rt_test_story_t *w, const char *secret, const char *path,
                         const char *body)
{
    rt_test_reply_t reply;
    long status = rt_test_ingest_meta_post (w->ingestd.http_port, secret, path, body, &reply);
    if (status != 200)
        fail_msg ("POST %s: %ld %s", path, status, reply.body);
}

void
rt_test_story_telegram_post (const rt_test_story_t *w, const char *inbox, const char *secret,
                             const char *body)
{
    char path[128], token[256];
    const char *h[] = {"Content-Type: application/json", token, NULL};
    rt_test_reply_t reply;
    long status;
    snprintf (path, sizeof path, "/hooks/telegram/%s", inbox);
    snprintf (token, sizeof token, "X-Telegram-Bot-Api-Secret-Token: %s", secret);
    status =
        rt_test_http_request (w->ingestd.http_port, "POST", path, body, strlen (body), h, &reply);
    if (status != 200)
        fail_msg ("POST %s: %ld %s", path, status, reply.body);
}
