/*
 * test_metrics: what Prometheus sees when it scrapes /metrics. The text must
 * parse per the exposition format 0.0.4, each name under one HELP/TYPE, a
 * histogram's buckets cumulative and ending in +Inf == _count, labels merged
 * with le; and updates from several threads must all count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rt_metrics.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One sample line of the exposition. */
typedef struct {
    char name[128];   /* the sample's metric name, with _bucket etc. */
    char labels[256]; /* between the braces, as written; "" for none */
    double value;     /* the sample value */
} s_sample_t;

/* A parsed scrape. */
typedef struct {
    s_sample_t *samples; /* in text order */
    size_t count;        /* entries in samples */
    char types[64][128]; /* names seen in # TYPE lines, in order */
    char kinds[64][16];  /* the type of each, same index */
    size_t ntypes;       /* entries in types */
} s_scrape_t;

static bool
s_name_char (char c, bool first)
{
    return isalpha ((unsigned char)c) || c == '_' || c == ':' ||
           (!first && isdigit ((unsigned char)c));
}

/* Checks `label="value",...` syntax (label names without ':'). */
static void
s_check_labels (const char *labels, const char *line)
{
    const char *p = labels;
    while (*p) {
        if (!isalpha ((unsigned char)*p) && *p != '_')
            fail_msg ("bad label name in: %s", line);
        while (isalnum ((unsigned char)*p) || *p == '_')
            p++;
        if (p[0] != '=' || p[1] != '"')
            fail_msg ("label without =\"value\" in: %s", line);
        p += 2;
        while (*p && *p != '"') {
            if (*p == '\\') {
                if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                    fail_msg ("bad escape in label value: %s", line);
                p++;
            }
            p++;
        }
        if (*p != '"')
            fail_msg ("unterminated label value in: %s", line);
        p++;
        if (*p == ',')
            p++;
        else if (*p)
            fail_msg ("junk after a label in: %s", line);
    }
}

static double
s_parse_value (const char *text, const char *line)
{
    if (strcmp (text, "+Inf") == 0)
        return INFINITY;
    if (strcmp (text, "-Inf") == 0)
        return -INFINITY;
    if (strcmp (text, "NaN") == 0)
        return NAN;
    char *end = NULL;
    double value = strtod (text, &end);
    if (end == text || *end != '\0' || !isfinite (value))
        fail_msg ("bad sample value \"%s\" in: %s", text, line);
    return value;
}

/* The family a sample name belongs to, given the TYPE lines seen so far. */
static bool
s_belongs (const char *sample, const char *family, const char *kind)
{
    if (strcmp (sample, family) == 0)
        return strcmp (kind, "histogram") != 0;
    if (strcmp (kind, "histogram") != 0)
        return false;
    size_t n = strlen (family);
    return strncmp (sample, family, n) == 0 &&
           (strcmp (sample + n, "_bucket") == 0 || strcmp (sample + n, "_sum") == 0 ||
            strcmp (sample + n, "_count") == 0);
}

