/*
 * rfm: quintile scores by rank and the segment table.
 *
 * Scores only need the order of the values, and they are monotone in the
 * value, so a sorted copy gives at most five runs of values with one score
 * each; a customer's score is then a few comparisons. The copy is sorted by
 * an LSD radix sort on the IEEE-754 bits (a million values in a few
 * milliseconds, where qsort takes a hundred).
 */
#include "rfm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_names[CHURN_RFM_SEGMENTS] = {
    [CHURN_RFM_CHAMPIONS] = "champions",
    [CHURN_RFM_LOYAL] = "loyal",
    [CHURN_RFM_POTENTIAL_LOYALIST] = "potential_loyalist",
    [CHURN_RFM_NEW] = "new",
    [CHURN_RFM_PROMISING] = "promising",
    [CHURN_RFM_NEED_ATTENTION] = "need_attention",
    [CHURN_RFM_ABOUT_TO_SLEEP] = "about_to_sleep",
    [CHURN_RFM_AT_RISK] = "at_risk",
    [CHURN_RFM_CANT_LOSE] = "cant_lose",
    [CHURN_RFM_HIBERNATING] = "hibernating",
};

/* Rows R = 1..5, columns FM = 1..5; the table in rfm.h. */
static const churn_rfm_segment_t s_table[5][5] = {
    {CHURN_RFM_HIBERNATING, CHURN_RFM_HIBERNATING, CHURN_RFM_AT_RISK, CHURN_RFM_AT_RISK,
     CHURN_RFM_CANT_LOSE},
    {CHURN_RFM_HIBERNATING, CHURN_RFM_HIBERNATING, CHURN_RFM_AT_RISK, CHURN_RFM_AT_RISK,
     CHURN_RFM_CANT_LOSE},
    {CHURN_RFM_ABOUT_TO_SLEEP, CHURN_RFM_ABOUT_TO_SLEEP, CHURN_RFM_NEED_ATTENTION, CHURN_RFM_LOYAL,
     CHURN_RFM_LOYAL},
    {CHURN_RFM_PROMISING, CHURN_RFM_POTENTIAL_LOYALIST, CHURN_RFM_POTENTIAL_LOYALIST,
     CHURN_RFM_LOYAL, CHURN_RFM_LOYAL},
    {CHURN_RFM_NEW, CHURN_RFM_POTENTIAL_LOYALIST, CHURN_RFM_POTENTIAL_LOYALIST, CHURN_RFM_CHAMPIONS,
     CHURN_RFM_CHAMPIONS},
};

const char *
churn_rfm_segment_name (churn_rfm_segment_t segment)
{
    if ((unsigned)segment >= CHURN_RFM_SEGMENTS)
        return "unknown";
    return s_names[segment];
}

churn_rfm_segment_t
churn_rfm_segment (int r, int fm)
{
    r = r < 1 ? 1 : r > 5 ? 5 : r;
    fm = fm < 1 ? 1 : fm > 5 ? 5 : fm;
    return s_table[r - 1][fm - 1];
}

/* Maps a double to an unsigned key with the same order (negatives flipped). */
static uint64_t
s_key (double v)
{
    uint64_t u;
    if (v == 0)
        v = 0; /* -0.0 sorts with 0.0 */
    memcpy (&u, &v, sizeof u);
    return (u >> 63) ? ~u : u | 0x8000000000000000u;
}

static int
s_radix_sort (uint64_t *keys, size_t n)
{
    uint64_t *tmp = malloc (n * sizeof *tmp);
    if (!tmp)
        return -1;
    size_t *count = malloc ((1u << 16) * sizeof *count);
    if (!count) {
        free (tmp);
        return -1;
    }
    uint64_t *src = keys, *dst = tmp;
    for (int shift = 0; shift < 64; shift += 16) {
        memset (count, 0, (1u << 16) * sizeof *count);
        for (size_t i = 0; i < n; i++)
            count[(src[i] >> shift) & 0xffff]++;
        /* A digit every key shares needs no pass. */
        if (n > 0 && count[(src[0] >> shift) & 0xffff] == n)
            continue;
        size_t sum = 0;
        for (size_t d = 0; d < (1u << 16); d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[count[(src[i] >> shift) & 0xffff]++] = src[i];
        uint64_t *swap = src;
        src = dst;
        dst = swap;
    }
    if (src != keys)
        memcpy (keys, src, n * sizeof *keys);
    free (count);
    free (tmp);
    return 0;
}

int
churn_rfm_quintiles (const double *values, size_t n, bool higher_is_better, uint8_t *scores)
{
    if (n == 0)
        return 0;
    uint64_t *keys = malloc (n * sizeof *keys);
    if (!keys)
        return -1;
    for (size_t i = 0; i < n; i++)
        keys[i] = s_key (values[i]);
    if (s_radix_sort (keys, n) != 0) {
        free (keys);
        return -1;
    }
    /* Runs of equal score in ascending key order: bound[k] is the largest
     * key of run k, score_of[k] its score. Scores are monotone, so at most
     * five runs. */
    uint64_t bound[5];
    uint8_t score_of[5];
    int runs = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && keys[j] == keys[i])
            j++;
        /* Customers with a strictly worse value. */
        double rank = higher_is_better ? (double)i : (double)(n - j);
        int score = 1 + (int)floor (5 * rank / (double)n);
        score = score > 5 ? 5 : score;
        if (runs > 0 && score_of[runs - 1] == score)
            bound[runs - 1] = keys[j - 1];
        else {
            bound[runs] = keys[j - 1];
            score_of[runs] = (uint8_t)score;
            runs++;
        }
        i = j;
    }
    for (size_t c = 0; c < n; c++) {
        uint64_t k = s_key (values[c]);
        int run = 0;
        while (run < runs - 1 && k > bound[run])
            run++;
        scores[c] = score_of[run];
    }
    free (keys);
    return 0;
}

int
churn_rfm_score (const churn_summary_t *s, uint8_t *r, uint8_t *f, uint8_t *m, uint8_t *segment)
{
    int rc = -1;
    double *gap = malloc ((s->n ? s->n : 1) * sizeof *gap);
    if (!gap)
        return -1;
    for (size_t i = 0; i < s->n; i++)
        gap[i] = s->T[i] - s->recency[i];
    if (churn_rfm_quintiles (gap, s->n, false, r) != 0)
        goto cleanup;
    if (churn_rfm_quintiles (s->frequency, s->n, true, f) != 0)
        goto cleanup;
    const double *money = s->revenue ? s->revenue : s->monetary;
    if (money) {
        if (churn_rfm_quintiles (money, s->n, true, m) != 0)
            goto cleanup;
    } else
        memcpy (m, f, s->n);
    for (size_t i = 0; i < s->n; i++)
        segment[i] = (uint8_t)churn_rfm_segment (r[i], (f[i] + m[i] + 1) / 2);
    rc = 0;
cleanup:
    free (gap);
    return rc;
}
