/*
 * rt_test_fake_carrier_read: what a request to each fake carrier asks
 * (see rt_test_fake_carrier.h): its credential, its parcels, and what is
 * wrong with its form. Runs on a worker's thread before the fake's lock
 * is taken, so that parsing a body of a hundred documents holds nobody up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "rt_codec.h"
#include "rt_form.h"
#include "rt_test_fake_carrier_int.h"

#define S_NP_MAX 100 /* Nova Poshta: documents a call */

/* --- reading requests (a worker's thread, no lock) --- */

/* Marks ask malformed (the first reason found stays). */
static void
s_bad (fc_ask_t *ask, int status, const char *code, const char *text)
{
    if (ask->bad_status)
        return;
    ask->bad_status = status;
    ask->bad_code = code;
    ask->bad_text = text;
}

static void
s_number (fc_ask_t *ask, const char *number, const char *phone)
{
    ask->numbers[ask->n] = fc_dup (number);
    if (ask->phones)
        ask->phones[ask->n] = phone ? fc_dup (phone) : NULL;
    ask->n++;
}

static bool
s_digits (const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static void
s_read_np (rt_http_request_t *req, fc_ask_t *ask)
{
    size_t len = 0;
    const char *body = rt_http_body (req, &len);
    json_t *doc = json_loadb (body, len, 0, NULL);
    const char *key = json_string_value (json_object_get (doc, "apiKey"));
    const char *model = json_string_value (json_object_get (doc, "modelName"));
    const char *method = json_string_value (json_object_get (doc, "calledMethod"));
    json_t *docs = json_object_get (json_object_get (doc, "methodProperties"), "Documents");
    ask->key = key ? fc_dup (key) : NULL;
    if (!json_is_object (doc)) {
        s_bad (ask, 200, "", "The request is not a JSON object");
        goto done;
    }
    if (!model || strcmp (model, "TrackingDocument") != 0 || !method ||
        strcmp (method, "getStatusDocuments") != 0) {
        s_bad (ask, 200, "", "Only TrackingDocument.getStatusDocuments is served here");
        goto done;
    }
    if (!json_is_array (docs)) {
        s_bad (ask, 200, "20000200159", "Documents must be array");
        goto done;
    }
    size_t n = json_array_size (docs);
    ask->numbers = fc_alloc (n * sizeof *ask->numbers);
    ask->phones = fc_alloc (n * sizeof *ask->phones);
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get (docs, i);
        json_t *number = json_object_get (item, "DocumentNumber");
        const char *text = json_string_value (number);
        if (!number || (text && !*text))
            s_bad (ask, 200, "20000200157", "DocumentNumber is empty");
        else if (!text || !s_digits (text))
            s_bad (ask, 200, "20000200158", "DocumentNumber is incorrect");
        s_number (ask, text ? text : "", json_string_value (json_object_get (item, "Phone")));
    }
    if (n > S_NP_MAX)
        s_bad (ask, 200, "", "Documents: no more than 100 in one request");
done:
    json_decref (doc);
}

/* The query parameter `name` of req, copied; NULL when absent or "". */
static char *
s_query (rt_http_request_t *req, const char *name)
{
    char err[128];
    const char *query = rt_http_query (req);
    rt_form_t *form = rt_form_parse (query, strlen (query), err, sizeof err);
    const char *value = form ? rt_form_get (form, name) : NULL;
    char *copy = value && *value ? fc_dup (value) : NULL;
    rt_form_destroy (&form);
    return copy;
}

static void
s_read_ukrposhta (rt_http_request_t *req, fc_ask_t *ask)
{
    const char *bearer = rt_http_bearer (req);
    ask->key = bearer ? fc_dup (bearer) : NULL;
    if (strcmp (rt_http_method (req), "GET") == 0) {
        char *barcode = s_query (req, "barcode");
        const char *pattern = rt_http_route_pattern (req);
        ask->all_events = strcmp (pattern + strlen (pattern) - 9, "/statuses") == 0;
        ask->single = !ask->all_events;
        ask->numbers = fc_alloc (sizeof *ask->numbers);
        if (barcode)
            s_number (ask, barcode, NULL);
        else
            s_bad (ask, 400, "", "barcode is required");
        free (barcode);
        return;
    }
    size_t len = 0;
    const char *body = rt_http_body (req, &len);
    json_t *doc = json_loadb (body, len, 0, NULL);
    size_t n = json_array_size (doc);
    ask->numbers = fc_alloc (n * sizeof *ask->numbers);
    if (!json_is_array (doc) || n == 0)
        s_bad (ask, 400, "", "The body must be a JSON array of barcodes");
    for (size_t i = 0; i < n; i++) {
        const char *barcode = json_string_value (json_array_get (doc, i));
        if (!barcode || !*barcode)
            s_bad (ask, 400, "", "The body must be a JSON array of barcodes");
        s_number (ask, barcode ? barcode : "", NULL);
    }
    json_decref (doc);
}