/* Parses text strictly; any deviation from the format fails the test. */
static void
s_parse (const char *text, s_scrape_t *scrape)
{
    memset (scrape, 0, sizeof *scrape);
    size_t len = strlen (text);
    assert_true (len == 0 || text[len - 1] == '\n');
    char *copy = strdup (text);
    assert_non_null (copy);
    char *save = NULL;
    char last_help[128] = "";
    for (char *line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        if (line[0] == '#') {
            char name[128];
            int used = 0;
            if (strncmp (line, "# HELP ", 7) == 0) {
                assert_int_equal (sscanf (line + 7, "%127s%n", name, &used), 1);
                for (const char *p = name; *p; p++)
                    assert_true (s_name_char (*p, p == name));
                snprintf (last_help, sizeof last_help, "%s", name);
            } else if (strncmp (line, "# TYPE ", 7) == 0) {
                char kind[16];
                assert_int_equal (sscanf (line + 7, "%127s %15s%n", name, kind, &used), 2);
                assert_int_equal (line[7 + used], '\0');
                if (strcmp (kind, "counter") && strcmp (kind, "gauge") &&
                    strcmp (kind, "histogram") && strcmp (kind, "summary") &&
                    strcmp (kind, "untyped"))
                    fail_msg ("bad type in: %s", line);
                /* HELP, when there is one, names the same metric. */
                if (*last_help)
                    assert_string_equal (last_help, name);
                for (size_t i = 0; i < scrape->ntypes; i++) {
                    if (strcmp (scrape->types[i], name) == 0)
                        fail_msg ("second TYPE line for %s", name);
                }
                assert_true (scrape->ntypes < 64);
                snprintf (scrape->types[scrape->ntypes], 128, "%s", name);
                snprintf (scrape->kinds[scrape->ntypes], 16, "%s", kind);
                scrape->ntypes++;
                last_help[0] = '\0';
            } else
                fail_msg ("unknown comment line: %s", line);
            continue;
        }
        s_sample_t sample = {0};
        const char *p = line;
        size_t n = 0;
        while (s_name_char (*p, p == line) && n < sizeof sample.name - 1)
            sample.name[n++] = *p++;
        if (n == 0)
            fail_msg ("sample without a name: %s", line);
        if (*p == '{') {
            const char *close = strstr (p, "} ");
            if (!close)
                fail_msg ("unterminated labels: %s", line);
            size_t lablen = (size_t)(close - p - 1);
            assert_true (lablen < sizeof sample.labels);
            memcpy (sample.labels, p + 1, lablen);
            s_check_labels (sample.labels, line);
            p = close + 1;
        }
        if (*p != ' ')
            fail_msg ("no space before the value: %s", line);
        sample.value = s_parse_value (p + 1, line);
        /* A sample follows the TYPE line of its own family. */
        assert_true (scrape->ntypes > 0);
        if (!s_belongs (sample.name, scrape->types[scrape->ntypes - 1],
                        scrape->kinds[scrape->ntypes - 1]))
            fail_msg ("sample %s outside its family", sample.name);
        scrape->samples = realloc (scrape->samples, (scrape->count + 1) * sizeof sample);
        assert_non_null (scrape->samples);
        scrape->samples[scrape->count++] = sample;
    }
    free (copy);
}

static const s_sample_t *
s_find (const s_scrape_t *scrape, const char *name, const char *labels)
{
    for (size_t i = 0; i < scrape->count; i++) {
        if (strcmp (scrape->samples[i].name, name) == 0 &&
            strcmp (scrape->samples[i].labels, labels) == 0)
            return &scrape->samples[i];
    }
    fail_msg ("no sample %s{%s}", name, labels);
    return NULL;
}

static double
s_value (const s_scrape_t *scrape, const char *name, const char *labels)
{
    return s_find (scrape, name, labels)->value;
}

static void
s_scrape (rt_metrics_t *metrics, s_scrape_t *scrape)
{
    char *text = rt_metrics_render (metrics);
    assert_non_null (text);
    s_parse (text, scrape);
    free (text);
}

static void
s_scrape_free (s_scrape_t *scrape)
{
    free (scrape->samples);
    scrape->samples = NULL;
}

/* Checks every histogram series of name: le ascending and ending in +Inf,
 * counts cumulative, +Inf equal to _count. Returns the number of series. */
static int
s_check_histogram (const s_scrape_t *scrape, const char *name)
{
    char bucket[160], count[160];
    snprintf (bucket, sizeof bucket, "%s_bucket", name);
    snprintf (count, sizeof count, "%s_count", name);
    int series = 0;
    double previous_le = -INFINITY;
    double previous_count = 0;
    for (size_t i = 0; i < scrape->count; i++) {
        const s_sample_t *s = &scrape->samples[i];
        if (strcmp (s->name, bucket) != 0)
            continue;
        const char *le = strstr (s->labels, "le=\"");
        assert_non_null (le);
        /* le is the last label, after the series' own. */
        assert_int_equal (le[strlen (le) - 1], '"');
        assert_null (strchr (le, ','));
        double bound = strcmp (le, "le=\"+Inf\"") == 0 ? INFINITY : strtod (le + 4, NULL);
        if (previous_le == -INFINITY)
            previous_count = 0;
        assert_true (bound > previous_le);
        assert_true (s->value >= previous_count);
        previous_le = bound;
        previous_count = s->value;
        if (isinf (bound)) {
            /* The series' labels without le name its _count. */
            char labels[256];
            size_t own = (size_t)(le - s->labels);
            if (own > 0)
                own--; /* the comma */
            memcpy (labels, s->labels, own);
            labels[own] = '\0';
            assert_true (s_value (scrape, count, labels) == s->value);
            previous_le = -INFINITY;
            series++;
        }
    }
    return series;
}

