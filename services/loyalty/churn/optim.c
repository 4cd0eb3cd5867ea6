/*
 * optim: BFGS with a strong-Wolfe line search.
 *
 * Sizes are tiny (the models have three or four parameters), so every
 * vector lives on the stack and points are copied freely; the cost is all in
 * the objective, which sums over customers.
 */
#include "optim.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Wolfe constants as usual for quasi-Newton methods (Nocedal & Wright 3.6). */
#define C1 1e-4
#define C2 0.9

#define LINE_MAX_EVALS 40

/* A longer step in log-parameters multiplies a parameter by more than e^8:
 * nothing but a poor curvature estimate asks for that. */
#define MAX_STEP 8.0

typedef struct {
    double alpha; /* step length along d */
    double f;     /* objective */
    double dphi;  /* directional derivative g . d */
    double x[CHURN_OPTIM_MAX_DIM];
    double g[CHURN_OPTIM_MAX_DIM];
} s_point_t;

typedef struct {
    int n;
    const double *x0;
    const double *d;
    double f0;
    double dphi0;
    double noise; /* tolerated rise of f, a few ulps of f0 */
    churn_optim_fn_t *fn;
    void *arg;
    int evaluations;
} s_line_t;

static double
s_dot (int n, const double *u, const double *v)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += u[i] * v[i];
    return s;
}

static double
s_maxabs (int n, const double *v)
{
    double m = 0;
    for (int i = 0; i < n; i++)
        m = fmax (m, fabs (v[i]));
    return m;
}

static void
s_eval (s_line_t *ls, double alpha, s_point_t *p)
{
    p->alpha = alpha;
    for (int i = 0; i < ls->n; i++)
        p->x[i] = ls->x0[i] + alpha * ls->d[i];
    p->f = ls->fn (p->x, p->g, ls->arg);
    ls->evaluations++;
    if (!isfinite (p->f)) {
        /* Outside the domain: treat as an infinitely bad point. */
        p->f = INFINITY;
        p->dphi = 0;
        return;
    }
    p->dphi = s_dot (ls->n, p->g, ls->d);
}

static bool
s_armijo_fails (const s_line_t *ls, const s_point_t *p)
{
    return !(p->f <= ls->f0 + C1 * p->alpha * ls->dphi0 + ls->noise);
}

static bool
s_curvature_holds (const s_line_t *ls, const s_point_t *p)
{
    return fabs (p->dphi) <= -C2 * ls->dphi0;
}

/* Nocedal & Wright algorithm 3.6: lo satisfies sufficient decrease and has
 * the lowest f so far; the minimiser along d lies between lo and hi. */
static bool
s_zoom (s_line_t *ls, s_point_t lo, s_point_t hi, s_point_t *out)
{
    while (ls->evaluations < LINE_MAX_EVALS) {
        double width = hi.alpha - lo.alpha;
        double alpha;
        /* Quadratic through f(lo), f'(lo), f(hi), kept inside the middle 80%
         * of the bracket; bisection when the model is useless. */
        double den = 2 * (hi.f - lo.f - lo.dphi * width);
        if (isfinite (hi.f) && den > 0)
            alpha = lo.alpha - lo.dphi * width * width / den;
        else
            alpha = lo.alpha + 0.5 * width;
        double a_min = lo.alpha + 0.1 * width;
        double a_max = lo.alpha + 0.9 * width;
        if (width < 0) {
            double tmp = a_min;
            a_min = a_max;
            a_max = tmp;
        }
        if (!(alpha >= a_min && alpha <= a_max))
            alpha = lo.alpha + 0.5 * width;
        if (fabs (width) < 1e-16 * fmax (1, fabs (lo.alpha)))
            break;
        s_point_t p;
        s_eval (ls, alpha, &p);
        if (s_armijo_fails (ls, &p) || p.f >= lo.f)
            hi = p;
        else {
            if (s_curvature_holds (ls, &p)) {
                *out = p;
                return true;
            }
            if (p.dphi * (hi.alpha - lo.alpha) >= 0)
                hi = lo;
            lo = p;
        }
    }
    /* Out of budget: lo still lowers f, which is progress enough. */
    if (lo.alpha > 0 && lo.f < ls->f0 + ls->noise) {
        *out = lo;
        return true;
    }
    return false;
}

/* Nocedal & Wright algorithm 3.5. */
static bool
s_line_search (s_line_t *ls, double alpha_init, s_point_t *out)
{
    s_point_t prev = {.alpha = 0, .f = ls->f0, .dphi = ls->dphi0};
    memcpy (prev.x, ls->x0, sizeof (double) * ls->n);
    double alpha = alpha_init;
    for (int i = 0; ls->evaluations < LINE_MAX_EVALS; i++) {
        s_point_t p;
        s_eval (ls, alpha, &p);
        if (!isfinite (p.f) && i == 0) {
            /* The first trial left the domain: shrink until it is back,
             * without bracketing against an infinite value. */
            alpha *= 0.1;
            i = -1;
            continue;
        }
        if (s_armijo_fails (ls, &p) || (i > 0 && p.f >= prev.f))
            return s_zoom (ls, prev, p, out);
        if (s_curvature_holds (ls, &p)) {
            *out = p;
            return true;
        }
        if (p.dphi >= 0)
            return s_zoom (ls, p, prev, out);
        prev = p;
        alpha *= 2;
    }
    return false;
}

