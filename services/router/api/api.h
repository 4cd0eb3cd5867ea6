/*
 * api: routerd's operator API (services/router/api/openapi.json is its
 * contract, served at /openapi.json).
 *
 * An rt_http_server on RETAIN_ROUTER_HTTP; every route behind rt_apikey's
 * hook for service "router", so a handler knows the operator and their
 * role from the principal ("<operator id>:<role>") without a lookup of
 * the key. Each worker thread has a PostgreSQL connection of its own, made
 * at its first request, reconnected at most once a second (a database
 * that is down costs a request a 503 "database", never a wait), with
 * identity's, routing's and the API's statements prepared on it. A reply
 * (POST /v1/conversations/{id}/messages) honours Idempotency-Key through
 * rt_http_idem_pg, shared by the replicas. routerd's /readyz is its
 * consumer's (rt_daemon's): the API does not add its workers' connections
 * to it, since a worker tries again only at its next request and a probe
 * withdrawn from traffic would never see PostgreSQL come back; each
 * request answers for itself (503).
 *
 * Who sees what. The schema gives an operator one team
 * (routing.operators.team_id), so an operator and a supervisor alike see
 * the conversations of their team: routed to it (conversations.team_id),
 * or held by one of its operators, or waiting with no team and nobody
 * (which any operator may be given). An admin sees everything. A
 * conversation the caller may not see is answered 404, as one that does
 * not exist, so ids of other teams' conversations leak nothing.
 *
 * Customers are the shop's, not a team's: any operator may read a card
 * (GET /v1/customers/{id}), search, edit the profile, merge, undo a merge
 * and reject a suggestion; the card lists only the customer's
 * conversations the caller may see, by the rule above. An absorbed
 * customer's id answers 200 with the survivor's card (its id the
 * survivor's; requested_id the id asked, merged_into the survivor), not a
 * redirect, so a console holding an old id keeps working; an edit or a
 * merge naming it is 409 "merged" (edit or merge the survivor). A merge
 * (POST /v1/customers/{id}/merge) honours Idempotency-Key as a reply does.
 *
 * The handlers run on the worker threads and block on their connection:
 * the statements are indexed lookups and short transactions.
 */
#ifndef ROUTER_API_H
#define ROUTER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_db.h"
#include "rt_metrics.h"

typedef struct api_t api_t;

/* What the API needs. */
typedef struct {
    const char *address;         /* "host:port" to listen on */
    const char *dsn;             /* PostgreSQL (copied) */
    int threads;                 /* worker threads */
    rt_metrics_t *metrics;       /* lent, outlives the API: the daemon's registry */
    int64_t stream_retention_ms; /* routing.stream kept this long for resumes; 0: 24 h */
    const char *default_country; /* ISO 3166 code national phone numbers are read in
                                    (copied; NULL: rt_phone's default) */
} api_config_t;

/* Applies the migrations the API's layers need beside routerd's own (the
 * API keys' and the Idempotency-Key store's) on db. 0, or -1 with err
 * filled. */
int api_migrate (rt_db_t *db, char *err, size_t errlen);

/* Binds the address and starts serving. NULL with err filled (a taken
 * port, out of memory). */
api_t *api_start (const api_config_t *config, char *err, size_t errlen);

/* The port it listens on (useful with port 0). */
int api_port (const api_t *self);

/* Stops serving (answers in flight are finished) and frees everything.
 * Safe on NULL; sets *self_p NULL. */
void api_stop (api_t **self_p);

/* The OpenAPI document, embedded at build time from openapi.json. */
extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;

#endif