static void
test_counter_gauge_basics (void **state)
{
    (void)state;
    rt_metrics_t *metrics = rt_metrics_new ();
    assert_non_null (metrics);
    rt_counter_t *ok =
        rt_metrics_counter (metrics, "rt_test_events_total", "stream=\"order\"", "Events written.");
    rt_counter_t *again =
        rt_metrics_counter (metrics, "rt_test_events_total", "stream=\"order\"", "ignored");
    rt_counter_t *other =
        rt_metrics_counter (metrics, "rt_test_events_total", "stream=\"message\"", NULL);
    rt_counter_t *bare = rt_metrics_counter (metrics, "rt_test_restarts_total", "", "Restarts.");
    assert_non_null (ok);
    assert_ptr_equal (ok, again);
    assert_ptr_not_equal (ok, other);
    rt_counter_add (ok, 41);
    rt_counter_inc (again);
    rt_counter_inc (other);
    assert_int_equal (rt_counter_value (ok), 42);
    assert_int_equal (rt_counter_value (bare), 0);

    rt_gauge_t *lag = rt_metrics_gauge (metrics, "rt_test_lag", "group=\"router\"", "Lag.");
    assert_non_null (lag);
    rt_gauge_set (lag, 12.5);
    rt_gauge_add (lag, -2.25);
    assert_true (rt_gauge_value (lag) == 10.25);
    rt_gauge_t *ratio = rt_metrics_gauge (metrics, "rt_test_ratio", NULL, "A ratio.");
    rt_gauge_set (ratio, 0.1);

    char *text = rt_metrics_render (metrics);
    assert_non_null (text);
    /* One header per name, with the first registration's help. */
    assert_non_null (strstr (text, "# HELP rt_test_events_total Events written.\n"
                                   "# TYPE rt_test_events_total counter\n"));
    assert_null (
        strstr (strstr (text, "# TYPE rt_test_events_total") + 1, "# TYPE rt_test_events_total"));
    assert_null (strstr (text, "ignored"));
    assert_non_null (strstr (text, "rt_test_events_total{stream=\"order\"} 42\n"));
    assert_non_null (strstr (text, "rt_test_events_total{stream=\"message\"} 1\n"));
    assert_non_null (strstr (text, "rt_test_restarts_total 0\n"));
    /* Doubles are written so they read back exactly, and briefly. */
    assert_non_null (strstr (text, "rt_test_ratio 0.1\n"));

    s_scrape_t scrape;
    s_parse (text, &scrape);
    assert_int_equal (scrape.ntypes, 4);
    assert_string_equal (scrape.kinds[2], "gauge");
    assert_true (s_value (&scrape, "rt_test_lag", "group=\"router\"") == 10.25);
    s_scrape_free (&scrape);
    free (text);
    rt_metrics_destroy (&metrics);
    assert_null (metrics);
    rt_metrics_destroy (&metrics);
    rt_metrics_destroy (NULL);
}

static void
test_help_is_escaped (void **state)
{
    (void)state;
    rt_metrics_t *metrics = rt_metrics_new ();
    rt_gauge_t *gauge =
        rt_metrics_gauge (metrics, "rt_test_odd_help", "", "line one\nline two \\ backslash");
    assert_non_null (gauge);
    char *text = rt_metrics_render (metrics);
    assert_non_null (strstr (text, "# HELP rt_test_odd_help line one\\nline two \\\\ backslash\n"));
    s_scrape_t scrape;
    s_parse (text, &scrape);
    assert_int_equal (scrape.count, 1);
    s_scrape_free (&scrape);
    free (text);
    rt_metrics_destroy (&metrics);
}