static void
s_identity (int n, double *h, double scale)
{
    memset (h, 0, sizeof (double) * n * n);
    for (int i = 0; i < n; i++)
        h[i * n + i] = scale;
}

int
churn_optim_bfgs (int n, double *x, churn_optim_fn_t *fn, void *arg, const churn_optim_opts_t *opts,
                  churn_optim_result_t *result)
{
    int max_iterations = opts && opts->max_iterations > 0 ? opts->max_iterations : 200;
    double gtol = opts && opts->gtol > 0 ? opts->gtol : 1e-9;
    double *h = result->hinv;
    double g[CHURN_OPTIM_MAX_DIM];

    memset (result, 0, sizeof *result);
    double f = fn (x, g, arg);
    result->evaluations = 1;
    result->f = f;
    if (!isfinite (f)) {
        result->stop = "objective not finite at the start";
        return -1;
    }
    bool scaled = false;
    if (opts && opts->hinv0) {
        memcpy (h, opts->hinv0, sizeof (double) * n * n);
        scaled = true;
    } else
        s_identity (n, h, 1);

    bool reset_tried = false;
    result->stop = "iteration limit";
    int iter;
    for (iter = 0; iter < max_iterations; iter++) {
        result->gnorm = s_maxabs (n, g);
        if (result->gnorm <= gtol) {
            result->converged = true;
            result->stop = "gradient below tolerance";
            break;
        }
        double d[CHURN_OPTIM_MAX_DIM];
        for (int i = 0; i < n; i++)
            d[i] = -s_dot (n, h + i * n, g);
        double dphi0 = s_dot (n, g, d);
        if (!(dphi0 < 0)) {
            /* The estimate lost positive definiteness through rounding:
             * restart from steepest descent. */
            s_identity (n, h, 1);
            scaled = false;
            for (int i = 0; i < n; i++)
                d[i] = -g[i];
            dphi0 = s_dot (n, g, d);
        }
        double dmax = s_maxabs (n, d);
        double alpha_init = 1;
        if (dmax > MAX_STEP)
            alpha_init = MAX_STEP / dmax;

        s_line_t ls = {.n = n,
                       .x0 = x,
                       .d = d,
                       .f0 = f,
                       .dphi0 = dphi0,
                       .noise = 8 * DBL_EPSILON * fabs (f),
                       .fn = fn,
                       .arg = arg};
        s_point_t p;
        bool ok = s_line_search (&ls, alpha_init, &p);
        result->evaluations += ls.evaluations;
        if (!ok) {
            if (!reset_tried) {
                /* One more chance along steepest descent before giving up. */
                reset_tried = true;
                s_identity (n, h, 1);
                scaled = false;
                continue;
            }
            result->stop = "line search found no better point";
            /* At the optimum of an ill-conditioned objective the last
             * digits of f are noise and no step verifiably improves it;
             * a gradient within ten times the tolerance is then the best
             * double precision can do, and counts as converged. */
            if (s_maxabs (n, g) <= 10 * gtol) {
                result->converged = true;
                result->stop = "no further progress within rounding";
            }
            break;
        }
        reset_tried = false;

        double s[CHURN_OPTIM_MAX_DIM], y[CHURN_OPTIM_MAX_DIM];
        for (int i = 0; i < n; i++) {
            s[i] = p.x[i] - x[i];
            y[i] = p.g[i] - g[i];
        }
        double sy = s_dot (n, s, y);
        double yy = s_dot (n, y, y);
        if (!scaled && sy > 0 && yy > 0) {
            /* Nocedal & Wright (6.20): size the first estimate to the
             * curvature just seen. */
            s_identity (n, h, sy / yy);
            scaled = true;
        }
        if (sy > 1e-12 * sqrt (s_dot (n, s, s) * yy)) {
            /* H <- (I - rho s y') H (I - rho y s') + rho s s' */
            double rho = 1 / sy;
            double hy[CHURN_OPTIM_MAX_DIM];
            for (int i = 0; i < n; i++)
                hy[i] = s_dot (n, h + i * n, y);
            double yhy = s_dot (n, y, hy);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    h[i * n + j] += -rho * (hy[i] * s[j] + s[i] * hy[j]) +
                                    (rho * rho * yhy + rho) * s[i] * s[j];
        }
        memcpy (x, p.x, sizeof (double) * n);
        memcpy (g, p.g, sizeof (double) * n);
        f = p.f;
    }
    result->iterations = iter;
    result->f = f;
    result->gnorm = s_maxabs (n, g);
    if (!result->converged && result->gnorm <= gtol) {
        result->converged = true;
        result->stop = "gradient below tolerance";
    }
    return result->converged ? 0 : 1;
}
