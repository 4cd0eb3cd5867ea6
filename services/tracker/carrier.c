/*
 * carrier: the one list of carriers and what every adapter shares: the
 * table lookup, the mapping rule, the verdict names and the frees
 * (carrier.h).
 */
#include "carrier.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const carrier_t carrier_nova_poshta;
extern const carrier_t carrier_ukrposhta;
extern const carrier_t carrier_meest;
extern const carrier_t carrier_dhl;
extern const carrier_t carrier_ups;

const carrier_t *const carrier_all[] = {
    &carrier_nova_poshta, &carrier_ukrposhta, &carrier_meest, &carrier_dhl, &carrier_ups, NULL,
};

const carrier_t *
carrier_find (const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; carrier_all[i]; i++) {
        if (strcmp (carrier_all[i]->name, name) == 0)
            return carrier_all[i];
    }
    return NULL;
}

const carrier_code_t *
carrier_code_find (const carrier_t *carrier, const char *code)
{
    if (!carrier || !code)
        return NULL;
    for (size_t i = 0; i < carrier->n_codes; i++) {
        if (strcmp (carrier->codes[i].code, code) == 0)
            return &carrier->codes[i];
    }
    return NULL;
}

void
carrier_result_map (const carrier_t *carrier, carrier_result_t *result)
{
    const carrier_code_t *c = carrier_code_find (carrier, result->raw_code);
    result->mapped = c != NULL;
    if (!c) {
        result->sub_status[0] = '\0';
        return;
    }
    result->tag = c->tag;
    snprintf (result->sub_status, sizeof result->sub_status, "%s", c->sub_status);
    /* A carrier may flag a return beside the code (Ukrposhta's delivered
     * event with the return reason): the adapter's flag stands. */
    result->returning = result->returning || c->returning;
}

const char *
carrier_verdict_name (carrier_verdict_t verdict)
{
    switch (verdict) {
    case CARRIER_OK:
        return "ok";
    case CARRIER_RETRY:
        return "retry";
    case CARRIER_WAIT:
        return "wait";
    case CARRIER_STOP_ACCOUNT:
        return "stop_account";
    case CARRIER_BAD_REQUEST:
        return "bad_request";
    }
    return "unknown";
}

void
carrier_request_free (carrier_request_t *req)
{
    if (!req)
        return;
    free (req->url);
    free (req->log_url);
    for (size_t i = 0; i < CARRIER_HEADERS && req->headers[i]; i++)
        free (req->headers[i]);
    free (req->body);
    memset (req, 0, sizeof *req);
}

static void
s_result_free (carrier_result_t *r)
{
    free (r->raw_code);
    free (r->raw_text);
    free (r->location);
    free (r->origin_city);
    free (r->destination_city);
    free (r->cod_state);
    for (size_t i = 0; i < r->n_events; i++) {
        free (r->events[i].code);
        free (r->events[i].text);
        free (r->events[i].location);
    }
    free (r->events);
}

void
carrier_answer_free (carrier_answer_t *answer)
{
    if (!answer)
        return;
    for (size_t i = 0; i < answer->n_results; i++)
        s_result_free (&answer->results[i]);
    free (answer->results);
    memset (answer, 0, sizeof *answer);
}