static void
test_histogram_buckets_are_cumulative (void **state)
{
    (void)state;
    rt_metrics_t *metrics = rt_metrics_new ();
    /* Given out of order on purpose: the registry sorts a copy. */
    double bounds[] = {0.5, 0.1, 1};
    rt_histogram_t *labelled = rt_metrics_histogram (metrics, "rt_test_latency_seconds",
                                                     "stream=\"order\"", "Latency.", bounds, 3);
    rt_histogram_t *plain =
        rt_metrics_histogram (metrics, "rt_test_latency_seconds", "", NULL, bounds, 3);
    assert_non_null (labelled);
    assert_non_null (plain);
    assert_ptr_equal (labelled, rt_metrics_histogram (metrics, "rt_test_latency_seconds",
                                                      "stream=\"order\"", NULL, NULL, 0));
    const double observed[] = {0.05, 0.1, 0.3, 0.7, 2, 5};
    for (size_t i = 0; i < sizeof observed / sizeof observed[0]; i++)
        rt_histogram_observe (labelled, observed[i]);
    rt_histogram_observe (plain, 0.2);
    assert_int_equal (rt_histogram_count (labelled), 6);
    assert_int_equal (rt_histogram_count (plain), 1);

    s_scrape_t scrape;
    s_scrape (metrics, &scrape);
    assert_int_equal (scrape.ntypes, 1);
    assert_string_equal (scrape.kinds[0], "histogram");
    const char *b = "rt_test_latency_seconds_bucket";
    /* A value equal to a bound counts in that bound's bucket (le). */
    assert_true (s_value (&scrape, b, "stream=\"order\",le=\"0.1\"") == 2);
    assert_true (s_value (&scrape, b, "stream=\"order\",le=\"0.5\"") == 3);
    assert_true (s_value (&scrape, b, "stream=\"order\",le=\"1\"") == 4);
    assert_true (s_value (&scrape, b, "stream=\"order\",le=\"+Inf\"") == 6);
    assert_true (s_value (&scrape, "rt_test_latency_seconds_count", "stream=\"order\"") == 6);
    assert_true (
        fabs (s_value (&scrape, "rt_test_latency_seconds_sum", "stream=\"order\"") - 8.15) < 1e-9);
    assert_true (s_value (&scrape, b, "le=\"0.1\"") == 0);
    assert_true (s_value (&scrape, b, "le=\"0.5\"") == 1);
    assert_true (s_value (&scrape, b, "le=\"+Inf\"") == 1);
    assert_true (s_value (&scrape, "rt_test_latency_seconds_count", "") == 1);
    assert_true (s_value (&scrape, "rt_test_latency_seconds_sum", "") == 0.2);
    assert_int_equal (s_check_histogram (&scrape, "rt_test_latency_seconds"), 2);
    s_scrape_free (&scrape);
    rt_metrics_destroy (&metrics);
}

static void
test_histogram_default_ladder (void **state)
{
    (void)state;
    rt_metrics_t *metrics = rt_metrics_new ();
    rt_histogram_t *h =
        rt_metrics_histogram (metrics, "rt_test_default_seconds", "", "Default.", NULL, 0);
    assert_non_null (h);
    rt_histogram_observe (h, 0.00005);
    rt_histogram_observe (h, 0.003);
    rt_histogram_observe (h, 60);
    s_scrape_t scrape;
    s_scrape (metrics, &scrape);
    size_t buckets = 0;
    for (size_t i = 0; i < scrape.count; i++)
        buckets += strcmp (scrape.samples[i].name, "rt_test_default_seconds_bucket") == 0;
    assert_int_equal (buckets, 17);
    const char *b = "rt_test_default_seconds_bucket";
    assert_true (s_value (&scrape, b, "le=\"0.0001\"") == 1);
    assert_true (s_value (&scrape, b, "le=\"0.0025\"") == 1);
    assert_true (s_value (&scrape, b, "le=\"0.005\"") == 2);
    assert_true (s_value (&scrape, b, "le=\"10\"") == 2);
    assert_true (s_value (&scrape, b, "le=\"+Inf\"") == 3);
    assert_int_equal (s_check_histogram (&scrape, "rt_test_default_seconds"), 1);
    s_scrape_free (&scrape);
    rt_metrics_destroy (&metrics);
}

#define S_THREADS 4
#define S_ROUNDS  200000

typedef struct {
    rt_counter_t *counter;     /* incremented S_ROUNDS times */
    rt_gauge_t *gauge;         /* moved up by 0.5 S_ROUNDS times */
    rt_histogram_t *histogram; /* observed S_ROUNDS / 10 times */
    int id;                    /* which thread */
} s_worker_t;

static void *
s_work (void *arg)
{
    s_worker_t *w = arg;
    for (int i = 0; i < S_ROUNDS; i++) {
        rt_counter_inc (w->counter);
        rt_gauge_add (w->gauge, 0.5);
        if (i % 10 == 0)
            rt_histogram_observe (w->histogram, (double)(i % 7) * 0.25);
    }
    return NULL;
}

