/*
 * meta_int: what the files of Meta's channel share, and nothing else
 * includes (callers see meta_handle in channel.h only).
 *
 * The webhook is split by concern, each file with its own statics:
 *   meta.c           meta_handle: the handshake, the signature, the
 *                    notification's envelope, Messenger and Instagram
 *                    direct messages and receipts, and the helpers below
 *   meta_comments.c  Page feed comments, Instagram comments and mentions,
 *                    the origin of a comment or a story reply
 *   meta_whatsapp.c  WhatsApp Cloud API messages and statuses
 *
 * Every function that reads a notification takes the notification's
 * context and, on a refusal, fails ctx->result (ingest_fail) and returns
 * -1; meta_handle then drops whatever items were added before it.
 */
#ifndef META_INT_H
#define META_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel.h"

/* One notification being read. */
typedef struct {
    const ingest_inbox_t *inbox; /* lent */
    const ingest_request_t *req; /* lent */
    ingest_result_t *result;     /* what we fill */
    const char *channel_name;    /* of the inbox */
    Retain__V1__Channel channel; /* the inbox's */
} meta_ctx_t;

/* --- helpers (meta.c) ---------------------------------------------- */

/* Fails result with 503 "out of memory"; returns -1. */
int meta_oom (ingest_result_t *result);

/* A string member of obj, lent; NULL when obj is not an object or the
 * member is not a string. */
const char *meta_str (const json_t *obj, const char *key);

/* A number that may come as a JSON integer, real or string of digits; 0
 * when it is none of them or out of range. */
int64_t meta_int64 (const json_t *v);

/* Unix seconds to ms; 0 (unknown) when negative or too large to scale. */
int64_t meta_seconds_ms (int64_t s);

/* Sets *field to a malloc'd ""; -1 out of memory. */
int meta_empty (char **field);

/* Adds an item of the given type, de-duplicated on external_id, for user;
 * msg is taken in every case. -1 with 413 when the request already holds
 * too many items, 503 out of memory. */
int meta_add (meta_ctx_t *ctx, const char *type, const char *external_id, ProtobufCMessage *msg,
              const char *user);

/* Adds a MessageDelivered about external_id, de-duplicated on
 * "<status>:<dedup>"; -1 as meta_add. */
int meta_add_delivered (meta_ctx_t *ctx, const char *status, const char *dedup,
                        const char *external_id, const char *user, int64_t at_ms, bool read);

/* --- Messenger and Instagram (meta.c) ------------------------------ */

/* One messaging event (message, postback, delivery, read) of a page's or
 * account's entry; path names it in a refusal. 0 when it was added or
 * skipped. */
int meta_messaging_event (meta_ctx_t *ctx, const json_t *ev, const char *account, const char *path);

/* --- comments and origins (meta_comments.c) ------------------------ */

/* Sets msg->origin when the direct message answers or mentions a story;
 * 0 when it is a plain message too, -1 out of memory (result untouched). */
int meta_story_origin (Retain__V1__InboundMessage *msg, const json_t *message, const char *account);

/* One of an entry's changes[]: a messaging event in the dashboard's test
 * shape, a comment, or something skipped. */
int meta_change (meta_ctx_t *ctx, const json_t *entry, const json_t *change, const char *path);

/* --- WhatsApp (meta_whatsapp.c) ------------------------------------ */

/* Entry e of a whatsapp_business_account notification: its messages and
 * statuses. */
int meta_wa_entry (meta_ctx_t *ctx, const json_t *entry, size_t e);

#endif
