/*
 * publisher_queue: the publisher's queues of envelopes (publisher.c):
 * growable arrays in event-id order, taken from the head, searched by id.
 */
#ifndef INGEST_PUBLISHER_QUEUE_H
#define INGEST_PUBLISHER_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_uuid.h"

/* Where an envelope is on its way to busd. */
enum { PUB_WAITING, PUB_POSTED, PUB_DONE };

typedef struct {
    rt_uuid_t id;                   /* the event id: the queue's order */
    char text[RT_UUID_STR_LEN + 1]; /* the same as text */
    uint8_t *data;                  /* the packed envelope until posted; owned */
    size_t len;                     /* its length */
    int64_t due_ms;                 /* handed + ack timeout: to the outbox after this */
    uint8_t state;                  /* PUB_WAITING, PUB_POSTED, PUB_DONE */
    bool rejected;                  /* busd refused it: to the outbox now */
} pub_entry_t;

/* A growable array used as a queue: entries [head, len) are live. */
typedef struct {
    pub_entry_t *v;   /* the entries */
    size_t head, len; /* the live ones */
    size_t cap;       /* allocated */
} pub_queue_t;

/* Frees the live entries' envelopes and the array; q is empty after. */
void pub_queue_free (pub_queue_t *q);

/* Room for n more entries at the tail, moving the live ones to the front
 * first when that makes room (*shifted, when not NULL: by how many). false
 * out of memory. */
bool pub_queue_reserve (pub_queue_t *q, size_t n, size_t *shifted);

/* Event ids in their order (memcmp of the bytes: UUIDv7s sort by time). */
int pub_id_cmp (const rt_uuid_t *a, const rt_uuid_t *b);

/* The live entry of q with id, or NULL (the entries are in id order). */
pub_entry_t *pub_queue_find (pub_queue_t *q, const rt_uuid_t *id);

#endif