static void
test_updates_from_threads_all_count (void **state)
{
    (void)state;
    rt_metrics_t *metrics = rt_metrics_new ();
    s_worker_t workers[S_THREADS];
    pthread_t threads[S_THREADS];
    double bounds[] = {0.25, 0.5, 1};
    for (int t = 0; t < S_THREADS; t++) {
        /* Each thread registers for itself: the same objects come back. */
        workers[t].counter = rt_metrics_counter (metrics, "rt_test_ops_total", "", "Ops.");
        workers[t].gauge = rt_metrics_gauge (metrics, "rt_test_level", "", "Level.");
        workers[t].histogram =
            rt_metrics_histogram (metrics, "rt_test_size", "", "Sizes.", bounds, 3);
        workers[t].id = t;
    }
    for (int t = 0; t < S_THREADS; t++)
        assert_int_equal (pthread_create (&threads[t], NULL, s_work, &workers[t]), 0);
    /* Scrapes while the threads work must parse and stay consistent. */
    for (int i = 0; i < 20; i++) {
        s_scrape_t scrape;
        s_scrape (metrics, &scrape);
        s_check_histogram (&scrape, "rt_test_size");
        s_scrape_free (&scrape);
    }
    for (int t = 0; t < S_THREADS; t++)
        pthread_join (threads[t], NULL);

    assert_int_equal (rt_counter_value (workers[0].counter), (uint64_t)S_THREADS * S_ROUNDS);
    assert_true (rt_gauge_value (workers[0].gauge) == 0.5 * S_THREADS * S_ROUNDS);
    assert_int_equal (rt_histogram_count (workers[0].histogram), S_THREADS * (S_ROUNDS / 10));

    s_scrape_t scrape;
    s_scrape (metrics, &scrape);
    assert_true (s_value (&scrape, "rt_test_ops_total", "") == (double)S_THREADS * S_ROUNDS);
    assert_true (s_value (&scrape, "rt_test_level", "") == 0.5 * S_THREADS * S_ROUNDS);
    assert_true (s_value (&scrape, "rt_test_size_count", "") == S_THREADS * (S_ROUNDS / 10));
    assert_int_equal (s_check_histogram (&scrape, "rt_test_size"), 1);
    s_scrape_free (&scrape);
    rt_metrics_destroy (&metrics);
}

typedef struct {
    rt_metrics_t *metrics; /* shared registry */
    int id;                /* which registering thread */
} s_registrar_t;

static void *
s_register_many (void *arg)
{
    s_registrar_t *r = arg;
    for (int i = 0; i < 200; i++) {
        char labels[64];
        snprintf (labels, sizeof labels, "thread=\"%d\",partition=\"%d\"", r->id, i);
        rt_counter_t *c = rt_metrics_counter (r->metrics, "rt_test_partition_events_total", labels,
                                              "Per partition.");
        /* cmocka's asserts belong to the main thread: report instead. */
        if (!c)
            return (void *)1;
        rt_counter_inc (c);
    }
    return NULL;
}

static void
test_register_while_rendering (void **state)
{
    (void)state;
    rt_metrics_t *metrics = rt_metrics_new ();
    s_registrar_t registrars[2] = {{metrics, 0}, {metrics, 1}};
    pthread_t threads[2];
    for (int t = 0; t < 2; t++)
        assert_int_equal (pthread_create (&threads[t], NULL, s_register_many, &registrars[t]), 0);
    for (int i = 0; i < 50; i++) {
        s_scrape_t scrape;
        s_scrape (metrics, &scrape);
        s_scrape_free (&scrape);
    }
    for (int t = 0; t < 2; t++) {
        void *failed = NULL;
        pthread_join (threads[t], &failed);
        assert_null (failed);
    }
    s_scrape_t scrape;
    s_scrape (metrics, &scrape);
    assert_int_equal (scrape.count, 400);
    assert_int_equal (scrape.ntypes, 1);
    assert_true (
        s_value (&scrape, "rt_test_partition_events_total", "thread=\"1\",partition=\"199\"") == 1);
    s_scrape_free (&scrape);
    rt_metrics_destroy (&metrics);
}

static void
test_empty_registry (void **state)
{
    (void)state;
    rt_metrics_t *metrics = rt_metrics_new ();
    char *text = rt_metrics_render (metrics);
    assert_non_null (text);
    assert_string_equal (text, "");
    free (text);
    rt_metrics_destroy (&metrics);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_counter_gauge_basics),
        cmocka_unit_test (test_help_is_escaped),
        cmocka_unit_test (test_histogram_buckets_are_cumulative),
        cmocka_unit_test (test_histogram_default_ladder),
        cmocka_unit_test (test_updates_from_threads_all_count),
        cmocka_unit_test (test_register_while_rendering),
        cmocka_unit_test (test_empty_registry),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
