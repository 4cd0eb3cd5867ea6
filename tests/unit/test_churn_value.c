/*
 * Tests services/loyalty/churn/gammagamma, score, rfm, rate and pareto: spend,
 * CLV, RFM segments, churn rate and the Pareto report.
 *
 * Expected values:
 *   - Gamma-Gamma on CDNOW's repeat customers: p = 6.25, q = 3.74,
 *     v = 15.44 (Fader & Hardie 2013, "The Gamma-Gamma model of monetary
 *     value", brucehardie.com/notes/025; asserted to two decimals by the
 *     lifetimes library's tests, TestGammaGammaFitter), and the expected
 *     average spend of the first ten customers 24.65, 18.91, 35.17, 35.17,
 *     35.17, 71.46, 18.91, 35.17, 27.28, 35.17 (Hardie's spreadsheet, same
 *     lifetimes test, test_conditional_expected_average_profit, +-0.1).
 *   - CLV: with no discount the sum telescopes to spend x E[Y(K L)], an
 *     identity checked against churn_bgnbd_expected.
 *   - RFM, churn rate and Pareto: small hand-made cases worked out in the
 *     comments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "churn/files.h"
#include "churn/gammagamma.h"
#include "churn/pareto.h"
#include "churn/rate.h"
#include "churn/rfm.h"
#include "churn/score.h"

#define CDNOW_DIR RT_TEST_SOURCE_DIR "/tests/data/cdnow/"

static int32_t
s_day (const char *text)
{
    int32_t d;
    assert_int_equal (churn_history_parse_date (text, strlen (text), &d), 0);
    return d;
}

static churn_summary_t *
s_cdnow (void)
{
    char err[512];
    churn_history_t *l = churn_files_read_transactions (CDNOW_DIR "CDNOW_sample.txt",
                                                        CHURN_FILES_CDNOW, err, sizeof err);
    if (!l)
        fail_msg ("%s", err);
    churn_summary_t *s = churn_history_summarize (l, s_day ("1997-09-30"), s_day ("1997-09-30"), 7);
    churn_history_destroy (&l);
    return s;
}

static void
test_gamma_gamma_matches_hardie (void **state)
{
    (void)state;
    churn_summary_t *s = s_cdnow ();
    churn_gammagamma_fit_t fit;
    char err[256];
    assert_int_equal (churn_gammagamma_fit (s->frequency, s->monetary, s->n, &fit, err, sizeof err),
                      0);
    assert_true (fit.converged);
    assert_int_equal (fit.customers, 946);
    assert_true (fabs (fit.params.p - 6.25) < 0.005);
    assert_true (fabs (fit.params.q - 3.74) < 0.005);
    assert_true (fabs (fit.params.v - 15.44) < 0.005);
    const double want[] = {24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17};
    const churn_gammagamma_params_t rounded = {6.25, 3.74, 15.44};
    for (int i = 0; i < 10; i++) {
        double spend;
        assert_int_equal (
            churn_gammagamma_expected_spend (&fit.params, s->frequency[i], s->monetary[i], &spend),
            0);
        assert_true (fabs (spend - want[i]) < 0.02);
        assert_int_equal (
            churn_gammagamma_expected_spend (&rounded, s->frequency[i], s->monetary[i], &spend), 0);
        assert_true (fabs (spend - want[i]) < 0.1);
    }
    /* Undefined spend is reported, not made up. */
    churn_gammagamma_params_t heavy = {1, 0.8, 10};
    double spend;
    assert_int_equal (churn_gammagamma_expected_spend (&heavy, 0, 0, &spend), -1);
    /* No repeat buyer with a positive spend: nothing to fit. */
    double x[] = {0, 1}, m[] = {0, 0};
    assert_int_equal (churn_gammagamma_fit (x, m, 2, &fit, err, sizeof err), -1);
    churn_summary_destroy (&s);
}

