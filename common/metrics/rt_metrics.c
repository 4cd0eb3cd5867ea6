/*
 * rt_metrics: counters, gauges and histograms in the Prometheus text format.
 *
 * The registry is a list of families (one per metric name, holding type and
 * help) each with a list of series (one per label string). The lists only
 * grow, under the registry mutex, and a series never moves or dies before
 * the registry does; so a caller may keep the pointer it was given and
 * update it without any lock.
 *
 * Updates are C11 atomics with relaxed ordering: a metric is a statistic,
 * and nothing else is published through it. A double is kept as the bit
 * pattern of a uint64_t and changed by compare-and-swap, since C11 offers no
 * atomic add for floating point.
 *
 * A histogram counts each observation in exactly one bucket (the first whose
 * bound is >= the value, or the +Inf overflow); rendering accumulates them,
 * and takes _count from the same pass so that _count always equals the +Inf
 * bucket, as the exposition format requires, even while other threads
 * observe.
 */
#include "rt_metrics.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { S_COUNTER, S_GAUGE, S_HISTOGRAM } s_type_t;

struct rt_counter_t {
    atomic_uint_fast64_t value; /* events so far */
};

struct rt_gauge_t {
    atomic_uint_fast64_t bits; /* the value, as the bit pattern of a double */
};

struct rt_histogram_t {
    double *bounds;                /* upper bounds, ascending, finite; owned */
    size_t nbounds;                /* entries in bounds */
    atomic_uint_fast64_t *buckets; /* nbounds + 1 counts, the last for +Inf; owned */
    atomic_uint_fast64_t sum_bits; /* the sum of observations, as double bits */
};

typedef struct {
    char *labels; /* as written between the braces, "" for none; owned */
    union {
        rt_counter_t counter;
        rt_gauge_t gauge;
        rt_histogram_t histogram;
    } m; /* the metric; its type is the family's */
} s_series_t;

typedef struct {
    char *name;          /* the metric name; owned */
    char *help;          /* the first registration's help text; owned */
    s_type_t type;       /* shared by every series of the name */
    s_series_t **series; /* in registration order; owned */
    size_t nseries;      /* entries in series */
} s_family_t;

struct rt_metrics_t {
    pthread_mutex_t lock;  /* guards the lists below, never the values */
    s_family_t **families; /* in registration order; owned */
    size_t nfamilies;      /* entries in families */
};

/* The default latency ladder, in seconds. */
static const double s_default_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                          0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                          1,      2.5,     5,      10};

static uint64_t
s_bits (double value)
{
    uint64_t bits;
    memcpy (&bits, &value, sizeof bits);
    return bits;
}

static double
s_double (uint64_t bits)
{
    double value;
    memcpy (&value, &bits, sizeof value);
    return value;
}

static void
s_atomic_double_add (atomic_uint_fast64_t *bits, double delta)
{
    uint_fast64_t old = atomic_load_explicit (bits, memory_order_relaxed);
    uint_fast64_t new;
    do {
        new = s_bits (s_double (old) + delta);
    } while (!atomic_compare_exchange_weak_explicit (bits, &old, new, memory_order_relaxed,
                                                     memory_order_relaxed));
}

rt_metrics_t *
rt_metrics_new (void)
{
    rt_metrics_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    if (pthread_mutex_init (&self->lock, NULL) != 0) {
        free (self);
        return NULL;
    }
    return self;
}

static void
s_series_destroy (s_series_t *series, s_type_t type)
{
    if (!series)
        return;
    if (type == S_HISTOGRAM) {
        free (series->m.histogram.bounds);
        free (series->m.histogram.buckets);
    }
    free (series->labels);
    free (series);
}

static void
s_family_destroy (s_family_t *family)
{
    if (!family)
        return;
    for (size_t i = 0; i < family->nseries; i++)
        s_series_destroy (family->series[i], family->type);
    free (family->series);
    free (family->name);
    free (family->help);
    free (family);
}

void
rt_metrics_destroy (rt_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rt_metrics_t *self = *self_p;
    for (size_t i = 0; i < self->nfamilies; i++)
        s_family_destroy (self->families[i]);
    free (self->families);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

static bool
s_valid_name (const char *name)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        bool digit = c >= '0' && c <= '9';
        if (!alpha && !(digit && p != name))
            return false;
    }
    return true;
}

