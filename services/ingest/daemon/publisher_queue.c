/*
 * publisher_queue: the publisher's queues (publisher_queue.h).
 */
#include "publisher_queue.h"

#include <stdlib.h>
#include <string.h>

void
pub_queue_free (pub_queue_t *q)
{
    for (size_t i = q->head; i < q->len; i++)
        free (q->v[i].data);
    free (q->v);
    memset (q, 0, sizeof *q);
}

bool
pub_queue_reserve (pub_queue_t *q, size_t n, size_t *shifted)
{
    size_t cap;
    pub_entry_t *v;
    if (shifted)
        *shifted = 0;
    if (q->head > 0 && q->head >= q->len / 2) {
        memmove (q->v, q->v + q->head, (q->len - q->head) * sizeof *q->v);
        if (shifted)
            *shifted = q->head;
        q->len -= q->head;
        q->head = 0;
    }
    if (q->len + n <= q->cap)
        return true;
    cap = q->cap ? q->cap * 2 : 1024;
    while (cap < q->len + n)
        cap *= 2;
    v = realloc (q->v, cap * sizeof *v);
    if (!v)
        return false;
    q->v = v;
    q->cap = cap;
    return true;
}

int
pub_id_cmp (const rt_uuid_t *a, const rt_uuid_t *b)
{
    return memcmp (a->b, b->b, sizeof a->b);
}

/* bsearch's comparison of an id with an entry (whose first field it is). */
static int
s_cmp_entry (const void *key, const void *entry)
{
    return pub_id_cmp (key, &((const pub_entry_t *)entry)->id);
}

pub_entry_t *
pub_queue_find (pub_queue_t *q, const rt_uuid_t *id)
{
    if (q->head == q->len)
        return NULL;
    return bsearch (id, q->v + q->head, q->len - q->head, sizeof *q->v, s_cmp_entry);
}
