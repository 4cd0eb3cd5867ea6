/*
 * server_settings: the webhook server's settings (server_settings.h).
 *
 * The bounds are the server's: up to 64 worker threads, up to 100,000
 * connections per address; durations and sizes take rt_config's units.
 */
#include "server_settings.h"

#include "retention.h"
#include "rt_log.h"

const rt_config_setting_t server_settings[] = {
    {"http", "RETAIN_INGEST_HTTP", "127.0.0.1:8780", "webhook HTTP address"},
    {"public-url", "RETAIN_INGEST_PUBLIC_URL", "http://127.0.0.1:8780",
     "the base URL providers call (behind a proxy: the proxy's); signatures over URLs use it"},
    {"http-threads", "RETAIN_INGEST_HTTP_THREADS", "2", "webhook worker threads"},
    {"max-body", "RETAIN_INGEST_MAX_BODY", "1M", "largest request body accepted (larger: 413)"},
    {"request-timeout", "RETAIN_INGEST_REQUEST_TIMEOUT", "10s",
     "longest wait for a webhook's commit before answering 503"},
    {"http-header-timeout", "RETAIN_INGEST_HTTP_HEADER_TIMEOUT", "10s",
     "longest time for a request's line and headers to arrive (then 408 and close)"},
    {"http-per-address", "RETAIN_INGEST_HTTP_PER_ADDRESS", "256",
     "open webhook connections per client IP address (more: 429 and close)"},
    {"link-keys", "RETAIN_INGEST_LINK_KEYS", "",
     "keys of the customers' signed links (unsubscribe), id:secret[,id:secret...]: each "
     "verifies; the signers' (RETAIN_NOTIFY_LINK_KEYS) first key must be among them; empty: "
     "every link is answered 404"},
    {"bus-ingress", "RETAIN_BUS_INGRESS", "",
     "busd's ingress endpoint(s), comma-separated (the active busd and its standby): the writer "
     "publishes every committed webhook straight to busd, the outbox taking what busd does not "
     "acknowledge in time; empty: every webhook through the outbox"},
    {"bus-ack-timeout", "RETAIN_INGEST_BUS_ACK_TIMEOUT", "2s",
     "longest wait for busd's acknowledgement of a published webhook before it goes to the "
     "outbox"},
    {"keep", "RETAIN_INGEST_KEEP", "90d",
     "how long de-duplication rows, their envelopes and raw payloads are kept (at least 7d); "
     "older ones are deleted hourly"},
    {NULL, NULL, NULL, NULL}};

int
server_settings_read (const rt_config_t *config, server_config_t *out, char *err, size_t errlen)
{
    int64_t threads, max_body, timeout_ms, header_timeout_ms, per_address;
    if (rt_config_get_int (config, "http-threads", 1, 64, &threads, err, errlen) != 0 ||
        rt_config_get_size (config, "max-body", &max_body, err, errlen) != 0 ||
        rt_config_get_ms (config, "request-timeout", &timeout_ms, err, errlen) != 0 ||
        rt_config_get_ms (config, "http-header-timeout", &header_timeout_ms, err, errlen) != 0 ||
        rt_config_get_int (config, "http-per-address", 1, 100000, &per_address, err, errlen) != 0)
        return -1;
    out->address = rt_config_get (config, "http");
    out->public_url = rt_config_get (config, "public-url");
    out->link_keys = rt_config_get (config, "link-keys");
    out->threads = (int)threads;
    out->max_body = (size_t)max_body;
    out->request_timeout_ms = (int)timeout_ms;
    out->header_timeout_ms = (int)header_timeout_ms;
    out->per_address = (int)per_address;
    return 0;
}

int
server_settings_read_keep (const rt_config_t *config, int64_t *keep_ms, char *err, size_t errlen)
{
    if (rt_config_get_ms (config, "keep", keep_ms, err, errlen) != 0)
        return -1;
    if (*keep_ms < RETENTION_KEEP_MIN_MS) {
        rt_errf (err, errlen, "--keep must be at least 7d (providers retry for days)");
        return -1;
    }
    return 0;
}

int
server_settings_read_bus (const rt_config_t *config, writer_bus_t *out, char *err, size_t errlen)
{
    int64_t ack_timeout_ms;
    if (rt_config_get_ms (config, "bus-ack-timeout", &ack_timeout_ms, err, errlen) != 0)
        return -1;
    if (ack_timeout_ms < 100 || ack_timeout_ms > 600000) {
        rt_errf (err, errlen, "--bus-ack-timeout must be between 100ms and 10m");
        return -1;
    }
    out->endpoints = rt_config_get (config, "bus-ingress");
    out->ack_timeout_ms = (int)ack_timeout_ms;
    return 0;
}