static void
test_score_and_clv (void **state)
{
    (void)state;
    churn_summary_t *s = s_cdnow ();
    churn_bgnbd_fit_t bg;
    churn_gammagamma_fit_t gg;
    char err[256];
    assert_int_equal (
        churn_bgnbd_fit (s->frequency, s->recency, s->T, s->n, NULL, &bg, err, sizeof err), 0);
    assert_int_equal (churn_gammagamma_fit (s->frequency, s->monetary, s->n, &gg, err, sizeof err),
                      0);
    /* 12 months of 30 days, in weeks; no discount first. */
    churn_score_opts_t o = {.horizon = 52, .clv_periods = 12, .period = 30.0 / 7, .discount = 0};
    churn_score_t *sc = churn_score_run (s, &bg.params, &gg.params, &o, err, sizeof err);
    assert_non_null (sc);
    for (size_t i = 0; i < s->n; i++) {
        double x = s->frequency[i], t_x = s->recency[i], T = s->T[i];
        assert_true (fabs (sc->p_alive[i] - churn_bgnbd_p_alive (&bg.params, x, t_x, T)) < 1e-15);
        assert_true (fabs (sc->expected[i] - churn_bgnbd_expected (&bg.params, x, t_x, T, 52)) <
                     1e-12);
        double spend;
        assert_int_equal (churn_gammagamma_expected_spend (&gg.params, x, s->monetary[i], &spend),
                          0);
        double clv = spend * churn_bgnbd_expected (&bg.params, x, t_x, T, 12 * 30.0 / 7);
        assert_true (fabs (sc->clv[i] - clv) < 1e-9 * fmax (1, clv));
        assert_true (sc->r[i] >= 1 && sc->r[i] <= 5 && sc->segment[i] < CHURN_RFM_SEGMENTS);
    }
    churn_score_destroy (&sc);
    /* A 1% monthly discount: each month's purchases weigh 1.01^-k. */
    o.discount = 0.01;
    sc = churn_score_run (s, &bg.params, &gg.params, &o, err, sizeof err);
    double x = s->frequency[0], t_x = s->recency[0], T = s->T[0], clv = 0, prev = 0;
    for (int k = 1; k <= 12; k++) {
        double cur = churn_bgnbd_expected (&bg.params, x, t_x, T, k * 30.0 / 7);
        clv += (cur - prev) / pow (1.01, k);
        prev = cur;
    }
    assert_true (fabs (sc->clv[0] - sc->spend[0] * clv) < 1e-9);
    churn_score_destroy (&sc);
    /* Without a spend model there is no spend and no CLV. */
    sc = churn_score_run (s, &bg.params, NULL, &o, err, sizeof err);
    assert_null (sc->spend);
    assert_null (sc->clv);
    churn_score_destroy (&sc);
    assert_null (sc);
    churn_summary_destroy (&s);
}

