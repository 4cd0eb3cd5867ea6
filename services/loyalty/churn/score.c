/*
 * score: the per-customer figures, sharing work between customers with the
 * same (x, T).
 */
#include "score.h"

#include "rfm.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double x, T;
    double expected_alive; /* E[purchases in horizon | alive] */
    double discounted;     /* sum_k [G(kL) - G((k-1)L)] / (1+d)^k, if alive */
    bool used;
} s_group_t;

static uint64_t
s_hash2 (double x, double T)
{
    uint64_t a, b;
    memcpy (&a, &x, 8);
    memcpy (&b, &T, 8);
    uint64_t h = (a ^ 0x9e3779b97f4a7c15u) * 0xff51afd7ed558ccdu;
    h ^= h >> 32;
    h = (h ^ b) * 0xc4ceb9fe1a85ec53u;
    return h ^ (h >> 29);
}

void
churn_score_destroy (churn_score_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    churn_score_t *self = *self_p;
    free (self->p_alive);
    free (self->expected);
    free (self->spend);
    free (self->clv);
    free (self->r);
    free (self->f);
    free (self->m);
    free (self->segment);
    free (self);
    *self_p = NULL;
}

static void
s_group_eval (s_group_t *g, const churn_bgnbd_params_t *bg, const churn_score_opts_t *o)
{
    g->expected_alive = churn_bgnbd_expected_if_alive (bg, g->x, g->T, o->horizon);
    g->discounted = 0;
    double prev = 0, factor = 1;
    for (int k = 1; k <= o->clv_periods; k++) {
        double cur = churn_bgnbd_expected_if_alive (bg, g->x, g->T, k * o->period);
        factor /= 1 + o->discount;
        g->discounted += (cur - prev) * factor;
        prev = cur;
    }
}

churn_score_t *
churn_score_run (const churn_summary_t *s, const churn_bgnbd_params_t *bg,
                 const churn_gammagamma_params_t *gg, const churn_score_opts_t *o, char *err,
                 size_t errlen)
{
    s_group_t *table = NULL;
    uint32_t *group_of = NULL;
    churn_score_t *sc = calloc (1, sizeof *sc);
    if (!sc)
        goto oom;
    size_t n = s->n, count = n ? n : 1;
    bool money = gg && s->monetary;
    sc->n = n;
    sc->p_alive = malloc (count * sizeof (double));
    sc->expected = malloc (count * sizeof (double));
    sc->r = malloc (count);
    sc->f = malloc (count);
    sc->m = malloc (count);
    sc->segment = malloc (count);
    if (!sc->p_alive || !sc->expected || !sc->r || !sc->f || !sc->m || !sc->segment)
        goto oom;
    if (money) {
        sc->spend = malloc (count * sizeof (double));
        if (!sc->spend)
            goto oom;
        if (o->clv_periods > 0) {
            sc->clv = malloc (count * sizeof (double));
            if (!sc->clv)
                goto oom;
        }
    }

    /* Distinct (x, T) through open addressing; group_of maps customers. */
    size_t cap = 16;
    while (cap < 2 * count)
        cap *= 2;
    table = calloc (cap, sizeof *table);
    group_of = malloc (count * sizeof *group_of);
    if (!table || !group_of)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        double x = s->frequency[i], T = s->T[i];
        size_t slot = s_hash2 (x, T) & (cap - 1);
        while (table[slot].used && !(table[slot].x == x && table[slot].T == T))
            slot = (slot + 1) & (cap - 1);
        if (!table[slot].used) {
            table[slot] = (s_group_t){.x = x, .T = T, .used = true};
            s_group_eval (&table[slot], bg, o);
        }
        group_of[i] = (uint32_t)slot;
    }

    for (size_t i = 0; i < n; i++) {
        const s_group_t *g = &table[group_of[i]];
        double pa = churn_bgnbd_p_alive (bg, s->frequency[i], s->recency[i], s->T[i]);
        sc->p_alive[i] = pa;
        sc->expected[i] = pa * g->expected_alive;
        if (!money)
            continue;
        double spend;
        if (churn_gammagamma_expected_spend (gg, s->frequency[i], s->monetary[i], &spend) != 0)
            spend = -1;
        sc->spend[i] = spend;
        if (sc->clv)
            sc->clv[i] = spend >= 0 ? spend * pa * g->discounted : -1;
    }
    if (churn_rfm_score (s, sc->r, sc->f, sc->m, sc->segment) != 0)
        goto oom;
    free (table);
    free (group_of);
    return sc;
oom:
    snprintf (err, errlen, "out of memory");
    free (table);
    free (group_of);
    churn_score_destroy (&sc);
    return NULL;
}
