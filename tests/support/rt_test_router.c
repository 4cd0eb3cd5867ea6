/*
 * rt_test_router: the routerd tests' database, staff, replicas, publisher
 * and recounts (see rt_test_router.h).
 */
#include "rt_test_router.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "identity.h"
#include "rt_bus.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_migrate.h"
#include "rt_outbox.h"

/* A query's text once printf has filled it. */
#define S_SQL_MAX 8192

/* What routing and the merge tests write, in several scripts, with what
 * looks like SQL and HTML: stored verbatim or not at all. */
#define S_INBOUND_TEXT "Where is my parcel? Де моя посилка? <b>'; DROP TABLE x;--"
#define S_REPLY_TEXT   "It left the warehouse today"

static void
s_vformat (char *out, size_t outlen, const char *fmt, va_list ap)
{
    int n = vsnprintf (out, outlen, fmt, ap);
    if (n < 0 || (size_t)n >= outlen)
        fail_msg ("a query longer than %zu bytes: %.80s...", outlen - 1, fmt);
}

void
rt_test_router_sql (PGconn *pg, const char *fmt, ...)
{
    char sql[S_SQL_MAX];
    va_list ap;
    va_start (ap, fmt);
    s_vformat (sql, sizeof sql, fmt, ap);
    va_end (ap);
    rt_test_pg_exec (pg, sql);
}

long long
rt_test_router_long (PGconn *pg, const char *fmt, ...)
{
    char sql[S_SQL_MAX];
    va_list ap;
    va_start (ap, fmt);
    s_vformat (sql, sizeof sql, fmt, ap);
    va_end (ap);
    return rt_test_pg_long (pg, sql);
}

void
rt_test_router_text (PGconn *pg, char *out, size_t outlen, const char *fmt, ...)
{
    char sql[S_SQL_MAX];
    va_list ap;
    PGresult *res;
    va_start (ap, fmt);
    s_vformat (sql, sizeof sql, fmt, ap);
    va_end (ap);
    res = PQexec (pg, sql);
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("%s: %s", sql, PQerrorMessage (pg));
    snprintf (out, outlen, "%s", PQntuples (res) > 0 ? PQgetvalue (res, 0, 0) : "");
    PQclear (res);
}

rt_db_t *
rt_test_router_connect (const rt_test_router_t *t, const char *app)
{
    char err[512];
    rt_db_t *db = rt_db_new (t->dsn, app);
    assert_non_null (db);
    if (rt_db_connect (db) != 0)
        fail_msg ("connecting %s: %s", app, rt_db_error (db));
    if (rt_outbox_prepare (db) != 0)
        fail_msg ("rt_outbox_prepare: %s", rt_db_error (db));
    if (identity_prepare (db, err, sizeof err) != 0)
        fail_msg ("identity_prepare: %s", err);
    if (t->opts.routing && routing_prepare (db, err, sizeof err) != 0)
        fail_msg ("routing_prepare: %s", err);
    return db;
}

/* "<name>-<suffix>" with dashes for underscores: the application name a
 * test watching pg_stat_activity looks for (rt_test_router.h). */
static void
s_app (char *out, size_t outlen, const char *name, const char *suffix)
{
    snprintf (out, outlen, "%s-%s", name, suffix);
    for (char *p = out; *p; p++) {
        if (*p == '_')
            *p = '-';
    }
}