static void
test_rfm (void **state)
{
    (void)state;
    /* 1..10: value k+1 beats k others: score 1 + floor(5 k / 10). */
    double v[10] = {7, 3, 9, 1, 5, 10, 2, 8, 4, 6};
    uint8_t sc[10];
    assert_int_equal (churn_rfm_quintiles (v, 10, true, sc), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal (sc[i], 1 + (int)(v[i] - 1) / 2);
    assert_int_equal (churn_rfm_quintiles (v, 10, false, sc), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal (sc[i], 1 + (int)(10 - v[i]) / 2);
    /* Ties share the lowest score of their span: six zeros beat nobody. */
    double t[10] = {0, 0, 0, 0, 0, 0, 3, 4, 5, 6};
    assert_int_equal (churn_rfm_quintiles (t, 10, true, sc), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal (sc[i], 1);
    assert_int_equal (sc[6], 4); /* beats 6 of 10 */
    assert_int_equal (sc[9], 5);

    /* The segment table as documented in rfm.h and the README. */
    static const char *const table[5][5] = {
        {"hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"},
        {"hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"},
        {"about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"},
        {"promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"},
        {"new", "potential_loyalist", "potential_loyalist", "champions", "champions"},
    };
    for (int r = 1; r <= 5; r++)
        for (int fm = 1; fm <= 5; fm++)
            assert_string_equal (churn_rfm_segment_name (churn_rfm_segment (r, fm)),
                                 table[r - 1][fm - 1]);

    /* Five customers worked through the table:
     *        gap  F-beats  M-beats  R F M  FM  segment
     *   0      1     4        4     4 5 5   5  loyal
     *   1    100     0        1     1 1 2   2  hibernating
     *   2    0.5     0        0     5 1 1   1  new
     *   3     50     2        2     3 3 3   3  need_attention
     *   4     99     3        3     2 4 4   4  at_risk */
    churn_summary_t *s = churn_summary_new (5, CHURN_SUMMARY_MONEY, 1);
    double f[5] = {20, 0, 0, 1, 19}, rec[5] = {99, 0, 0, 50, 1}, T[5] = {100, 100, 0.5, 100, 100},
           rev[5] = {900, 10, 5, 30, 800};
    memcpy (s->frequency, f, sizeof f);
    memcpy (s->recency, rec, sizeof rec);
    memcpy (s->T, T, sizeof T);
    memcpy (s->revenue, rev, sizeof rev);
    uint8_t r[5], fs[5], m[5], seg[5];
    assert_int_equal (churn_rfm_score (s, r, fs, m, seg), 0);
    const char *want[5] = {"loyal", "hibernating", "new", "need_attention", "at_risk"};
    for (int i = 0; i < 5; i++)
        assert_string_equal (churn_rfm_segment_name (seg[i]), want[i]);
    churn_summary_destroy (&s);
}

static void
test_churn_rate_and_pareto (void **state)
{
    (void)state;
    churn_history_t *l = churn_history_new ();
    /* Period (2024-03-31, 2024-04-30], lost = 30 days without a purchase.
     * ann: bought 03-20 and 04-25: active at both ends -> retained.
     * bob: bought 03-15 only: active on 03-31 (16 days), not on 04-30 -> lost.
     * cy:  bought 01-10: inactive on 03-31; 04-20 again -> returned.
     * dee: first purchase 04-10 -> new.
     * eve: bought 02-01: inactive at both ends -> not counted. */
    churn_history_add (l, "ann", 3, s_day ("2024-03-20"), 100);
    churn_history_add (l, "ann", 3, s_day ("2024-04-25"), 100);
    churn_history_add (l, "bob", 3, s_day ("2024-03-15"), 10);
    churn_history_add (l, "cy", 2, s_day ("2024-01-10"), 10);
    churn_history_add (l, "cy", 2, s_day ("2024-04-20"), 10);
    churn_history_add (l, "dee", 3, s_day ("2024-04-10"), 10);
    churn_history_add (l, "eve", 3, s_day ("2024-02-01"), 50);
    churn_rate_definition_t def = {.rule = CHURN_RATE_INACTIVE, .inactive_days = 30};
    churn_rate_t rate;
    char err[256];
    assert_int_equal (churn_rate_compute (l, &def, s_day ("2024-03-31"), s_day ("2024-04-30"),
                                          &rate, err, sizeof err),
                      0);
    assert_int_equal (rate.at_start, 2);
    assert_int_equal (rate.lost, 1);
    assert_int_equal (rate.retained, 1);
    assert_int_equal (rate.returned, 1);
    assert_int_equal (rate.new_customers, 1);
    assert_true (rate.defined && rate.rate == 0.5);
    char text[256];
    churn_rate_describe (&def, text, sizeof text);
    assert_string_equal (text, "lost = no purchase in the last 30 days");
    /* Nobody active at the start: undefined, not a division by zero. */
    assert_int_equal (churn_rate_compute (l, &def, s_day ("2023-12-01"), s_day ("2023-12-31"),
                                          &rate, err, sizeof err),
                      0);
    assert_false (rate.defined);
    assert_true (rate.rate == 0);
    assert_int_equal (churn_rate_compute (l, &def, s_day ("2024-04-30"), s_day ("2024-03-31"),
                                          &rate, err, sizeof err),
                      -1);

    /* P(alive) rule with the paper's parameters in days: ann (one repeat
     * purchase, 5 days ago) is alive; a customer who bought 10 times in
     * January and never since is not. One-time buyers stay alive. */
    for (int i = 0; i < 10; i++)
        churn_history_add (l, "zed", 3, s_day ("2024-01-01") + 3 * i, 5);
    churn_rate_definition_t pa = {.rule = CHURN_RATE_P_ALIVE,
                                  .p_alive_threshold = 0.5,
                                  .params = {0.243, 4.414 * 7, 0.793, 2.426},
                                  .unit_days = 1};
    assert_int_equal (churn_rate_compute (l, &pa, s_day ("2024-01-31"), s_day ("2024-04-30"), &rate,
                                          err, sizeof err),
                      0);
    /* Customers on 01-31: zed (last purchase 01-28) and cy (one-time,
     * P(alive) = 1), both active. Lost by 04-30: zed. ann, bob, dee and eve
     * are new in this period. */
    assert_int_equal (rate.at_start, 2);
    assert_int_equal (rate.new_customers, 4);
    assert_int_equal (rate.lost, 1);
    churn_history_destroy (&l);

    churn_pareto_t p;
    double one[10] = {100, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal (churn_pareto_compute (one, 10, 0.2, &p), 0);
    assert_true (p.defined && p.top_customers == 2 && p.top_revenue_share == 1.0);
    assert_true (fabs (p.customers_for_80 - 0.1) < 1e-12);
    double flat[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal (churn_pareto_compute (flat, 10, 0.2, &p), 0);
    assert_true (fabs (p.top_revenue_share - 0.2) < 1e-12);
    assert_true (fabs (p.customers_for_80 - 0.8) < 1e-12);
    double none[3] = {0, 0, 0};
    assert_int_equal (churn_pareto_compute (none, 3, 0.2, &p), 0);
    assert_false (p.defined);
    assert_int_equal (churn_pareto_compute (none, 0, 0.2, &p), 0);
    assert_int_equal (churn_pareto_compute (none, 3, 0, &p), -1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_gamma_gamma_matches_hardie),
        cmocka_unit_test (test_score_and_clv),
        cmocka_unit_test (test_rfm),
        cmocka_unit_test (test_churn_rate_and_pareto),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
