/*
 * server: the webhook HTTP server of ingestd.
 *
 * Routes:
 *   /hooks/telegram/{inbox}                 Telegram Bot API updates
 *   /hooks/viber/{inbox}                    Viber REST bot callbacks
 *   /hooks/messenger|instagram|whatsapp/{inbox}  Meta webhooks (GET handshake, POST)
 *   /hooks/twilio/{inbox}                   Twilio SMS / WhatsApp
 *   /hooks/mailgun/{inbox}                  Mailgun inbound mail
 *   /hooks/phone/{inbox}                    PBX call events
 *   /chat/{inbox}/messages                  the shop's web chat (CORS)
 *
 * Several worker threads, each with its own libevent loop, accept on one
 * listening socket. A request is verified and parsed by its channel's
 * handler on the worker; what it carries goes to the writer, and the
 * answer waits for the writer's COMMIT: 200 then, 503 if it failed or took
 * longer than the request timeout (the provider retries; de-duplication
 * makes the retry harmless).
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
    const char *public_url; /* the base URL providers call, e.g. "https://hooks.example.com" */
    inboxes_t *inboxes;     /* lent */
    writer_t *writer;       /* lent */
    rt_metrics_t *metrics;  /* lent */
} server_config_t;

/* Binds and starts the workers. NULL with err filled on failure. */
server_t *server_start (const server_config_t *config, char *err, size_t errlen);

/* The port bound. */
int server_port (const server_t *self);

/* Stops accepting, answers what is in flight (waiting for the writer) and
 * frees the server. */
void server_stop (server_t **self_p);

#endif
