/*
 * busd: the daemon's one context (busd.h), made and released.
 *
 * busd_init registers every metric series before the admin server serves,
 * so each exists from the start and reads 0 rather than missing, and sizes
 * the stream table from the registry (rt_bus_streams). busd_release undoes
 * everything any step made (the batch in hand, the sockets, ZAP, ZeroMQ,
 * the writer connection), safe on what was never made: the skeleton calls
 * it after a failed start as after a clean stop.
 */
#include <stdio.h>
#include <stdlib.h>

#include <zmq.h>

#include "busd.h"
#include "rt_bus.h"

static void
s_metrics_init (busd_t *self)
{
    rt_metrics_t *m = self->metrics;
    static const double batch_bounds[] = {1, 4, 16, 64, 256, 1024, 4096, 16384};
    self->m.appended = rt_metrics_counter (m, "retain_bus_events_appended_total", "",
                                           "Events appended to the log.");
    self->m.duplicates = rt_metrics_counter (m, "retain_bus_duplicates_total", "",
                                             "Envelopes answered DUPLICATE (already in the log).");
    self->m.outbox_drained = rt_metrics_counter (m, "retain_bus_outbox_drained_total", "",
                                                 "Events moved from the outbox into the log.");
    self->m.outbox_rejected = rt_metrics_counter (m, "retain_bus_outbox_rejected_total", "",
                                                  "Outbox rows set aside as unacceptable.");
    self->m.acks_undelivered = rt_metrics_counter (m, "retain_bus_acks_undelivered_total", "",
                                                   "Acks whose producer was gone or stuck.");
    self->m.db_errors =
        rt_metrics_counter (m, "retain_bus_db_errors_total", "", "Batches that failed to commit.");
    self->m.batches = rt_metrics_counter (m, "retain_bus_batches_total", "", "Committed batches.");
    self->m.batch_size =
        rt_metrics_histogram (m, "retain_bus_batch_size", "", "Envelopes per batch.", batch_bounds,
                              sizeof batch_bounds / sizeof *batch_bounds);
    self->m.commit_seconds = rt_metrics_histogram (m, "retain_bus_commit_seconds", "",
                                                   "Time to write and commit a batch.", NULL, 0);
    self->m.primary = rt_metrics_gauge (m, "retain_bus_primary", "",
                                        "1 while this busd is the writer, 0 while standby.");
    self->m.seq = rt_metrics_gauge (m, "retain_bus_seq", "", "Global seq of the last event.");
    /* Series that exist from the start read 0 rather than missing. */
    static const char *reasons[] = {"too_large",     "unparsable",  "bad_id",   "no_partition",
                                    "unknown_type",  "no_key",      "bad_key",  "unknown_stream",
                                    "wrong_stream",  "bad_payload", "bad_utf8", "bad_frames",
                                    "refused_by_log"};
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++) {
        char labels[64];
        snprintf (labels, sizeof labels, "reason=\"%s\"", reasons[i]);
        rt_metrics_counter (m, "retain_bus_envelopes_rejected_total", labels,
                            "Envelopes refused, by reason.");
    }
}

static int
s_streams_init (busd_t *self)
{
    size_t n, i;
    const char *const *names = rt_bus_streams (&n);
    self->streams = calloc (n, sizeof *self->streams);
    if (!self->streams)
        return -1;
    self->nstreams = n;
    for (i = 0; i < n; i++)
        snprintf (self->streams[i].name, sizeof self->streams[i].name, "%s", names[i]);
    return 0;
}

static void
s_streams_free (busd_t *self)
{
    size_t i;
    for (i = 0; i < self->nstreams; i++) {
        free (self->streams[i].pseq);
        free (self->streams[i].pseq_next);
        free (self->streams[i].touched);
    }
    free (self->streams);
    self->streams = NULL;
    self->nstreams = 0;
}

int
busd_init (busd_t *self, rt_metrics_t *metrics)
{
    self->metrics = metrics;
    atomic_init (&self->role, BUSD_STANDBY);
    atomic_init (&self->failing_since_ms, 0);
    s_metrics_init (self);
    return s_streams_init (self);
}

void
busd_release (busd_t *self)
{
    items_clear (self);
    free (self->items);
    self->items = NULL;
    run_sockets_close (self);
    zap_stop (self);
    if (self->zmq_ctx)
        zmq_ctx_term (self->zmq_ctx);
    self->zmq_ctx = NULL;
    rt_db_destroy (&self->db);
    s_streams_free (self);
}
