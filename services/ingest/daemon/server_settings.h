/*
 * server_settings: ingestd's settings, the webhook server's (the
 * server_config_t they make) and the writer's way to busd (writer_bus_t).
 *
 * Declared next to the server they configure rather than in main, so the
 * table, its defaults and the bounds the values are checked against are
 * read in one place; main hands the table to common/daemon, which lists
 * it in --help with the settings every daemon shares.
 */
#ifndef INGEST_SERVER_SETTINGS_H
#define INGEST_SERVER_SETTINGS_H

#include <stddef.h>

#include "rt_config.h"
#include "server.h"

/* --http, --public-url, --http-threads, --max-body, --request-timeout,
 * --http-header-timeout, --http-per-address, --link-keys (RETAIN_INGEST_*),
 * --bus-ingress (RETAIN_BUS_INGRESS), --bus-ack-timeout, --keep. */
extern const rt_config_setting_t server_settings[];

/* Fills the settings' part of *out from a parsed configuration (strings
 * lent by it); the inboxes, writer and metrics are left as they are. 0, or
 * -1 with the setting and the reason in err. */
int server_settings_read (const rt_config_t *config, server_config_t *out, char *err,
                          size_t errlen);

/* Fills the endpoints and the ack timeout of *out (strings lent by the
 * configuration); the curve and member are left as they are. 0, or -1 with
 * the setting and the reason in err. */
int server_settings_read_bus (const rt_config_t *config, writer_bus_t *out, char *err,
                              size_t errlen);

/* --keep in milliseconds into *keep_ms (at least RETENTION_KEEP_MIN_MS). 0,
 * or -1 with the reason in err. */
int server_settings_read_keep (const rt_config_t *config, int64_t *keep_ms, char *err,
                               size_t errlen);

#endif
