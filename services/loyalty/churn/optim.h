/*
 * optim: unconstrained minimisation of a smooth function of a few variables
 * by BFGS, the quasi-Newton method, with a line search that satisfies the
 * strong Wolfe conditions (Nocedal & Wright, Numerical Optimization, 2nd
 * ed., algorithms 3.5, 3.6 and 6.1).
 *
 * The models fit their parameters on a log scale, so the variables here are
 * unconstrained. Near the optimum the objective's changes fall below its
 * rounding noise long before the gradient does, so the sufficient-decrease
 * test tolerates a change of a few ulps of f and lets the curvature test (on
 * the gradient, which stays informative) decide.
 */
#ifndef LOYALTY_CHURN_OPTIM_H
#define LOYALTY_CHURN_OPTIM_H

#include <stdbool.h>

#define CHURN_OPTIM_MAX_DIM 8

/* Returns f(x) and writes its gradient into grad. A point outside the
 * function's domain, or one where it cannot be computed, returns +inf (or
 * NaN); the line search then steps back. */
typedef double (churn_optim_fn_t) (const double *x, double *grad, void *arg);

typedef struct {
    int max_iterations; /* BFGS iterations; 0 means 200 */
    double gtol;        /* converged when max |grad_i| <= gtol; 0 means 1e-9 */
    /* Initial inverse Hessian (n*n, row-major), or NULL for a scaled
     * identity: a warm start from a fit on a subsample passes its own. */
    const double *hinv0;
} churn_optim_opts_t;

typedef struct {
    double f;         /* the objective at the returned x */
    double gnorm;     /* max |grad_i| there */
    int iterations;   /* BFGS iterations done */
    int evaluations;  /* calls of the function */
    bool converged;   /* gnorm <= gtol, or <= 10 gtol when no step can
                         improve f any more within rounding */
    const char *stop; /* why it stopped, a static string */
    double hinv[CHURN_OPTIM_MAX_DIM * CHURN_OPTIM_MAX_DIM]; /* final inverse Hessian estimate */
} churn_optim_result_t;

/* Minimises fn over n <= CHURN_OPTIM_MAX_DIM variables starting from x, which is
 * overwritten by the best point found. Returns 0 when converged, 1 when it
 * stopped for another reason (iteration limit, no further progress: the
 * result still holds the best point), -1 when fn is not finite at the
 * start. */
int churn_optim_bfgs (int n, double *x, churn_optim_fn_t *fn, void *arg,
                      const churn_optim_opts_t *opts, churn_optim_result_t *result);

#endif