void
rt_test_router_open (rt_test_router_t *t, const char *name, const rt_test_router_opts_t *opts)
{
    static const rt_test_router_opts_t routing_only = {.routing = true};
    char err[512], app[128];
    rt_db_t *db;

    memset (t, 0, sizeof *t);
    t->opts = opts ? *opts : routing_only;
    if (t->opts.clock) {
        snprintf (t->clock, sizeof t->clock, "%s/%s.clock", rt_test_dir (), name);
        assert_int_equal (rt_clock_file_set (t->clock, 0, 0), 0);
        assert_int_equal (rt_clock_init (t->clock), 0);
    }
    rt_test_db_create (name, t->dsn, sizeof t->dsn);
    s_app (app, sizeof app, name, "migrate");
    db = rt_db_new (t->dsn, app);
    assert_non_null (db);
    assert_int_equal (rt_db_connect (db), 0);
    /* crm's foreign keys come before routing's, as routerd applies them. */
    if (rt_outbox_migrate (db, err, sizeof err) < 0)
        fail_msg ("outbox migrations: %s", err);
    if (rt_migrate_apply (db, &rt_migrations_crm, err, sizeof err) < 1)
        fail_msg ("crm migrations: %s", err);
    if (t->opts.routing && rt_migrate_apply (db, &rt_migrations_routing, err, sizeof err) < 1)
        fail_msg ("routing migrations: %s", err);
    rt_db_destroy (&db);
    s_app (app, sizeof app, name, "a");
    t->db = rt_test_router_connect (t, app);
    if (t->opts.second) {
        s_app (app, sizeof app, name, "b");
        t->db2 = rt_test_router_connect (t, app);
    }
    t->pg = rt_test_pg (t->dsn);
}

void
rt_test_router_close (rt_test_router_t *t)
{
    rt_db_destroy (&t->db);
    rt_db_destroy (&t->db2);
    if (t->pg) {
        PQfinish (t->pg);
        t->pg = NULL;
    }
}

void
rt_test_router_clean (rt_test_router_t *t)
{
    char tables[S_SQL_MAX / 2];
    /* Every table the migrations made, so a table a later migration adds
     * is emptied too; their own bookkeeping stays. */
    rt_test_router_text (t->pg, tables, sizeof tables,
                         "SELECT string_agg(format('%%I.%%I', schemaname, tablename), ', ')"
                         " FROM pg_tables WHERE schemaname IN ('crm', 'routing')"
                         " AND tablename <> 'schema_migrations'");
    if (!tables[0])
        fail_msg ("no table in crm or routing to empty");
    rt_test_router_sql (t->pg, "TRUNCATE %s, outbox.pending CASCADE", tables);
}

void
rt_test_router_clock_reset (const rt_test_router_t *t)
{
    if (!t->clock[0])
        fail_msg ("rt_test_router_clock_reset: opened without a clock");
    assert_int_equal (rt_clock_file_set (t->clock, 0, 0), 0);
}

void
rt_test_router_clock_advance (const rt_test_router_t *t, int64_t ms)
{
    int64_t wall, mono;
    if (!t->clock[0])
        fail_msg ("rt_test_router_clock_advance: opened without a clock");
    rt_clock_offsets (&wall, &mono);
    assert_int_equal (rt_clock_file_set (t->clock, wall + ms, mono + ms), 0);
}

void
rt_test_router_uuid (char id[RT_UUID_STR_LEN + 1])
{
    rt_uuid_t u = rt_uuid_v7 ();
    rt_uuid_format (&u, id);
}

void
rt_test_router_team (PGconn *pg, const char *id, const char *policy, long long wait_ms)
{
    rt_test_router_sql (pg,
                        "INSERT INTO routing.teams (id, name, policy, manager_wait_ms)"
                        " VALUES ('%s', '%s', '%s', %lld)",
                        id, id, policy, wait_ms);
}

void
rt_test_router_operator (const rt_test_router_t *t, const char *id, const char *team, int capacity,
                         bool online, const char *languages)
{
    char err[512];
    rt_test_router_sql (t->pg,
                        "INSERT INTO routing.operators (id, name, team_id, capacity, languages)"
                        " VALUES ('%s', '%s', '%s', %d, '%s')",
                        id, id, team, capacity, languages ? languages : "{}");
    if (!online)
        return;
    assert_int_equal (rt_db_begin (t->db), 0);
    if (routing_presence (t->db, id, "online", rt_clock_now_ms (), NULL, err, sizeof err) !=
        ROUTING_OK)
        fail_msg ("presence: %s", err);
    assert_int_equal (rt_db_commit (t->db), 0);
}

