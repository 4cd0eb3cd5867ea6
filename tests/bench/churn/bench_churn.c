/*
 * bench_churn: times the customer-value library.
 *
 *   cdnow_fit_ms  BG/NBD fit of the CDNOW summary (2,357 customers)
 *   fit_1m_ms     BG/NBD and Gamma-Gamma fits of 1,000,000 simulated
 *                 customers (dates in whole days, times in weeks)
 *   score_1m_ms   scoring them: P(alive), expected purchases over 90
 *                 days, RFM segment, expected spend, 12-month CLV
 * Each figure is the median over --runs runs (CDNOW: 10 times as many).
 * Simulating the customers is not timed.
 *
 * A fast wrong answer is no benchmark, so every timed fit is checked
 * before any figure is printed: each CDNOW fit must converge to the
 * published values [FHL05] (r, alpha, a, b to their three decimals, the
 * log-likelihood to its one), and each fit of the simulated customers
 * (BG/NBD and Gamma-Gamma) must converge and, from 100,000 customers up,
 * give back the parameters they were simulated with within 15% (the
 * simulation dates purchases by whole days, which biases alpha and b by a
 * few per cent). A failed check prints why and exits 1. Then a detail
 * line on stderr, and one JSON line with the three figures last.
 *
 *   bench_churn --cdnow FILE [--customers N] [--runs R]
 */
#include "churn/bgnbd.h"
#include "churn/files.h"
#include "churn/gammagamma.h"
#include "churn/score.h"
#include "churn/simulate.h"

#include <math.h>
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

/* [FHL05] Fader, Hardie and Lee, "Counting your customers the easy way",
 * Marketing Science 24(2), 2005: the CDNOW fit, as published. */
static const churn_bgnbd_params_t s_paper = {0.243, 4.414, 0.793, 2.426};
#define PAPER_LL        (-9582.4)
#define PAPER_DIGITS    0.0005 /* parameters published to three decimals */
#define PAPER_LL_DIGITS 0.05   /* the log-likelihood to one */
#define RECOVERY        0.15   /* simulated parameters given back this close */
#define RECOVERY_FROM   100000 /* customers from which recovery is checked */

/* 0 when the CDNOW fit is the published one; else -1 with the reason. */
static int
s_check_cdnow (const churn_bgnbd_fit_t *f, char *why, size_t cap)
{
    const double got[4] = {f->params.r, f->params.alpha, f->params.a, f->params.b};
    const double want[4] = {s_paper.r, s_paper.alpha, s_paper.a, s_paper.b};
    static const char *name[4] = {"r", "alpha", "a", "b"};
    if (!f->converged) {
        snprintf (why, cap, "CDNOW fit did not converge (%d iterations, gradient %.3g)",
                  f->iterations, f->gradient_norm);
        return -1;
    }
    for (int i = 0; i < 4; i++)
        if (fabs (got[i] - want[i]) > PAPER_DIGITS) {
            snprintf (why, cap, "CDNOW fit gave %s = %.4f, the paper %.3f", name[i], got[i],
                      want[i]);
            return -1;
        }
    if (fabs (f->log_likelihood - PAPER_LL) > PAPER_LL_DIGITS) {
        snprintf (why, cap, "CDNOW fit's log-likelihood %.2f, the paper's %.1f", f->log_likelihood,
                  PAPER_LL);
        return -1;
    }
    return 0;
}

/* 0 when the fits of the simulated customers converged (and, with enough
 * customers, gave back what they were simulated with); else -1. */