static void
s_read_dhl (rt_http_request_t *req, fc_ask_t *ask)
{
    const char *key = rt_http_header (req, "DHL-API-Key");
    char *number = s_query (req, "trackingNumber");
    ask->key = key ? fc_dup (key) : NULL;
    ask->service = s_query (req, "service");
    ask->numbers = fc_alloc (sizeof *ask->numbers);
    if (number)
        s_number (ask, number, NULL);
    else
        s_bad (ask, 400, "", "trackingNumber is required");
    free (number);
}

/* UPS's token request: Basic base64(client_id:secret), grant_type. */
static void
s_read_ups_token (rt_http_request_t *req, fc_ask_t *ask)
{
    char err[128];
    const char *auth = rt_http_header (req, "Authorization");
    size_t len = 0;
    const char *body = rt_http_body (req, &len);
    if (auth && strncasecmp (auth, "Basic ", 6) == 0) {
        const char *text = auth + 6;
        size_t tlen = strlen (text);
        uint8_t *plain = fc_alloc (tlen + 1);
        long n = rt_base64_decode (text, tlen, plain, tlen);
        char *colon = n > 0 ? memchr (plain, ':', (size_t)n) : NULL;
        if (colon && !memchr (plain, '\0', (size_t)n)) {
            plain[n] = '\0';
            *colon = '\0';
            ask->key = fc_dup ((char *)plain);
            ask->secret = fc_dup (colon + 1);
        }
        free (plain);
    }
    rt_form_t *form = rt_form_parse (body, len, err, sizeof err);
    const char *grant = form ? rt_form_get (form, "grant_type") : NULL;
    if (!grant || strcmp (grant, "client_credentials") != 0)
        s_bad (ask, 400, "10400", "Invalid/Missing grant_type");
    rt_form_destroy (&form);
}

static void
s_read_ups (rt_http_request_t *req, fc_ask_t *ask)
{
    const char *bearer = rt_http_bearer (req);
    const char *trans_id = rt_http_header (req, "transId");
    const char *source = rt_http_header (req, "transactionSrc");
    ask->key = bearer ? fc_dup (bearer) : NULL;
    ask->numbers = fc_alloc (sizeof *ask->numbers);
    s_number (ask, rt_http_param (req, "number"), NULL);
    if (!trans_id || !*trans_id)
        s_bad (ask, 400, "400", "Missing header: transId");
    else if (!source || !*source)
        s_bad (ask, 400, "400", "Missing header: transactionSrc");
}

void
fc_read (rt_fc_carrier_t carrier, bool oauth, rt_http_request_t *req, fc_ask_t *ask)
{
    memset (ask, 0, sizeof *ask);
    ask->oauth = oauth;
    switch (carrier) {
    case RT_FC_NOVA_POSHTA:
        s_read_np (req, ask);
        break;
    case RT_FC_UKRPOSHTA:
        s_read_ukrposhta (req, ask);
        break;
    case RT_FC_MEEST: {
        const char *token = rt_http_header (req, "token");
        ask->key = token ? fc_dup (token) : NULL;
        ask->numbers = fc_alloc (sizeof *ask->numbers);
        s_number (ask, rt_http_param (req, "number"), NULL);
        break;
    }
    case RT_FC_DHL:
        s_read_dhl (req, ask);
        break;
    case RT_FC_UPS:
        if (oauth)
            s_read_ups_token (req, ask);
        else
            s_read_ups (req, ask);
        break;
    case RT_FC_CARRIERS:
        break;
    }
}

void
fc_ask_free (fc_ask_t *ask)
{
    for (size_t i = 0; i < ask->n; i++) {
        free (ask->numbers[i]);
        if (ask->phones)
            free (ask->phones[i]);
    }
    free (ask->numbers);
    free (ask->phones);
    free (ask->key);
    free (ask->secret);
    free (ask->service);
    memset (ask, 0, sizeof *ask);
}