void
rt_test_router_customer (PGconn *pg, char id[RT_UUID_STR_LEN + 1], const char *manager,
                         const char *channels)
{
    char list[256], *save = NULL, *ch;
    rt_test_router_uuid (id);
    if (manager)
        rt_test_router_sql (pg, "INSERT INTO crm.customers (id, manager) VALUES ('%s', '%s')", id,
                            manager);
    else
        rt_test_router_sql (pg, "INSERT INTO crm.customers (id) VALUES ('%s')", id);
    snprintf (list, sizeof list, "%s", channels ? channels : "");
    for (ch = strtok_r (list, ",", &save); ch; ch = strtok_r (NULL, ",", &save))
        rt_test_router_sql (pg,
                            "INSERT INTO crm.identities (channel, inbox, external_user_id,"
                            " customer_id) VALUES ('%s', 'main', '%s', '%s')",
                            ch, id, id);
}

routing_status_t
rt_test_router_inbound (rt_db_t *db, const char *customer, Retain__V1__Channel channel,
                        const char *event, const char *event_id, routing_inbound_result_t *out)
{
    char id[RT_UUID_STR_LEN + 1], err[512] = "";
    routing_inbound_t in;
    routing_status_t st;

    if (!event_id) {
        rt_test_router_uuid (id);
        event_id = id;
    }
    memset (&in, 0, sizeof in);
    in.customer_id = customer;
    in.event_id = event_id;
    in.channel = channel;
    in.inbox = "main";
    in.event = event;
    in.text = S_INBOUND_TEXT;
    if (rt_db_begin (db) != 0)
        return ROUTING_ERR_DB;
    st = routing_inbound (db, &in, out, err, sizeof err);
    if (st != ROUTING_OK || rt_db_commit (db) != 0) {
        rt_db_rollback (db);
        return st != ROUTING_OK ? st : ROUTING_ERR_DB;
    }
    return ROUTING_OK;
}

routing_status_t
rt_test_router_reply (rt_db_t *db, const char *conv, const char *op, Retain__V1__Channel channel,
                      const char *message_id, routing_outbound_result_t *out)
{
    char id[RT_UUID_STR_LEN + 1], err[512] = "";
    routing_outbound_t in;
    routing_status_t st;

    if (!message_id) {
        rt_test_router_uuid (id);
        message_id = id;
    }
    memset (&in, 0, sizeof in);
    in.conversation_id = conv;
    in.operator_id = op;
    in.message_id = message_id;
    in.text = S_REPLY_TEXT;
    in.channel = channel;
    if (rt_db_begin (db) != 0)
        return ROUTING_ERR_DB;
    st = routing_outbound (db, &in, out, err, sizeof err);
    if (st == ROUTING_OK)
        st = routing_outbound_emit (db, &in, out, err, sizeof err);
    if (st != ROUTING_OK || rt_db_commit (db) != 0) {
        rt_db_rollback (db);
        return st != ROUTING_OK ? st : ROUTING_ERR_DB;
    }
    return ROUTING_OK;
}

/* --- retain-routerd replicas --- */

