/*
 * reply: what an operator's reply answers, when it names an inbound
 * message of its conversation (the API's "reply_to").
 *
 * An inbound message keeps where it was written (InboundMessage.origin)
 * on its timeline entry (routing 009), as the JSON reply_origin_json
 * makes. A reply to a comment goes where the operator says: "public",
 * under the comment where others see it, or "private", Meta's private
 * reply to the commenter in Messenger / Instagram Direct. Without a
 * visibility a comment is answered in public and a live comment in
 * private (the only way Meta allows). A reply to any other message (a
 * direct one, a story reply: already a direct thread) is a plain reply
 * on that message's channel, and takes no visibility.
 *
 * Meta's rules, checked here before anything is recorded, so that the
 * operator hears them at once rather than as a failed send later: a
 * private reply once per comment and until the origin's
 * private_reply_until (7 days; a live comment: the broadcast); no public
 * reply to a live comment, nor under a comment its author removed (an
 * inbound "deleted" event names it). A request the API runs again (the
 * same Idempotency-Key) is not checked again: what it recorded the first
 * time stands, and the clock or that first reply must not refuse it.
 */
#ifndef ROUTER_REPLY_H
#define ROUTER_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "retain/v1/message.pb-c.h"
#include "rt_db.h"

/* What reply_resolve came to. */
typedef enum {
    REPLY_OK = 0,
    REPLY_NOT_FOUND,   /* no inbound message of that id in the conversation */
    REPLY_NOT_COMMENT, /* a visibility for a message that is no comment */
    REPLY_LIVE_PUBLIC, /* a public reply to a live comment */
    REPLY_DELETED,     /* a public reply under a comment its author removed */
    REPLY_CLOSED,      /* a private reply after private_reply_until */
    REPLY_ALREADY,     /* a second private reply to one comment */
    REPLY_DB,          /* PostgreSQL failed (or out of memory) */
} reply_status_t;

/* The visibility the request asked for. */
typedef enum {
    REPLY_VISIBILITY_NONE = 0, /* not given */
    REPLY_VISIBILITY_PUBLIC,
    REPLY_VISIBILITY_PRIVATE,
} reply_visibility_t;

/* What a reply answers. */
typedef struct {
    char channel[32];           /* the message's channel: where the reply goes */
    Retain__V1__Origin *origin; /* the comment it answers (owned, reply_target_free);
                                   NULL: a plain reply */
    bool public_reply;          /* under the comment; false: a private reply */
    int64_t until;              /* the origin's private_reply_until (unix ms), 0 none */
    char until_text[32];        /* the same as RFC 3339 (UTC), "" none */
} reply_target_t;

/* Registers reply's statements on db (routing_prepare calls it). 0 or -1. */
int reply_prepare (rt_db_t *db);

/* The JSON text of an origin as routing.timeline.origin keeps it: its
 * set members (empty strings and a zero deadline left out). Owned; NULL
 * for no origin, a direct one (kind empty or "direct"), or out of memory
 * (*oom set). */
char *reply_origin_json (const Retain__V1__Origin *origin, bool *oom);

/* Resolves reply_to (a canonical UUID: the caller checked it) in
 * conversation_id with visibility, at now (unix ms), into *out (zeroed
 * first; free it with reply_target_free whatever the status). replay:
 * the request was run before (no rule is checked again). REPLY_OK, or
 * the refusal with detail filled in words an operator reads (the
 * deadline named, RFC 3339). */
reply_status_t reply_resolve (rt_db_t *db, const char *conversation_id, const char *reply_to,
                              reply_visibility_t visibility, int64_t now, bool replay,
                              reply_target_t *out, char *detail, size_t len);

/* Frees what reply_resolve put in target; safe on a zeroed one. */
void reply_target_free (reply_target_t *target);

#endif
