/*
 * api_int: what api.c (the server, the worker's connection, the caller,
 * problem answers, JSON of rows, the query string), api_conversations.c
 * (the conversations' routes), api_customers.c (the customers' routes),
 * api_stream.c (the event stream) and api_transcript.c (links to a
 * transcript) share. Not part of the contract: api.h is.
 *
 * The statements live in api.c (api_customers.c and api_transcript.c
 * keep their own, registered from api.c's s_register), prepared on every
 * worker's connection; a handler runs them by name ("api_list",
 * "api_timeline", "api_sent").
 */
#ifndef ROUTER_API_INT_H
#define ROUTER_API_INT_H

#include <jansson.h>
#include <libpq-fe.h>

#include "api.h"
#include "routing.h"
#include "rt_apikey.h"
#include "rt_db.h"
#include "rt_form.h"
#include "rt_http_server.h"
#include "rt_jsonw.h"

/* A request's caller, once api_begin has let it in. */
typedef struct {
    rt_db_t *db;                       /* the worker's connection, up */
    char who[ROUTING_OP_MAX + 1];      /* the operator id */
    char role[RT_APIKEY_ROLE_MAX + 1]; /* operator, supervisor, admin */
    char team[ROUTING_OP_MAX + 1];     /* their team */
    const char *scope;                 /* team to restrict to; NULL for an admin */
    const char *country;               /* national phone numbers' country; NULL: rt_phone's */
} api_caller_t;

/* Columns of a conversation row (api.c's S_CONV_COLS, the rows of
 * api_conv_get and of the "api_list" statement). */
enum {
    C_ID,
    C_CUSTOMER,
    C_NAME,
    C_CHANNEL,
    C_ASSIGNEE,
    C_TEAM,
    C_STATUS,
    C_UNANSWERED,
    C_WAITING,
    C_VERSION,
    C_CREATED,
    C_SNOOZED,
    C_LM_KIND,
    C_LM_TEXT,
    C_LM_CHANNEL,
    C_LM_AT,
    C_SLA_KIND,     /* the running SLA clock due next: its kind, NULL for none */
    C_SLA_DUE,      /* and its due time */
    C_FLAGS,        /* its flags as a JSON array ("supervisor": escalated) */
    C_SLA_BREACHED, /* a clock breached and not stopped yet */
    C_KEY
};

/* --- api.c --- */

/* This worker's connection, up, statements prepared; NULL when the
 * database cannot be had now (answer 503). For a route without a caller
 * (a transcript's link); the others have api_begin's. */
rt_db_t *api_db (api_t *self);

/* Lets the request in or answers it (401 or 503): 0 with caller filled,
 * or -1. */
int api_begin (api_t *self, rt_http_request_t *req, api_caller_t *caller);

/* A problem with extra members (steals ext's references; ext may be NULL). */
void api_problem_ext (rt_http_request_t *req, int status, const char *suffix, const char *detail,
                      json_t *ext);

/* Answers a routing refusal with its status (422, 404, 409), anything
 * else as 503 "database", logged. */
void api_routing_problem (rt_http_request_t *req, routing_status_t st, const char *err);

/* Answers 503 "database" for a failed statement on db, logged. */
void api_db_problem (rt_http_request_t *req, rt_db_t *db);

/* A text column as a JSON string, or null when SQL NULL. New reference. */
json_t *api_str_or_null (PGresult *res, int row, int col);

/* A conversation row (columns C_*) as the API shows it, written into w:
 * the one place that says its shape (inboxes of a hundred rows are
 * written, not built as jansson trees: rt_jsonw.h says why). */
void api_conv_write (rt_jsonw_t *w, PGresult *res, int row);

/* The same as a jansson value, for answers built as trees (a customer's
 * card). New reference, NULL when out of memory. */
json_t *api_conv_json (PGresult *res, int row);

/* Answers status with the JSON written in b (freed) by w, or 500 when w
 * failed. */
int api_reply_written (rt_http_request_t *req, int status, rt_buf_t *b, const rt_jsonw_t *w);

/* The conversation `id` as the caller may see it: the row (owned), or
 * NULL having answered 404 or 503. */