void
rt_test_routerd_restart (rt_test_routerd_t *r)
{
    char a_dsn[1100], a_pub[96], a_admin[64], a_http[64], a_member[64];
    char *argv[24];
    size_t n = 0;
    snprintf (a_dsn, sizeof a_dsn, "--pg-dsn=%s", r->dsn);
    snprintf (a_pub, sizeof a_pub, "--pub=%s", r->pub);
    snprintf (a_admin, sizeof a_admin, "--admin=127.0.0.1:%d", r->admin_port);
    snprintf (a_http, sizeof a_http, "--http=127.0.0.1:%d", r->http_port);
    snprintf (a_member, sizeof a_member, "--member=%s", r->member);
    argv[n++] = "retain-routerd";
    argv[n++] = a_dsn;
    argv[n++] = a_pub;
    argv[n++] = a_admin;
    argv[n++] = a_http;
    argv[n++] = a_member;
    for (size_t i = 0; i < r->nextra; i++)
        argv[n++] = r->extra[i];
    argv[n] = NULL;
    r->pid = rt_test_spawn ("retain-routerd", argv, NULL, r->log);
    /* Under the sanitizers, with a busy PostgreSQL, a start takes seconds. */
    if (!rt_test_wait_ready (r->admin_port, 60000))
        fail_msg ("retain-routerd %s did not become ready; see %s/%s", r->member, rt_test_dir (),
                  r->log);
}

void
rt_test_routerd_start (rt_test_routerd_t *r, const char *dsn, const char *pub, const char *member,
                       const char *log, const char *const extra[])
{
    size_t cap = sizeof r->extra / sizeof *r->extra;
    if (!r->admin_port)
        r->admin_port = rt_test_free_port ();
    if (!r->http_port)
        r->http_port = rt_test_free_port ();
    snprintf (r->dsn, sizeof r->dsn, "%s", dsn);
    snprintf (r->pub, sizeof r->pub, "%s", pub);
    snprintf (r->member, sizeof r->member, "%s", member);
    snprintf (r->log, sizeof r->log, "%s", log);
    r->nextra = 0;
    for (size_t i = 0; extra && extra[i]; i++) {
        if (i >= cap || strlen (extra[i]) >= sizeof r->extra[i])
            fail_msg ("rt_test_routerd_start: at most %zu arguments of %zu bytes", cap,
                      sizeof r->extra[i] - 1);
        snprintf (r->extra[i], sizeof r->extra[i], "%s", extra[i]);
        r->nextra++;
    }
    rt_test_routerd_restart (r);
}

void
rt_test_routerd_kill (rt_test_routerd_t *r)
{
    int status;
    if (r->pid <= 0)
        fail_msg ("rt_test_routerd_kill: %s is not running", r->member);
    status = rt_test_kill (r->pid, SIGKILL);
    r->pid = 0;
    if (!WIFSIGNALED (status) || WTERMSIG (status) != SIGKILL)
        fail_msg ("retain-routerd %s did not die of SIGKILL (status %d); see %s/%s", r->member,
                  status, rt_test_dir (), r->log);
}

void
rt_test_routerd_stop (rt_test_routerd_t *r)
{
    /* Marked stopped before the check, which may end the test. */
    pid_t pid = r->pid;
    r->pid = 0;
    if (pid > 0)
        rt_test_stop (pid, "retain-routerd");
}

long long
rt_test_routerd_owned (PGconn *pg, const char *stream, const char *member)
{
    const char *v[2] = {stream, member};
    PGresult *res = PQexecParams (pg,
                                  "SELECT count(*) FROM bus.offsets WHERE grp = 'router'"
                                  " AND stream = $1 AND owner = $2",
                                  2, NULL, v, NULL, NULL, 0);
    long long n;
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("bus.offsets: %s", PQerrorMessage (pg));
    n = atoll (PQgetvalue (res, 0, 0));
    PQclear (res);
    return n;
}

long long
rt_test_routerd_handled (PGconn *pg, const char *stream)
{
    const char *v[1] = {stream};
    PGresult *res = PQexecParams (pg,
                                  "SELECT COALESCE(sum(pseq), 0) FROM bus.offsets"
                                  " WHERE grp = 'router' AND stream = $1",
                                  1, NULL, v, NULL, NULL, 0);
    long long n;
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("bus.offsets: %s", PQerrorMessage (pg));
    n = atoll (PQgetvalue (res, 0, 0));
    PQclear (res);
    return n;
}

/* --- publishing --- */

