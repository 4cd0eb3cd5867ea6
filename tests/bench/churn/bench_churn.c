/*
 * bench_churn: times the customer-value library.
 *
 *   cdnow_fit_ms  BG/NBD fit of the CDNOW summary (2,357 customers)
 *   fit_1m_ms     BG/NBD and Gamma-Gamma fits of 1,000,000 simulated
 *                 customers (dates in whole days, times in weeks)
 *   score_1m_ms   scoring them: P(alive), expected purchases over 90
 *                 days, RFM segment, expected spend, 12-month CLV
 * Each figure is the median over --runs runs (CDNOW: 10 times as many).
 * Simulating the customers is not timed. Prints a detail line, then one
 * JSON line with the three figures last.
 *
 *   bench_churn --cdnow FILE [--customers N] [--runs R]
 */
#include "bgnbd.h"
#include "gammagamma.h"
#include "loader.h"
#include "score.h"
#include "simulate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int
s_cmp (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double
s_median (double *v, int n)
{
    qsort (v, (size_t)n, sizeof *v, s_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int
main (int argc, char **argv)
{
    const char *cdnow = NULL;
    size_t customers = 1000000;
    int runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp (argv[i], "--cdnow") == 0)
            cdnow = argv[i + 1];
        else if (strcmp (argv[i], "--customers") == 0)
            customers = strtoul (argv[i + 1], NULL, 10);
        else if (strcmp (argv[i], "--runs") == 0)
            runs = atoi (argv[i + 1]);
    }
    if (!cdnow || runs < 1 || runs > 100 || customers == 0) {
        fprintf (stderr, "usage: bench_churn --cdnow FILE [--customers N] [--runs R]\n");
        return 2;
    }
    char err[512];
    summary_t *s = loader_read_summary (cdnow, 7, err, sizeof err);
    if (!s) {
        fprintf (stderr, "bench_churn: %s\n", err);
        return 1;
    }
    int cdnow_runs = 10 * runs;
    double *t_cdnow = calloc ((size_t)cdnow_runs, sizeof (double));
    bgnbd_fit_t bg;
    for (int i = 0; i < cdnow_runs; i++) {
        double t0 = s_now_ms ();
        if (bgnbd_fit (s->frequency, s->recency, s->T, s->n, NULL, &bg, err, sizeof err) != 0) {
            fprintf (stderr, "bench_churn: %s\n", err);
            return 1;
        }
        t_cdnow[i] = s_now_ms () - t0;
    }
    summary_destroy (&s);

    /* CDNOW-like customers acquired over a year, purchases dated by day. */
    simulate_opts_t o = {.bgnbd = {0.243, 4.414, 0.793, 2.426},
                         .spend = {6.25, 3.74, 15.44},
                         .T_min = 0,
                         .T_max = 52,
                         .resolution = 1.0 / 7,
                         .unit_days = 7};
    s = simulate_customers (&o, customers, 42);
    if (!s) {
        fprintf (stderr, "bench_churn: out of memory\n");
        return 1;
    }
    double *t_fit = calloc ((size_t)runs, sizeof (double));
    double *t_score = calloc ((size_t)runs, sizeof (double));
    gammagamma_fit_t gg;
    score_opts_t so = {
        .horizon = 90.0 / 7, .clv_periods = 12, .period = 30.0 / 7, .discount = 0.01};
    for (int i = 0; i < runs; i++) {
        double t0 = s_now_ms ();
        if (bgnbd_fit (s->frequency, s->recency, s->T, s->n, NULL, &bg, err, sizeof err) != 0 ||
            gammagamma_fit (s->frequency, s->monetary, s->n, &gg, err, sizeof err) != 0) {
            fprintf (stderr, "bench_churn: %s\n", err);
            return 1;
        }
        double t1 = s_now_ms ();
        score_t *sc = score_run (s, &bg.params, &gg.params, &so, err, sizeof err);
        if (!sc) {
            fprintf (stderr, "bench_churn: %s\n", err);
            return 1;
        }
        t_score[i] = s_now_ms () - t1;
        t_fit[i] = t1 - t0;
        score_destroy (&sc);
    }
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    fprintf (stderr,
             "bench_churn: %zu customers; fit r=%.4f alpha=%.4f a=%.4f b=%.4f (%s, %d iterations)"
             " p=%.3f q=%.3f v=%.3f; peak RSS %.1f MB\n",
             customers, bg.params.r, bg.params.alpha, bg.params.a, bg.params.b,
             bg.converged ? "converged" : "NOT converged", bg.iterations, gg.params.p, gg.params.q,
             gg.params.v, ru.ru_maxrss / 1024.0);
    printf (
        "{\"cdnow_fit_ms\":%.3f,\"fit_1m_ms\":%.1f,\"score_1m_ms\":%.1f,\"peak_rss_mb\":%.1f}\n",
        s_median (t_cdnow, cdnow_runs), s_median (t_fit, runs), s_median (t_score, runs),
        ru.ru_maxrss / 1024.0);
    summary_destroy (&s);
    free (t_cdnow);
    free (t_fit);
    free (t_score);
    return 0;
}
