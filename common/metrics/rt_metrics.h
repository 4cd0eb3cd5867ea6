/*
 * rt_metrics: counters, gauges and histograms rendered in the Prometheus text
 * exposition format (version 0.0.4).
 *
 * A registry owns its metrics. Registration takes a mutex; updates are
 * lock-free atomics, safe from any thread, and cheap enough for hot paths.
 * A metric is identified by name plus a label string written as it appears
 * in the exposition ("" or e.g. `reason="too_large",stream="order"`); asking
 * for the same (name, labels) twice returns the same object. All series of
 * one name share a type and help text (the first registration's) and are
 * rendered together under one # HELP / # TYPE header.
 */
#ifndef RT_METRICS_H
#define RT_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_metrics_t rt_metrics_t;
typedef struct rt_counter_t rt_counter_t;
typedef struct rt_gauge_t rt_gauge_t;
typedef struct rt_histogram_t rt_histogram_t;

rt_metrics_t *rt_metrics_new (void);
/* Frees the registry and every metric it returned. */
void rt_metrics_destroy (rt_metrics_t **self_p);

/* Returns the series, creating it on first use; NULL only when out of memory
 * or when the name is already registered with another type (a programmer
 * mistake, also asserted in debug builds). Objects are owned by the registry. */
rt_counter_t *rt_metrics_counter (rt_metrics_t *self, const char *name, const char *labels,
                                  const char *help);
rt_gauge_t *rt_metrics_gauge (rt_metrics_t *self, const char *name, const char *labels,
                              const char *help);
/* `bounds` are the upper bounds of the buckets, ascending, without +Inf;
 * copied. NULL/0 selects a default latency ladder in seconds from 0.0001
 * to 10. */
rt_histogram_t *rt_metrics_histogram (rt_metrics_t *self, const char *name, const char *labels,
                                      const char *help, const double *bounds, size_t nbounds);

void rt_counter_add (rt_counter_t *counter, uint64_t n);
void rt_counter_inc (rt_counter_t *counter);
uint64_t rt_counter_value (const rt_counter_t *counter);
void rt_gauge_set (rt_gauge_t *gauge, double value);
void rt_gauge_add (rt_gauge_t *gauge, double delta);
double rt_gauge_value (const rt_gauge_t *gauge);
void rt_histogram_observe (rt_histogram_t *histogram, double value);
uint64_t rt_histogram_count (const rt_histogram_t *histogram);

/* The whole registry in the text format. Returns an owned string (free()),
 * NULL when out of memory. */
char *rt_metrics_render (rt_metrics_t *self);

#endif