static int
s_compare_doubles (const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Fills a new histogram's buckets from the caller's bounds: sorted, without
 * duplicates, NaN or infinities (+Inf is always the implicit last bucket). */
static int
s_histogram_init (rt_histogram_t *histogram, const double *bounds, size_t nbounds)
{
    if (!bounds || nbounds == 0) {
        bounds = s_default_bounds;
        nbounds = sizeof s_default_bounds / sizeof s_default_bounds[0];
    }
    histogram->bounds = malloc (nbounds * sizeof *histogram->bounds);
    if (!histogram->bounds)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < nbounds; i++) {
        if (isfinite (bounds[i]))
            histogram->bounds[n++] = bounds[i];
    }
    qsort (histogram->bounds, n, sizeof *histogram->bounds, s_compare_doubles);
    size_t unique = 0;
    for (size_t i = 0; i < n; i++) {
        if (unique == 0 || histogram->bounds[i] != histogram->bounds[unique - 1])
            histogram->bounds[unique++] = histogram->bounds[i];
    }
    histogram->nbounds = unique;
    histogram->buckets = calloc (unique + 1, sizeof *histogram->buckets);
    if (!histogram->buckets)
        return -1;
    for (size_t i = 0; i <= unique; i++)
        atomic_init (&histogram->buckets[i], 0);
    atomic_init (&histogram->sum_bits, s_bits (0.0));
    return 0;
}

static s_family_t *
s_family_find (rt_metrics_t *self, const char *name)
{
    for (size_t i = 0; i < self->nfamilies; i++) {
        if (strcmp (self->families[i]->name, name) == 0)
            return self->families[i];
    }
    return NULL;
}

static s_family_t *
s_family_add (rt_metrics_t *self, const char *name, const char *help, s_type_t type)
{
    s_family_t **families =
        realloc (self->families, (self->nfamilies + 1) * sizeof *self->families);
    if (!families)
        return NULL;
    self->families = families;
    s_family_t *family = calloc (1, sizeof *family);
    if (!family)
        return NULL;
    family->name = strdup (name);
    family->help = strdup (help ? help : "");
    family->type = type;
    if (!family->name || !family->help) {
        s_family_destroy (family);
        return NULL;
    }
    self->families[self->nfamilies++] = family;
    return family;
}

/* Finds or creates the series (name, labels) of the given type; NULL when
 * out of memory or when the name has another type. */
static s_series_t *
s_series_get (rt_metrics_t *self, const char *name, const char *labels, const char *help,
              s_type_t type, const double *bounds, size_t nbounds)
{
    s_series_t *series = NULL;
    s_series_t *result = NULL;
    assert (self);
    assert (s_valid_name (name) && "invalid metric name");
    if (!s_valid_name (name))
        return NULL;
    if (!labels)
        labels = "";

    pthread_mutex_lock (&self->lock);
    s_family_t *family = s_family_find (self, name);
    if (family && family->type != type) {
        assert (!"metric registered again with another type");
        goto cleanup;
    }
    if (family) {
        for (size_t i = 0; i < family->nseries; i++) {
            if (strcmp (family->series[i]->labels, labels) == 0) {
                result = family->series[i];
                goto cleanup;
            }
        }
    }
    series = calloc (1, sizeof *series);
    if (!series)
        goto cleanup;
    series->labels = strdup (labels);
    if (!series->labels)
        goto cleanup;
    if (type == S_COUNTER)
        atomic_init (&series->m.counter.value, 0);
    else if (type == S_GAUGE)
        atomic_init (&series->m.gauge.bits, s_bits (0.0));
    else if (s_histogram_init (&series->m.histogram, bounds, nbounds) != 0)
        goto cleanup;
    if (!family)
        family = s_family_add (self, name, help, type);
    if (!family)
        goto cleanup;
    s_series_t **list = realloc (family->series, (family->nseries + 1) * sizeof *list);
    if (!list)
        goto cleanup;
    family->series = list;
    family->series[family->nseries++] = series;
    result = series;
    series = NULL;
cleanup:
    pthread_mutex_unlock (&self->lock);
    s_series_destroy (series, type);
    return result;
}

rt_counter_t *
rt_metrics_counter (rt_metrics_t *self, const char *name, const char *labels, const char *help)
{
    s_series_t *series = s_series_get (self, name, labels, help, S_COUNTER, NULL, 0);
    return series ? &series->m.counter : NULL;
}

rt_gauge_t *
rt_metrics_gauge (rt_metrics_t *self, const char *name, const char *labels, const char *help)
{
    s_series_t *series = s_series_get (self, name, labels, help, S_GAUGE, NULL, 0);
    return series ? &series->m.gauge : NULL;
}

rt_histogram_t *
rt_metrics_histogram (rt_metrics_t *self, const char *name, const char *labels, const char *help,
                      const double *bounds, size_t nbounds)
{
    s_series_t *series = s_series_get (self, name, labels, help, S_HISTOGRAM, bounds, nbounds);
    return series ? &series->m.histogram : NULL;
}

void
rt_counter_add (rt_counter_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit (&counter->value, n, memory_order_relaxed);
}

void
rt_counter_inc (rt_counter_t *counter)
{
    rt_counter_add (counter, 1);
}

uint64_t
rt_counter_value (const rt_counter_t *counter)
{
    /* C11 atomic loads take a non-const pointer before C23. */
    return atomic_load_explicit ((atomic_uint_fast64_t *)&counter->value, memory_order_relaxed);
}