static int
s_check_simulated (const churn_bgnbd_fit_t *bg, const churn_gammagamma_fit_t *gg,
                   const churn_simulate_opts_t *o, size_t customers, char *why, size_t cap)
{
    const double got[7] = {bg->params.r, bg->params.alpha, bg->params.a, bg->params.b,
                           gg->params.p, gg->params.q,     gg->params.v};
    const double want[7] = {o->bgnbd.r, o->bgnbd.alpha, o->bgnbd.a, o->bgnbd.b,
                            o->spend.p, o->spend.q,     o->spend.v};
    static const char *name[7] = {"r", "alpha", "a", "b", "p", "q", "v"};
    if (!bg->converged || !gg->converged) {
        snprintf (
            why, cap, "fit of %zu simulated customers did not converge (BG/NBD %s, Gamma-Gamma %s)",
            customers, bg->converged ? "converged" : "not", gg->converged ? "converged" : "not");
        return -1;
    }
    for (int i = 0; customers >= RECOVERY_FROM && i < 7; i++)
        if (fabs (got[i] - want[i]) > RECOVERY * want[i]) {
            snprintf (why, cap,
                      "fit of %zu simulated customers gave %s = %.4f, simulated with %.4f",
                      customers, name[i], got[i], want[i]);
            return -1;
        }
    return 0;
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
    churn_summary_t *s = churn_files_read_summary (cdnow, 7, err, sizeof err);
    if (!s) {
        fprintf (stderr, "bench_churn: %s\n", err);
        return 1;
    }
    int cdnow_runs = 10 * runs;
    double *t_cdnow = calloc ((size_t)cdnow_runs, sizeof (double));
    churn_bgnbd_fit_t bg;
    for (int i = 0; i < cdnow_runs; i++) {
        double t0 = s_now_ms ();
        if (churn_bgnbd_fit (s->frequency, s->recency, s->T, s->n, NULL, &bg, err, sizeof err) !=
            0) {
            fprintf (stderr, "bench_churn: %s\n", err);
            return 1;
        }
        t_cdnow[i] = s_now_ms () - t0;
        if (s_check_cdnow (&bg, err, sizeof err) != 0) {
            fprintf (stderr, "bench_churn: FAIL: %s\n", err);
            return 1;
        }
    }
    fprintf (stderr,
             "bench_churn: CDNOW fit r=%.4f alpha=%.4f a=%.4f b=%.4f LL=%.2f (converged, %d"
             " iterations): the published values\n",
             bg.params.r, bg.params.alpha, bg.params.a, bg.params.b, bg.log_likelihood,
             bg.iterations);
    churn_summary_destroy (&s);

    /* CDNOW-like customers acquired over a year, purchases dated by day. */
    churn_simulate_opts_t o = {.bgnbd = {0.243, 4.414, 0.793, 2.426},
                               .spend = {6.25, 3.74, 15.44},
                               .T_min = 0,
                               .T_max = 52,
                               .resolution = 1.0 / 7,
                               .unit_days = 7};
    s = churn_simulate_customers (&o, customers, 42);
    if (!s) {
        fprintf (stderr, "bench_churn: out of memory\n");
        return 1;
    }
    double *t_fit = calloc ((size_t)runs, sizeof (double));
    double *t_score = calloc ((size_t)runs, sizeof (double));
    churn_gammagamma_fit_t gg;
    churn_score_opts_t so = {
        .horizon = 90.0 / 7, .clv_periods = 12, .period = 30.0 / 7, .discount = 0.01};
    for (int i = 0; i < runs; i++) {
        double t0 = s_now_ms ();
        if (churn_bgnbd_fit (s->frequency, s->recency, s->T, s->n, NULL, &bg, err, sizeof err) !=
                0 ||
            churn_gammagamma_fit (s->frequency, s->monetary, s->n, &gg, err, sizeof err) != 0) {
            fprintf (stderr, "bench_churn: %s\n", err);
            return 1;
        }
        t_fit[i] = s_now_ms () - t0;
        if (s_check_simulated (&bg, &gg, &o, customers, err, sizeof err) != 0) {
            fprintf (stderr, "bench_churn: FAIL: %s\n", err);
            return 1;
        }
        double t1 = s_now_ms ();
        churn_score_t *sc = churn_score_run (s, &bg.params, &gg.params, &so, err, sizeof err);
        if (!sc) {
            fprintf (stderr, "bench_churn: %s\n", err);
            return 1;
        }
        t_score[i] = s_now_ms () - t1;
        churn_score_destroy (&sc);
    }
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    fprintf (stderr,
             "bench_churn: %zu customers; fit r=%.4f alpha=%.4f a=%.4f b=%.4f (converged, %d"
             " iterations) p=%.3f q=%.3f v=%.3f (converged); peak RSS %.1f MB\n",
             customers, bg.params.r, bg.params.alpha, bg.params.a, bg.params.b, bg.iterations,
             gg.params.p, gg.params.q, gg.params.v, ru.ru_maxrss / 1024.0);
    printf (
        "{\"cdnow_fit_ms\":%.3f,\"fit_1m_ms\":%.1f,\"score_1m_ms\":%.1f,\"peak_rss_mb\":%.1f}\n",
        s_median (t_cdnow, cdnow_runs), s_median (t_fit, runs), s_median (t_score, runs),
        ru.ru_maxrss / 1024.0);
    churn_summary_destroy (&s);
    free (t_cdnow);
    free (t_fit);
    free (t_score);
    return 0;
}
