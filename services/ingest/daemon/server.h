/*
 * server: the webhook HTTP server of ingestd.
 *
 * The routes are those of common/channel's inbox kinds (rt_channel.c:
 * /hooks/telegram/{inbox}, /hooks/twilio/{inbox} for Twilio's SMS and
 * WhatsApp, /chat/{inbox}/messages for the shop's web chat, ...), each
 * read by its provider's handler (channel.h's ingest_provider; the web
 * chat's with CORS). An inbox answers at its own kind's route only; at
 * any other it is an unknown inbox (404), like an id nobody configured.
 *
 * It stands on rt_http_server (common/http), which holds the door: header
 * and body deadlines, the per-address connection cap, the body limit, and
 * every malformed request refused before a handler sees it, all answered
 * as problem details. Several worker threads, each with its own libevent
 * loop, accept on one listening socket. A request is verified and parsed
 * by its provider's handler on the worker; what it carries goes to the
 * writer, and the answer waits for the writer's COMMIT: 200 then, 503 if
 * it failed or took longer than the request timeout (the provider
 * retries; de-duplication makes the retry harmless), the writer's status
 * (422) when the request can never be stored. Every error answer is RFC
 * 9457 problem details whose "detail" is the reason.
 *
 * Besides the webhooks it serves the links retain hands customers: the
 * one-click unsubscribe at /u/{token} (unsubscribe.h), answered with HTML
 * pages, its tokens verified with the link keys.
 */
#ifndef INGEST_SERVER_H
#define INGEST_SERVER_H

#include <stddef.h>

#include "inboxes.h"
#include "rt_metrics.h"
#include "writer.h"

typedef struct server_t server_t;

typedef struct {
    const char *address;    /* "127.0.0.1:8780"; port 0 for any free port */
    int threads;            /* worker threads */
    size_t max_body;        /* bytes; larger bodies get 413 */
    int request_timeout_ms; /* longest wait for the writer before 503 */
    int header_timeout_ms;  /* the request line and headers must arrive within this;
                               0: rt_http_server's default (10 s) */
    int per_address;        /* open connections per client address; 0: the default
                               (256) */
    const char *public_url; /* the base URL providers call, e.g. "https://hooks.example.com" */
    const char *link_keys;  /* the signed links' keys, "id:secret[,id:secret...]"
                               (rt_signed_keys_parse), every one verifying; "" or NULL:
                               none, every link answered 404 */
    inboxes_t *inboxes;     /* lent */
    writer_t *writer;       /* lent */
    rt_metrics_t *metrics;  /* lent */
} server_config_t;

/* Binds and starts the workers. NULL with err filled on failure, also when
 * a provider with a route has no handler (ingest_providers_check) or the
 * link keys do not parse. */
server_t *server_start (const server_config_t *config, char *err, size_t errlen);

/* The port bound. */
int server_port (const server_t *self);

/* Stops taking webhooks (those still arriving are answered 503), answers
 * what is in flight once the writer has settled it, and frees the server. */
void server_stop (server_t **self_p);

#endif
