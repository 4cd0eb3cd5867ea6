/*
 * history: purchases by customer and day.
 *
 * Purchases are appended as they come (any order) into flat arrays; the
 * first query after a change sorts them into one run per customer (counting
 * sort on the customer, then a sort of each run by day) and merges days, so
 * a million purchases cost one pass and no per-customer allocation.
 * Customer ids are interned through an open-addressing hash table.
 */
#include "history.h"

#include "rt_civil.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct churn_history_t {
    /* customers, in order of first appearance */
    size_t ncust;
    size_t cap_cust;
    char **ids;    /* NUL-terminated copies */
    size_t *slots; /* hash table of customer index + 1; 0 is empty */
    size_t nslots; /* a power of two, at least twice ncust */
    /* purchases as added */
    size_t ntx;
    size_t cap_tx;
    uint32_t *tx_cust; /* customer index */
    int32_t *tx_day;
    double *tx_amount;
    int32_t first_day;
    int32_t last_day;
    /* merged runs, valid while sealed */
    bool sealed;
    size_t *off;    /* ncust + 1 offsets into day and amount */
    int32_t *day;   /* distinct purchase days per customer, ascending */
    double *amount; /* the day's total value */
};

static int
s_digits (const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int
churn_history_parse_date (const char *text, size_t len, int32_t *day)
{
    int y, m, d;
    size_t used;
    if (len >= 10 && text[4] == '-' && text[7] == '-') {
        y = s_digits (text, 4);
        m = s_digits (text + 5, 2);
        d = s_digits (text + 8, 2);
        used = 10;
    } else if (len >= 8) {
        y = s_digits (text, 4);
        m = s_digits (text + 4, 2);
        d = s_digits (text + 6, 2);
        used = 8;
    } else
        return -1;
    if (used < len && text[used] != 'T' && text[used] != ' ')
        return -1;
    if (y < 0 || !rt_civil_valid (y, m, d))
        return -1;
    *day = (int32_t)rt_civil_days (y, m, d);
    return 0;
}

void
churn_history_format_date (int32_t day, char out[11])
{
    int64_t year;
    int m, d;
    rt_civil_date (day, &year, &m, &d);
    int y = (int)year;
    out[0] = (char)('0' + y / 1000 % 10);
    out[1] = (char)('0' + y / 100 % 10);
    out[2] = (char)('0' + y / 10 % 10);
    out[3] = (char)('0' + y % 10);
    out[4] = '-';
    out[5] = (char)('0' + m / 10);
    out[6] = (char)('0' + m % 10);
    out[7] = '-';
    out[8] = (char)('0' + d / 10);
    out[9] = (char)('0' + d % 10);
    out[10] = '\0';
}

churn_history_t *
churn_history_new (void)
{
    churn_history_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->nslots = 1024;
    self->slots = calloc (self->nslots, sizeof (size_t));
    if (!self->slots)
        churn_history_destroy (&self);
    return self;
}

static void
s_unseal (churn_history_t *self)
{
    free (self->off);
    free (self->day);
    free (self->amount);
    self->off = NULL;
    self->day = NULL;
    self->amount = NULL;
    self->sealed = false;
}

void
churn_history_destroy (churn_history_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    churn_history_t *self = *self_p;
    for (size_t i = 0; i < self->ncust; i++)
        free (self->ids[i]);
    free (self->ids);
    free (self->slots);
    free (self->tx_cust);
    free (self->tx_day);
    free (self->tx_amount);
    s_unseal (self);
    free (self);
    *self_p = NULL;
}

static uint64_t
s_hash (const char *s, size_t len)
{
    /* FNV-1a */
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static int
s_grow_slots (churn_history_t *self)
{
    size_t nslots = self->nslots * 2;
    size_t *slots = calloc (nslots, sizeof (size_t));
    if (!slots)
        return -1;
    for (size_t i = 0; i < self->ncust; i++) {
        size_t s = s_hash (self->ids[i], strlen (self->ids[i])) & (nslots - 1);
        while (slots[s])
            s = (s + 1) & (nslots - 1);
        slots[s] = i + 1;
    }
    free (self->slots);
    self->slots = slots;
    self->nslots = nslots;
    return 0;
}

/* The customer's index, interned on first sight; -1 when out of memory. */
static long long
s_intern (churn_history_t *self, const char *id, size_t len)
{
    size_t s = s_hash (id, len) & (self->nslots - 1);
    while (self->slots[s]) {
        const char *known = self->ids[self->slots[s] - 1];
        if (strncmp (known, id, len) == 0 && known[len] == '\0')
            return (long long)self->slots[s] - 1;
        s = (s + 1) & (self->nslots - 1);
    }
    if (self->ncust == self->cap_cust) {
        size_t cap = self->cap_cust ? 2 * self->cap_cust : 256;
        char **ids = realloc (self->ids, cap * sizeof (char *));
        if (!ids)
            return -1;
        self->ids = ids;
        self->cap_cust = cap;
    }
    char *copy = malloc (len + 1);
    if (!copy)
        return -1;
    memcpy (copy, id, len);
    copy[len] = '\0';
    self->ids[self->ncust] = copy;
    self->slots[s] = self->ncust + 1;
    self->ncust++;
    if (2 * self->ncust > self->nslots && s_grow_slots (self) != 0)
        return -1;
    return (long long)self->ncust - 1;
}

int
churn_history_add (churn_history_t *self, const char *customer, size_t len, int32_t day,
                   double amount)
{
    long long c = s_intern (self, customer, len);
    if (c < 0)
        return -1;
    if (self->ntx == self->cap_tx) {
        size_t cap = self->cap_tx ? 2 * self->cap_tx : 1024;
        uint32_t *tc = realloc (self->tx_cust, cap * sizeof *tc);
        if (!tc)
            return -1;
        self->tx_cust = tc;
        int32_t *td = realloc (self->tx_day, cap * sizeof *td);
        if (!td)
            return -1;
        self->tx_day = td;
        double *ta = realloc (self->tx_amount, cap * sizeof *ta);
        if (!ta)
            return -1;
        self->tx_amount = ta;
        self->cap_tx = cap;
    }
    self->tx_cust[self->ntx] = (uint32_t)c;
    self->tx_day[self->ntx] = day;
    self->tx_amount[self->ntx] = amount;
    if (self->ntx == 0 || day < self->first_day)
        self->first_day = day;
    if (self->ntx == 0 || day > self->last_day)
        self->last_day = day;
    self->ntx++;
    if (self->sealed)
        s_unseal (self);
    return 0;
}

size_t
churn_history_customers (const churn_history_t *self)
{
    return self->ncust;
}

size_t
churn_history_purchases (const churn_history_t *self)
{
    return self->ntx;
}

int32_t
churn_history_first_day (const churn_history_t *self)
{
    return self->first_day;
}

int32_t
churn_history_last_day (const churn_history_t *self)
{
    return self->last_day;
}

typedef struct {
    int32_t day;
    double amount;
} s_purchase_t;

static int
s_purchase_cmp (const void *pa, const void *pb)
{
    const s_purchase_t *a = pa, *b = pb;
    return (a->day > b->day) - (a->day < b->day);
}

/* Sorts one customer's run by day: insertion sort for the usual short run,
 * qsort through a scratch copy for the rare long one. Returns -1 when out of
 * memory. */
static int
s_sort_run (int32_t *day, double *amount, size_t n)
{
    if (n > 32) {
        s_purchase_t *tmp = malloc (n * sizeof *tmp);
        if (!tmp)
            return -1;
        for (size_t i = 0; i < n; i++)
            tmp[i] = (s_purchase_t){day[i], amount[i]};
        qsort (tmp, n, sizeof *tmp, s_purchase_cmp);
        for (size_t i = 0; i < n; i++) {
            day[i] = tmp[i].day;
            amount[i] = tmp[i].amount;
        }
        free (tmp);
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        int32_t d = day[i];
        double a = amount[i];
        size_t j = i;
        while (j > 0 && day[j - 1] > d) {
            day[j] = day[j - 1];
            amount[j] = amount[j - 1];
            j--;
        }
        day[j] = d;
        amount[j] = a;
    }
    return 0;
}

static int
s_seal (churn_history_t *self)
{
    if (self->sealed)
        return 0;
    self->off = calloc (self->ncust + 1, sizeof (size_t));
    self->day = malloc ((self->ntx + 1) * sizeof (int32_t));
    self->amount = malloc ((self->ntx + 1) * sizeof (double));
    size_t *fill = calloc (self->ncust + 1, sizeof (size_t));
    if (!self->off || !self->day || !self->amount || !fill) {
        free (fill);
        s_unseal (self);
        return -1;
    }
    for (size_t i = 0; i < self->ntx; i++)
        self->off[self->tx_cust[i] + 1]++;
    for (size_t c = 0; c < self->ncust; c++)
        self->off[c + 1] += self->off[c];
    for (size_t i = 0; i < self->ntx; i++) {
        size_t c = self->tx_cust[i];
        size_t at = self->off[c] + fill[c]++;
        self->day[at] = self->tx_day[i];
        self->amount[at] = self->tx_amount[i];
    }
    /* Sort each run and merge same-day purchases, compacting in place. */
    size_t out = 0;
    for (size_t c = 0; c < self->ncust; c++) {
        size_t start = self->off[c], end = self->off[c + 1];
        if (s_sort_run (self->day + start, self->amount + start, end - start) != 0) {
            free (fill);
            s_unseal (self);
            return -1;
        }
        self->off[c] = out;
        for (size_t i = start; i < end; i++) {
            if (out > self->off[c] && self->day[out - 1] == self->day[i])
                self->amount[out - 1] += self->amount[i];
            else {
                self->day[out] = self->day[i];
                self->amount[out] = self->amount[i];
                out++;
            }
        }
    }
    self->off[self->ncust] = out;
    free (fill);
    self->sealed = true;
    return 0;
}

const char *
churn_history_customer (churn_history_t *self, size_t customer, const int32_t **days,
                        const double **amounts, size_t *count)
{
    if (s_seal (self) != 0 || customer >= self->ncust) {
        *count = 0;
        return NULL;
    }
    size_t start = self->off[customer];
    *days = self->day + start;
    *amounts = self->amount + start;
    *count = self->off[customer + 1] - start;
    return self->ids[customer];
}

churn_summary_t *
churn_history_summarize (churn_history_t *self, int32_t calibration_end, int32_t observation_end,
                         double unit_days)
{
    if (s_seal (self) != 0)
        return NULL;
    bool holdout = observation_end > calibration_end;
    size_t n = 0;
    for (size_t c = 0; c < self->ncust; c++)
        if (self->off[c + 1] > self->off[c] && self->day[self->off[c]] <= calibration_end)
            n++;
    unsigned fields =
        CHURN_SUMMARY_IDS | CHURN_SUMMARY_MONEY | (holdout ? CHURN_SUMMARY_HOLDOUT : 0);
    churn_summary_t *s = churn_summary_new (n, fields, unit_days);
    if (!s)
        return NULL;
    if (holdout)
        s->duration_holdout = (observation_end - calibration_end) / unit_days;
    size_t k = 0;
    for (size_t c = 0; c < self->ncust; c++) {
        size_t start = self->off[c], end = self->off[c + 1];
        if (end == start || self->day[start] > calibration_end)
            continue;
        const int32_t *day = self->day + start;
        const double *amount = self->amount + start;
        size_t count = end - start;
        size_t cal = 0;
        double revenue = 0, repeat_value = 0;
        while (cal < count && day[cal] <= calibration_end) {
            revenue += amount[cal];
            if (cal > 0)
                repeat_value += amount[cal];
            cal++;
        }
        s->id[k] = strdup (self->ids[c]);
        if (!s->id[k]) {
            churn_summary_destroy (&s);
            return NULL;
        }
        s->frequency[k] = (double)(cal - 1);
        s->recency[k] = (day[cal - 1] - day[0]) / unit_days;
        s->T[k] = (calibration_end - day[0]) / unit_days;
        s->monetary[k] = cal > 1 ? repeat_value / (double)(cal - 1) : 0;
        s->revenue[k] = revenue;
        if (holdout) {
            size_t h = 0;
            double value = 0;
            for (size_t i = cal; i < count && day[i] <= observation_end; i++) {
                h++;
                value += amount[i];
            }
            s->frequency_holdout[k] = (double)h;
            s->monetary_holdout[k] = h > 0 ? value / (double)h : 0;
        }
        k++;
    }
    return s;
}