PGresult *api_conv_get (rt_http_request_t *req, const api_caller_t *caller, const char *id);

/* Answers `status` with the conversation as it is now. */
void api_reply_conv (rt_http_request_t *req, const api_caller_t *caller, const char *id,
                     int status);

/* The page size asked (default 50, at most 200), or -1 having answered 400. */
int api_limit (rt_http_request_t *req, const rt_form_t *q);

/* The request's query string parsed (owned), or NULL having answered 400. */
rt_form_t *api_query (rt_http_request_t *req);

/* --- api_conversations.c: the handlers api_start routes (arg: the api_t) --- */

/* GET /v1/conversations */
void api_list (rt_http_request_t *req, void *arg);
/* GET /v1/conversations/{id} */
void api_get (rt_http_request_t *req, void *arg);
/* GET /v1/conversations/{id}/messages */
void api_timeline (rt_http_request_t *req, void *arg);
/* POST /v1/conversations/{id}/messages (behind Idempotency-Key) */
void api_post_message (rt_http_request_t *req, void *arg);
/* POST /v1/conversations/{id}/assign */
void api_assign (rt_http_request_t *req, void *arg);
/* POST /v1/conversations/{id}/resolve */
void api_resolve (rt_http_request_t *req, void *arg);
/* POST /v1/conversations/{id}/snooze */
void api_snooze (rt_http_request_t *req, void *arg);
/* POST /v1/conversations/{id}/reopen */
void api_reopen (rt_http_request_t *req, void *arg);
/* PUT /v1/operators/me/presence */
void api_presence (rt_http_request_t *req, void *arg);

/* --- api_customers.c: the customers' routes (arg: the api_t) --- */

/* Registers the customers' statements with db, the card's (card_prepare)
 * and routing's merge hooks among them: once per worker connection, after
 * identity_prepare and routing_prepare (s_register). 0, or -1 with err
 * filled. */
int api_customers_prepare (rt_db_t *db, char *err, size_t errlen);

/* GET /v1/customers/{id} */
void api_customer_get (rt_http_request_t *req, void *arg);
/* GET /v1/customers?phone=|email=|q= */
void api_customer_list (rt_http_request_t *req, void *arg);
/* PATCH /v1/customers/{id} */
void api_customer_patch (rt_http_request_t *req, void *arg);
/* POST /v1/customers/{id}/merge (behind Idempotency-Key) */
void api_customer_merge (rt_http_request_t *req, void *arg);
/* POST /v1/merges/{id}/undo */
void api_merge_undo (rt_http_request_t *req, void *arg);
/* POST /v1/suggestions/{id}/reject */
void api_suggestion_reject (rt_http_request_t *req, void *arg);

/* --- api_stream.c: GET /v1/stream and the feed behind it --- */

/* The feed: a reader thread with a connection of its own on dsn (copied),
 * LISTENing on routing_stream, deleting rows older than retention_ms (0:
 * 24 hours); metrics (may be NULL) gets the gauge
 * retain_router_stream_subscribers. NULL with err filled. */
typedef struct api_stream_t api_stream_t;
api_stream_t *api_stream_new (const char *dsn, int64_t retention_ms, rt_metrics_t *metrics,
                              char *err, size_t errlen);

/* Stops the reader (nothing more is posted to the workers); before the
 * server is destroyed, which then ends every stream. Safe on NULL. */
void api_stream_stop (api_stream_t *self);

/* Stops it when still running and frees every subscriber: after the
 * server is destroyed. Safe on NULL; sets *self_p NULL. */
void api_stream_destroy (api_stream_t **self_p);

/* The feed of the API (api.c). */
api_stream_t *api_streams (api_t *self);

/* GET /v1/stream */
void api_stream_get (rt_http_request_t *req, void *arg);
/* --- api_transcript.c --- */

/* Registers the transcript's statements on db. 0 or -1. */
int api_transcript_prepare (rt_db_t *db);
/* POST /v1/conversations/{id}/transcript-link */
void api_transcript_link (rt_http_request_t *req, void *arg);
/* GET /v1/transcripts/{token} (no key: the link is the credential) */
void api_transcript_open (rt_http_request_t *req, void *arg);

#endif