void
rt_gauge_set (rt_gauge_t *gauge, double value)
{
    atomic_store_explicit (&gauge->bits, s_bits (value), memory_order_relaxed);
}

void
rt_gauge_add (rt_gauge_t *gauge, double delta)
{
    s_atomic_double_add (&gauge->bits, delta);
}

double
rt_gauge_value (const rt_gauge_t *gauge)
{
    return s_double (
        atomic_load_explicit ((atomic_uint_fast64_t *)&gauge->bits, memory_order_relaxed));
}

void
rt_histogram_observe (rt_histogram_t *histogram, double value)
{
    /* Binary search for the first bound >= value; NaN compares false
     * everywhere and so lands in +Inf, like the reference clients. */
    size_t lo = 0;
    size_t hi = histogram->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (value <= histogram->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit (&histogram->buckets[lo], 1, memory_order_relaxed);
    s_atomic_double_add (&histogram->sum_bits, value);
}

uint64_t
rt_histogram_count (const rt_histogram_t *histogram)
{
    uint64_t count = 0;
    for (size_t i = 0; i <= histogram->nbounds; i++)
        count += atomic_load_explicit ((atomic_uint_fast64_t *)&histogram->buckets[i],
                                       memory_order_relaxed);
    return count;
}

/* Writes a double the way Prometheus reads it: +Inf, -Inf, NaN spelled as
 * the format wants, otherwise the shortest %g text from 15 digits up that
 * reads back as the same value (15 digits print 0.1 as "0.1" and 10 as
 * "10", where fewer would give "1e+01"). */
static void
s_format_double (char *out, size_t outlen, double value)
{
    if (isnan (value)) {
        snprintf (out, outlen, "NaN");
        return;
    }
    if (isinf (value)) {
        snprintf (out, outlen, value > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int precision = 15; precision <= 17; precision++) {
        snprintf (out, outlen, "%.*g", precision, value);
        if (strtod (out, NULL) == value)
            return;
    }
}

static void
s_write_help (FILE *out, const s_family_t *family)
{
    /* In HELP text only backslash and newline are escaped. */
    fprintf (out, "# HELP %s ", family->name);
    for (const char *p = family->help; *p; p++) {
        if (*p == '\\')
            fputs ("\\\\", out);
        else if (*p == '\n')
            fputs ("\\n", out);
        else
            fputc (*p, out);
    }
    fputc ('\n', out);
}

static void
s_write_histogram (FILE *out, const char *name, const char *labels, const rt_histogram_t *h)
{
    char number[64];
    const char *comma = *labels ? "," : "";
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= h->nbounds; i++) {
        cumulative +=
            atomic_load_explicit ((atomic_uint_fast64_t *)&h->buckets[i], memory_order_relaxed);
        if (i < h->nbounds)
            s_format_double (number, sizeof number, h->bounds[i]);
        else
            snprintf (number, sizeof number, "+Inf");
        fprintf (out, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, comma, number,
                 (unsigned long long)cumulative);
    }
    s_format_double (number, sizeof number,
                     s_double (atomic_load_explicit ((atomic_uint_fast64_t *)&h->sum_bits,
                                                     memory_order_relaxed)));
    if (*labels) {
        fprintf (out, "%s_sum{%s} %s\n", name, labels, number);
        fprintf (out, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cumulative);
    } else {
        fprintf (out, "%s_sum %s\n", name, number);
        fprintf (out, "%s_count %llu\n", name, (unsigned long long)cumulative);
    }
}

char *
rt_metrics_render (rt_metrics_t *self)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    char *text = NULL;
    size_t len = 0;
    assert (self);
    FILE *out = open_memstream (&text, &len);
    if (!out)
        return NULL;

    pthread_mutex_lock (&self->lock);
    for (size_t f = 0; f < self->nfamilies; f++) {
        const s_family_t *family = self->families[f];
        s_write_help (out, family);
        fprintf (out, "# TYPE %s %s\n", family->name, type_names[family->type]);
        for (size_t s = 0; s < family->nseries; s++) {
            const s_series_t *series = family->series[s];
            const char *open = *series->labels ? "{" : "";
            const char *close = *series->labels ? "}" : "";
            char number[64];
            switch (family->type) {
            case S_COUNTER:
                fprintf (out, "%s%s%s%s %llu\n", family->name, open, series->labels, close,
                         (unsigned long long)rt_counter_value (&series->m.counter));
                break;
            case S_GAUGE:
                s_format_double (number, sizeof number, rt_gauge_value (&series->m.gauge));
                fprintf (out, "%s%s%s%s %s\n", family->name, open, series->labels, close, number);
                break;
            case S_HISTOGRAM:
                s_write_histogram (out, family->name, series->labels, &series->m.histogram);
                break;
            }
        }
    }
    pthread_mutex_unlock (&self->lock);

    bool failed = ferror (out) != 0;
    if (fclose (out) != 0)
        failed = true;
    if (failed) {
        free (text);
        return NULL;
    }
    return text;
}
