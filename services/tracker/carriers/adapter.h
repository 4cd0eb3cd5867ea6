/*
 * adapter: the steps every carrier adapter of carriers/ takes the same way,
 * so that a file there says only what is its carrier's.
 *
 * A build starts with adapter_build_begin (the account's base URL and
 * credential checked, the batch within the carrier's limit) and ends, when
 * the request cannot be finished, with adapter_build_oom. A parse starts
 * with adapter_parse_begin (a batch a one-number carrier cannot have
 * answered, a transport failure, a 5xx, a 429) and a carrier's "no such
 * parcel" is adapter_not_found. Pure, as the adapters are.
 */
#ifndef TRACKER_ADAPTER_H
#define TRACKER_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "carrier.h"

/* Zeroes *out, then checks what every build needs: the account's base URL
 * (its length without a trailing '/' into *base_len, for "%.*s"), the
 * credential `secret` (named `what` in the refusal: "API key") and the
 * batch: one query with its number for a carrier of batch_max 1 ("DHL
 * tracks one <unit> a call, with its number"), else 1 to batch_max
 * ("Nova Poshta takes 1 to 100 <unit> a call, not 0"). 0, or -1 with err
 * filled. */
int adapter_build_begin (const carrier_t *carrier, const carrier_account_t *account,
                         const char *what, const char *secret, const carrier_query_t *queries,
                         size_t n, const char *unit, int *base_len, carrier_request_t *out,
                         char *err, size_t errlen);

/* Makes *out a GET of the account's base URL (its first base_len bytes,
 * from adapter_build_begin), then path, then rest's text (what the adapter
 * percent-encoded: a number, a query), then suffix ("": none), with every
 * `secret` masked in log_url. rest is freed, whatever happens. 0, or -1
 * when out of memory (rest's included). */
int adapter_get (carrier_request_t *out, const carrier_account_t *account, int base_len,
                 const char *secret, const char *path, rt_buf_t *rest, const char *suffix);

/* A request that could not be finished (out of memory): frees what *out
 * holds, says so in err and returns -1, for `return adapter_build_oom
 * (...)`. */
int adapter_build_oom (carrier_request_t *out, char *err, size_t errlen);

/* Zeroes *out, then settles what needs no reading of the body: a batch of
 * n != 1 answered to a carrier of batch_max 1 (BAD_REQUEST: no call was
 * built for it), a transport failure, 5xx or 429 (carrier_http_failed).
 * true when *out is settled, false when the adapter reads on. */
bool adapter_parse_begin (const carrier_t *carrier, size_t n, int status, int64_t retry_after_ms,
                          carrier_answer_t *out);

/* The carrier knows none of the n parcels: every result found = false. */
void adapter_not_found (carrier_answer_t *out, size_t n);

/* Whether number has min to max characters, the first a letter or a digit
 * and every other a letter, a digit or one of `also` ("": none). */
bool adapter_number_fits (const char *number, size_t min, size_t max, const char *also);

/* A carrier_t's mapping table and its count, from the one array:
 * `ADAPTER_CODES (s_codes),` among the descriptor's initialisers. */
#define ADAPTER_CODES(table) .codes = (table), .n_codes = sizeof (table) / sizeof *(table)

#endif