void
rt_test_router_publish (rt_db_t *db, Retain__V1__InboundMessage *const msgs[], size_t n,
                        char (*ids)[RT_UUID_STR_LEN + 1])
{
    ProtobufCBinaryData *packed = calloc (n ? n : 1, sizeof *packed);
    assert_non_null (packed);
    for (size_t i = 0; i < n; i++) {
        const Retain__V1__InboundMessage *m = msgs[i];
        char key[512];
        Retain__V1__Envelope *env;
        snprintf (key, sizeof key, "%s:%s:%s", rt_channel_name (m->channel), m->inbox,
                  m->external_user_id);
        env = rt_envelope_new ("InboundMessage", key, &m->base, "retain-ingestd");
        assert_non_null (env);
        packed[i].data = rt_envelope_pack (env, &packed[i].len);
        assert_non_null (packed[i].data);
        if (ids)
            snprintf (ids[i], sizeof ids[i], "%s", env->id);
        rt_envelope_free (env);
    }
    if (rt_db_begin (db) != 0 || rt_outbox_append_batch (db, packed, n) != 0 ||
        rt_db_commit (db) != 0) {
        char why[512];
        snprintf (why, sizeof why, "%s", rt_db_error (db));
        rt_db_rollback (db);
        fail_msg ("publishing %zu InboundMessages: %s", n, why);
    }
    for (size_t i = 0; i < n; i++)
        free (packed[i].data);
    free (packed);
}

/* --- the promises, as recounts --- */

long long
rt_test_router_misplaced (PGconn *pg)
{
    return rt_test_pg_long (pg, "SELECT count(*) FROM bus.events e WHERE e.type = 'InboundMessage'"
                                " AND (SELECT count(*) FROM routing.timeline t"
                                " WHERE t.event_id = e.id) <> 1");
}

long long
rt_test_router_doubly_open (PGconn *pg)
{
    return rt_test_pg_long (pg, "SELECT count(*) FROM (SELECT customer_id FROM"
                                " routing.conversations WHERE status <> 'resolved'"
                                " GROUP BY 1 HAVING count(*) > 1) x");
}

long long
rt_test_router_miscounted (PGconn *pg)
{
    return rt_test_pg_long (
        pg, "SELECT count(*) FROM routing.conversations c, LATERAL (SELECT count(*) AS n,"
            " min(t.occurred_at) AS since FROM routing.timeline t WHERE t.conversation_id = c.id"
            " AND t.counted AND t.seq > COALESCE((SELECT max(o.seq) FROM routing.timeline o"
            " WHERE o.conversation_id = c.id AND o.kind = 'outbound'), 0)) r"
            " WHERE c.unanswered <> r.n OR c.waiting_since IS DISTINCT FROM r.since");
}

long long
rt_test_router_over_capacity (PGconn *pg)
{
    return rt_test_pg_long (pg, "SELECT count(*) FROM routing.operators o WHERE o.open_count <>"
                                " (SELECT count(*) FROM routing.conversations c"
                                " WHERE c.assignee = o.id AND c.status <> 'resolved')"
                                " OR o.open_count > o.capacity");
}

/* --- staff --- */

void
rt_test_router_ctl_operator (const char *dsn, const char *id, const char *team, const char *role,
                             const char *capacity, char key[80])
{
    const char *args[] = {"operator", "add",    "--id", id,           "--name", id,  "--team",
                          team,       "--role", role,   "--capacity", capacity, NULL};
    char *out = NULL;
    const char *t;
    if (rt_test_retainctl (dsn, args, &out) != 0)
        fail_msg ("retainctl operator add --id %s: %s", id, out ? out : "");
    t = strstr (out, "token: ");
    if (!t || sscanf (t + 7, "%79s", key) != 1 || strncmp (key, "rk_", 3) != 0)
        fail_msg ("retainctl operator add --id %s printed no token: %s", id, out);
    free (out);
}
