/*
 * adapter: what the carriers' adapters share (adapter.h). The wording of
 * each refusal is the adapters' own, with the carrier's display name and
 * the unit it counts in.
 */
#include "adapter.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

int
adapter_build_begin (const carrier_t *carrier, const carrier_account_t *account, const char *what,
                     const char *secret, const carrier_query_t *queries, size_t n, const char *unit,
                     int *base_len, carrier_request_t *out, char *err, size_t errlen)
{
    memset (out, 0, sizeof *out);
    if (carrier_check_base (carrier, account, base_len, err, errlen) != 0 ||
        carrier_check_secret (carrier, what, secret, err, errlen) != 0)
        return -1;
    if (carrier->batch_max == 1) {
        if (n != 1 || !queries[0].tracking_number || !queries[0].tracking_number[0]) {
            snprintf (err, errlen, "%s tracks one %s a call, with its number", carrier->display,
                      unit);
            return -1;
        }
    } else if (n == 0 || n > carrier->batch_max) {
        snprintf (err, errlen, "%s takes 1 to %zu %s a call, not %zu", carrier->display,
                  carrier->batch_max, unit, n);
        return -1;
    }
    return 0;
}

int
adapter_get (carrier_request_t *out, const carrier_account_t *account, int base_len,
             const char *secret, const char *path, rt_buf_t *rest, const char *suffix)
{
    int rc = -1;
    out->method = "GET";
    if (!rest->failed)
        rc = rt_http_outreq_url (out, secret, "%.*s%s%s%s", base_len, account->base_url, path,
                                 rest->data ? rest->data : "", suffix);
    rt_buf_free (rest);
    return rc;
}

int
adapter_build_oom (carrier_request_t *out, char *err, size_t errlen)
{
    rt_http_outreq_free (out);
    snprintf (err, errlen, "out of memory");
    return -1;
}

bool
adapter_parse_begin (const carrier_t *carrier, size_t n, int status, int64_t retry_after_ms,
                     carrier_answer_t *out)
{
    memset (out, 0, sizeof *out);
    if (carrier->batch_max == 1 && n != 1) {
        /* A call is built for one number: a batch cannot be this one's. */
        carrier_set (out, CARRIER_BAD_REQUEST, NULL, "%s answers one number a call, not %zu",
                     carrier->display, n);
        return true;
    }
    return carrier_http_failed (status, retry_after_ms, out);
}

void
adapter_not_found (carrier_answer_t *out, size_t n)
{
    carrier_results_new (out, n);
    carrier_answer_settle (out);
}

bool
adapter_number_fits (const char *number, size_t min, size_t max, const char *also)
{
    size_t n = number ? strlen (number) : 0;
    bool ok = n >= min && n <= max && isalnum ((unsigned char)number[0]);
    for (size_t i = 1; ok && i < n; i++)
        ok = isalnum ((unsigned char)number[i]) || strchr (also, number[i]) != NULL;
    return ok;
}
