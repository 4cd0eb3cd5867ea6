/*
 * binotel: call events from Binotel, the Ukrainian cloud PBX, in its own
 * format (beside the generic PBX format of phone.c).
 *
 *   POST /hooks/binotel/{inbox}?token=<the inbox secret>
 *   Content-Type: application/x-www-form-urlencoded (multipart/form-data
 *   is read too), with requestType one of
 *     receivedTheCall    generalCallID, callType, externalNumber,
 *                        didNumber/pbxNumber, internalNumber   -> call_started
 *     answeredTheCall    generalCallID, callType, externalNumber,
 *                        internalNumber (who answered)         -> call_answered
 *     hangupTheCall      generalCallID, billsec, disposition   -> call_ended,
 *                                                   or call_missed (see below)
 *     apiCallCompleted   callDetails[...]: the call's record (CDR), with
 *                        PHP-style nested keys (callDetails[billsec],
 *                        callDetails[employeeData][name])      -> call_ended
 *                                                   or call_missed
 *     apiCallSettings    Binotel asks how to route an incoming call: answered
 *                        "{}" (no instructions: the line's own routing in
 *                        Binotel applies), nothing kept
 *     transferredTheCall nothing kept: the transfer shows in the next
 *                        answeredTheCall (the new operator) and in the CDR
 *     anything else      200, nothing kept: like a Telegram update of a kind
 *                        retain does not read, a request type Binotel adds
 *                        later must not make it retry or disable the hook
 *
 * (sashalenz/binotel-api: src/Http/Requests/WebhookRequest.php,
 * src/ResponseData/Webhooks/ and StatData.php.)
 *
 * Binotel signs nothing, so two checks stand in for a signature, both
 * answered 403 problem details and counted by reason:
 * - source-not-allowed: the client address must be in the inbox config's
 *   "allow_from" (IPv4/IPv6 addresses and CIDR ranges). Absent, it is
 *   Binotel's own servers (s_binotel_servers); an explicit [] accepts any
 *   address (ingestd warns when it loads such an inbox). The client is
 *   the TCP peer, unless the peer is in "trusted_proxies": then it is the
 *   rightmost X-Forwarded-For hop that is not a trusted proxy, so a client
 *   cannot pass for Binotel by writing the header itself.
 * - bad-token: the query's "token" must equal the inbox secret (or the
 *   previous one during a rotation), compared in constant time. The token
 *   travels in the query, not the path, because the HTTP layer logs paths
 *   of refused requests; nothing here puts it in a reason.
 *
 * callType 0 is an incoming call, 1 an outgoing one (integrators' code; not
 * confirmed by Binotel's documentation). The customer is the far end,
 * externalNumber, as E.164 when it reads as a number in the inbox's
 * country (UA unless "default_country" says otherwise), else as Binotel
 * sent it (a withheld caller). A request about no customer (an internal
 * call, a hangup that names no externalNumber) is valid and keeps nothing.
 *
 * A call is missed when it is incoming, its disposition is NOANSWER, BUSY,
 * CANCEL, CHANUNAVAIL, CONGESTION or VM* and billsec is 0; a missed call
 * asks for a call-back ("Missed call from <number>: please call back").
 * An unknown disposition is kept as a call that ended.
 *
 * The external id is "<generalCallID>:<requestType>": each request type of
 * one call is kept once, a retried request is a duplicate. hangupTheCall
 * and apiCallCompleted both state the call's outcome (the CDR with the
 * talk time and the employee, the hangup sooner); both carry the call in
 * `call` with call_id = generalCallID and thread_id = generalCallID, so a
 * consumer takes the second outcome of one call as an update of the first.
 */
#include "channel.h"
#include "formdata.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rt_crypto.h"
#include "rt_form.h"

/* Binotel's webhook servers, as the SDK's allow-list has them
 * (sashalenz/binotel-api, src/Http/Requests/WebhookRequest.php; also the
 * list on developers.binotel.ua): my.binotel.ua and sip1..sip52. */
static const char *const s_binotel_servers[] = {
    "194.88.218.114", "194.88.218.116", "194.88.218.117", "194.88.218.118", "194.88.218.119",
    "194.88.218.120", "194.88.219.67",  "194.88.219.70",  "194.88.219.71",  "194.88.219.72",
    "194.88.219.78",  "194.88.219.79",  "194.88.219.80",  "194.88.219.81",  "194.88.219.82",
    "194.88.219.83",  "194.88.219.84",  "194.88.219.85",  "194.88.219.86",  "194.88.219.87",
    "194.88.219.88",  "194.88.219.89",  "194.88.219.92",  "185.100.66.145", "185.100.66.146",
    "185.100.66.147", "45.91.130.36",   "45.91.130.51",
};

/* Dispositions of a call nobody took (VM* are matched by prefix). */
static const char *const s_missed[] = {"NOANSWER", "BUSY", "CANCEL", "CHANUNAVAIL", "CONGESTION"};

/* Bytes kept of a generalCallID, and of a form field read as a number. */
#define BINOTEL_ID_MAX 64

/* An address or a range: family, the address in network order, the
 * number of leading bits that must match. */
typedef struct {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* 4 or 16 bytes used */
    int bits;         /* prefix length */
} s_net_t;

/* The request's fields, decoded and valid UTF-8. */
typedef struct {
    char **names;  /* owned */
    char **values; /* owned */
    size_t count;  /* their number */
} s_fields_t;

/* Parses "a.b.c.d", "v6", either with "/bits". An IPv4-mapped IPv6
 * address is read as its IPv4 address. 0, or -1 when it is none. */
static int
s_net_parse (const char *text, s_net_t *net)
{
    char buf[64], *slash;
    long bits = -1;
    size_t len = strlen (text);
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy (buf, text, len + 1);
    slash = strchr (buf, '/');
    if (slash) {
        char *end;
        *slash = '\0';
        if (!isdigit ((unsigned char)slash[1]))
            return -1;
        bits = strtol (slash + 1, &end, 10);
        if (*end)
            return -1;
    }
    memset (net, 0, sizeof *net);
    if (inet_pton (AF_INET, buf, net->addr) == 1) {
        net->family = AF_INET;
        net->bits = bits < 0 ? 32 : (int)bits;
        return bits > 32 ? -1 : 0;
    }
    if (inet_pton (AF_INET6, buf, net->addr) != 1)
        return -1;
    net->family = AF_INET6;
    net->bits = bits < 0 ? 128 : (int)bits;
    if (bits > 128)
        return -1;
    {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp (net->addr, mapped, sizeof mapped) == 0 && net->bits >= 96) {
            memmove (net->addr, net->addr + 12, 4);
            memset (net->addr + 4, 0, 12);
            net->family = AF_INET;
            net->bits -= 96;
        }
    }
    return 0;
}

/* Whether the address addr lies in net. */
static bool
s_net_contains (const s_net_t *net, const s_net_t *addr)
{
    int full = net->bits / 8, rest = net->bits % 8;
    if (net->family != addr->family)
        return false;
    if (memcmp (net->addr, addr->addr, (size_t)full) != 0)
        return false;
    if (rest) {
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        if ((net->addr[full] & mask) != (addr->addr[full] & mask))
            return false;
    }
    return true;
}

/* Whether addr is in the list (a JSON array of strings); entries that do
 * not parse match nothing (binotel_config_check refuses them at load). */
static bool
s_in_list (const json_t *list, const s_net_t *addr)
{
    size_t i;
    json_t *v;
    json_array_foreach (list, i, v)
    {
        s_net_t net;
        if (json_is_string (v) && s_net_parse (json_string_value (v), &net) == 0 &&
            s_net_contains (&net, addr))
            return true;
    }
    return false;
}

/* Checks that v, when present, is an array of addresses and ranges. */
static int
s_check_list (const json_t *config, const char *key, char *note, size_t notelen)
{
    const json_t *v = json_object_get (config, key);
    size_t i;
    json_t *e;
    if (!v)
        return 0;
    if (!json_is_array (v)) {
        snprintf (note, notelen, "%s is not an array of addresses", key);
        return -1;
    }
    json_array_foreach (v, i, e)
    {
        s_net_t net;
        if (!json_is_string (e) || s_net_parse (json_string_value (e), &net) != 0) {
            snprintf (note, notelen, "%s[%zu] is not an IPv4/IPv6 address or CIDR range", key, i);
            return -1;
        }
    }
    return 0;
}

int
binotel_config_check (const json_t *config, char *note, size_t notelen)
{
    const json_t *allow = json_object_get (config, "allow_from");
    if (s_check_list (config, "allow_from", note, notelen) != 0 ||
        s_check_list (config, "trusted_proxies", note, notelen) != 0)
        return -1;
    if (allow && json_array_size (allow) == 0) {
        snprintf (note, notelen,
                  "allow_from is empty: requests from any address are accepted, only the URL "
                  "token guards this inbox");
        return 1;
    }
    return 0;
}

/* The client's address: the peer, or behind trusted proxies the rightmost
 * X-Forwarded-For hop that is not one. 0, or -1 when it is unreadable. */
static int
s_client (const ingest_inbox_t *inbox, const ingest_request_t *req, s_net_t *client)
{
    const json_t *proxies = json_object_get (inbox->config, "trusted_proxies");
    char hops[2048];
    size_t used = 0, i;
    if (!req->peer || s_net_parse (req->peer, client) != 0)
        return -1;
    if (!json_is_array (proxies) || !s_in_list (proxies, client))
        return 0;
    /* Every X-Forwarded-For header, in order, as one list. */
    hops[0] = '\0';
    for (i = 0; i < req->nheaders; i++) {
        int w;
        if (strcasecmp (req->headers[i].name, "X-Forwarded-For") != 0)
            continue;
        w = snprintf (hops + used, sizeof hops - used, "%s%s", used ? "," : "",
                      req->headers[i].value);
        if (w < 0 || (size_t)w >= sizeof hops - used)
            return -1; /* a list too long to read whole: not trusted */
        used += (size_t)w;
    }
    while (used > 0) {
        char *hop, *end;
        s_net_t addr;
        hop = strrchr (hops, ',');
        hop = hop ? hop + 1 : hops;
        while (*hop == ' ' || *hop == '\t')
            hop++;
        end = hop + strlen (hop);
        while (end > hop && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (s_net_parse (hop, &addr) != 0)
            return -1;
        *client = addr;
        if (!s_in_list (proxies, &addr))
            return 0;
        hop = strrchr (hops, ',');
        if (!hop)
            break;
        *hop = '\0';
        used = (size_t)(hop - hops);
    }
    return 0;
}

/* The source check: 0, or -1 with 403 source_not_allowed. */
static int
s_source_allowed (const ingest_inbox_t *inbox, const ingest_request_t *req, ingest_result_t *result)
{
    const json_t *allow = json_object_get (inbox->config, "allow_from");
    s_net_t client;
    size_t i;
    if (json_is_array (allow) && json_array_size (allow) == 0)
        return 0;
    if (s_client (inbox, req, &client) == 0) {
        if (json_is_array (allow)) {
            if (s_in_list (allow, &client))
                return 0;
        } else {
            for (i = 0; i < sizeof s_binotel_servers / sizeof *s_binotel_servers; i++) {
                s_net_t net;
                if (s_net_parse (s_binotel_servers[i], &net) == 0 && s_net_contains (&net, &client))
                    return 0;
            }
        }
    }
    return ingest_fail (result, 403, "source_not_allowed",
                        "source address %.64s is not in this inbox's allow_from",
                        req->peer ? req->peer : "unknown");
}

/* The token check: 0, or -1 with 403 bad_token. Empty secrets never
 * match: previous_secret is "" when there is none. */
static int
s_token_ok (const ingest_inbox_t *inbox, const ingest_request_t *req, ingest_result_t *result)
{
    const char *secrets[2] = {inbox->secret, inbox->previous_secret};
    char err[64];
    rt_form_t *query = rt_form_parse (req->query ? req->query : "",
                                      req->query ? strlen (req->query) : 0, err, sizeof err);
    const char *token = query ? rt_form_get (query, "token") : NULL;
    bool ok = false, given = token && token[0];
    int i;
    for (i = 0; given && i < 2; i++) {
        if (secrets[i] && secrets[i][0] &&
            rt_ct_equal (token, strlen (token), secrets[i], strlen (secrets[i])))
            ok = true;
    }
    rt_form_destroy (&query);
    if (ok)
        return 0;
    return ingest_fail (result, 403, "bad_token",
                        given ? "the URL's token does not match this inbox"
                              : "the URL carries no token");
}

static void
s_fields_free (s_fields_t *f)
{
    size_t i;
    for (i = 0; i < f->count; i++) {
        free (f->names[i]);
        free (f->values[i]);
    }
    free (f->names);
    free (f->values);
    memset (f, 0, sizeof *f);
}

/* Appends a field (copied, made valid UTF-8). 0 or -1. */
static int
s_fields_add (s_fields_t *f, const void *name, size_t nlen, const void *value, size_t vlen)
{
    char **names = realloc (f->names, (f->count + 1) * sizeof *names);
    char **values;
    if (!names)
        return -1;
    f->names = names;
    values = realloc (f->values, (f->count + 1) * sizeof *values);
    if (!values)
        return -1;
    f->values = values;
    f->names[f->count] = formdata_utf8_dup (name, nlen);
    f->values[f->count] = formdata_utf8_dup (value, vlen);
    if (!f->names[f->count] || !f->values[f->count]) {
        free (f->names[f->count]);
        free (f->values[f->count]);
        return -1;
    }
    f->count++;
    return 0;
}

/* Reads the body's fields; 0, or -1 with the result set. */
static int
s_fields_read (const ingest_request_t *req, s_fields_t *f, ingest_result_t *result)
{
    const char *ctype = ingest_header (req, "Content-Type");
    char err[128];
    size_t i;
    if (formdata_is_type (ctype, "application/x-www-form-urlencoded")) {
        rt_form_t *form = rt_form_parse ((const char *)req->body, req->body_len, err, sizeof err);
        if (!form)
            return ingest_fail (result, 400, "malformed", "body is not a form: %s", err);
        for (i = 0; i < rt_form_count (form); i++) {
            const rt_form_pair_t *p = rt_form_pair (form, i);
            if (s_fields_add (f, p->name, strlen (p->name), p->value, strlen (p->value)) != 0) {
                rt_form_destroy (&form);
                return ingest_fail (result, 503, "internal", "out of memory");
            }
        }
        rt_form_destroy (&form);
        return 0;
    }
    if (formdata_is_type (ctype, "multipart/form-data")) {
        formdata_t *parts = formdata_parse (ctype, req->body, req->body_len, err, sizeof err);
        if (!parts)
            return ingest_fail (result, 400, "malformed", "body is not a form: %s", err);
        for (i = 0; i < formdata_count (parts); i++) {
            const formdata_part_t *p = formdata_part (parts, i);
            if (s_fields_add (f, p->name, strlen (p->name), p->data, p->len) != 0) {
                formdata_destroy (&parts);
                return ingest_fail (result, 503, "internal", "out of memory");
            }
        }
        formdata_destroy (&parts);
        return 0;
    }
    return ingest_fail (result, 415, "unsupported_media_type",
                        "Content-Type must be application/x-www-form-urlencoded");
}

/* The first value of a field, "" when absent. In a CDR (cdr true) the
 * name is looked up as callDetails[name], a nested one ("employeeData",
 * "name") as callDetails[employeeData][name]. */
static const char *
s_get (const s_fields_t *f, bool cdr, const char *name, const char *sub)
{
    char key[128];
    size_t i;
    if (cdr && sub)
        snprintf (key, sizeof key, "callDetails[%s][%s]", name, sub);
    else if (cdr)
        snprintf (key, sizeof key, "callDetails[%s]", name);
    else
        snprintf (key, sizeof key, "%s", name);
    for (i = 0; i < f->count; i++) {
        if (strcmp (f->names[i], key) == 0)
            return f->values[i];
    }
    return "";
}

/* An optional whole number of at most 10 digits; -1 when absent, -2 when
 * it is not one. */
static long long
s_uint (const char *text)
{
    size_t i, n = strlen (text);
    if (n == 0)
        return -1;
    if (n > 10)
        return -2;
    for (i = 0; i < n; i++) {
        if (!isdigit ((unsigned char)text[i]))
            return -2;
    }
    return strtoll (text, NULL, 10);
}

/* Whether a call with this disposition and talk time went unanswered. */
static bool
s_missed_disposition (const char *disposition, long long billsec)
{
    size_t i;
    if (billsec > 0)
        return false;
    if (strncmp (disposition, "VM", 2) == 0)
        return true;
    for (i = 0; i < sizeof s_missed / sizeof *s_missed; i++) {
        if (strcmp (disposition, s_missed[i]) == 0)
            return true;
    }
    return false;
}

/* A CallInfo with every string our own, for free_unpacked. */
static Retain__V1__CallInfo *
s_call_new (const char *call_id, const char *direction, const char *from, const char *to,
            const char *operator_id, int64_t duration_ms)
{
    Retain__V1__CallInfo *c = malloc (sizeof *c);
    if (!c)
        return NULL;
    retain__v1__call_info__init (c);
    c->call_id = strdup (call_id);
    c->direction = strdup (direction);
    c->from = strdup (from);
    c->to = strdup (to);
    c->recording_url = strdup ("");
    c->operator_id = strdup (operator_id);
    if (!c->call_id || !c->direction || !c->from || !c->to || !c->recording_url ||
        !c->operator_id) {
        protobuf_c_message_free_unpacked (&c->base, NULL);
        return NULL;
    }
    c->duration_ms = duration_ms;
    return c;
}

/* One call step, as read from a request. */
typedef struct {
    const char *request_type; /* Binotel's requestType */
    const char *event;        /* "call_started", ... */
    const char *call_id;      /* generalCallID */
    bool outbound;            /* callType 1 */
    const char *external;     /* the customer's number as sent */
    const char *line;         /* the shop's number called (didNumber, pbxNumber) */
    const char *operator_id;  /* the employee's extension, "" when none */
    const char *name;         /* the customer's name in Binotel, "" when none */
    long long billsec;        /* talk time in seconds, -1 when not given */
    long long start;          /* unix seconds, -1 when not given */
    bool missed;              /* asks for a call-back */
} s_step_t;

/* Adds the step's InboundMessage. 0, or -1 (out of memory). */
static int
s_emit (const ingest_inbox_t *inbox, const ingest_request_t *req, const s_step_t *step,
        ingest_result_t *result)
{
    Retain__V1__InboundMessage *msg = NULL;
    char number[64], e164[RT_PHONE_E164_MAX + 1], *ext = NULL, *text = NULL;
    int rc = -1;

    snprintf (number, sizeof number, "%s",
              ingest_phone (inbox, step->external, NULL, e164) ? e164 : step->external);
    msg = ingest_inbound_new (inbox);
    if (!msg || asprintf (&ext, "%s:%s", step->call_id, step->request_type) < 0) {
        ext = NULL;
        goto cleanup;
    }
    msg->call = s_call_new (step->call_id, step->outbound ? "outbound" : "inbound",
                            step->outbound ? step->operator_id : number,
                            step->outbound ? number : step->line, step->operator_id,
                            step->billsec > 0 ? step->billsec * 1000 : 0);
    if (!msg->call || ingest_set (&msg->external_id, ext) != 0 ||
        ingest_set (&msg->external_user_id, number) != 0 || ingest_set (&msg->phone, number) != 0 ||
        ingest_set (&msg->thread_id, step->call_id) != 0 ||
        ingest_set (&msg->event, step->event) != 0 ||
        ingest_set (&msg->display_name, step->name) != 0)
        goto cleanup;
    if (step->missed) {
        if (asprintf (&text, "Missed call from %s: please call back", number) < 0) {
            text = NULL;
            goto cleanup;
        }
        if (ingest_set (&msg->text, text) != 0)
            goto cleanup;
    }
    msg->sent_at = step->start >= 0 ? step->start * 1000 : req->now_ms;
    rc = ingest_item_add (result, "InboundMessage", ext, &msg->base,
                          ingest_channel_name (inbox->channel), inbox->id, number);
    msg = NULL; /* the result's now, or freed */
cleanup:
    free (text);
    free (ext);
    if (msg)
        protobuf_c_message_free_unpacked (&msg->base, NULL);
    return rc;
}

/* Reads a call step's fields into step; 0, 1 when it concerns no customer
 * (nothing to keep), -1 with the result set. */
static int
s_read_step (const s_fields_t *f, bool cdr, s_step_t *step, ingest_result_t *result)
{
    const char *call_type = s_get (f, cdr, "callType", NULL);
    const char *billsec = s_get (f, cdr, "billsec", NULL);
    const char *start = s_get (f, cdr, "startTime", NULL);
    const char *disposition = s_get (f, cdr, "disposition", NULL);
    size_t i;

    step->call_id = s_get (f, cdr, "generalCallID", NULL);
    if (!step->call_id[0])
        return ingest_fail (result, 400, "malformed", "%sgeneralCallID missing",
                            cdr ? "callDetails[" : "");
    if (strlen (step->call_id) > BINOTEL_ID_MAX)
        return ingest_fail (result, 400, "malformed", "generalCallID is longer than %d bytes",
                            BINOTEL_ID_MAX);
    for (i = 0; step->call_id[i]; i++) {
        unsigned char c = (unsigned char)step->call_id[i];
        if (!isalnum (c) && c != '.' && c != '_' && c != '-')
            return ingest_fail (result, 400, "malformed",
                                "generalCallID holds characters other than letters, digits, "
                                "'.', '_' and '-'");
    }
    if (call_type[0] && strcmp (call_type, "0") != 0 && strcmp (call_type, "1") != 0)
        return ingest_fail (result, 400, "malformed",
                            "callType \"%.16s\" is neither 0 (incoming) nor 1 (outgoing)",
                            call_type);
    step->outbound = strcmp (call_type, "1") == 0;
    step->billsec = s_uint (billsec);
    if (step->billsec == -2)
        return ingest_fail (result, 400, "malformed",
                            "billsec \"%.16s\" is not a whole number of seconds", billsec);
    step->start = s_uint (start);
    if (step->start == -2)
        return ingest_fail (result, 400, "malformed",
                            "startTime \"%.16s\" is not a unix time in seconds", start);
    step->external = s_get (f, cdr, "externalNumber", NULL);
    step->line = s_get (f, cdr, "didNumber", NULL);
    if (!step->line[0])
        step->line = s_get (f, cdr, "pbxNumber", NULL);
    if (!step->line[0])
        step->line = s_get (f, cdr, "pbxNumberData", "number");
    step->operator_id = s_get (f, cdr, "internalNumber", NULL);
    if (!step->operator_id[0])
        step->operator_id = s_get (f, cdr, "employeeData", "internalNumber");
    if (!step->operator_id[0])
        step->operator_id = s_get (f, cdr, "employeeData", "name");
    step->name = s_get (f, cdr, "customerData", "name");
    if (strlen (step->external) >= 64)
        return ingest_fail (result, 400, "malformed", "externalNumber is longer than 63 bytes");
    step->missed = !step->outbound && disposition[0] &&
                   s_missed_disposition (disposition, step->billsec < 0 ? 0 : step->billsec);
    return step->external[0] ? 0 : 1;
}

int
binotel_handle (const ingest_inbox_t *inbox, const ingest_request_t *req, ingest_result_t *result)
{
    s_fields_t fields = {0};
    s_step_t step;
    const char *type;
    bool cdr = false;
    int rc = -1, r;

    if (strcmp (req->method, "POST") != 0)
        return ingest_fail (result, 405, "method_not_allowed", "%s not allowed: events are POSTed",
                            req->method);
    /* The source first: a stranger learns nothing about the token. */
    if (s_source_allowed (inbox, req, result) != 0 || s_token_ok (inbox, req, result) != 0)
        return -1;
    if (s_fields_read (req, &fields, result) != 0)
        goto cleanup;
    type = s_get (&fields, false, "requestType", NULL);
    memset (&step, 0, sizeof step);
    step.request_type = type;
    if (!type[0]) {
        ingest_fail (result, 400, "malformed", "requestType missing");
        goto cleanup;
    }
    if (strcmp (type, "apiCallSettings") == 0) {
        result->response = strdup ("{}");
        result->response_type = "application/json";
        rc = result->response ? 0 : ingest_fail (result, 503, "internal", "out of memory");
        goto cleanup;
    }
    if (strcmp (type, "receivedTheCall") == 0)
        step.event = "call_started";
    else if (strcmp (type, "answeredTheCall") == 0)
        step.event = "call_answered";
    else if (strcmp (type, "hangupTheCall") == 0)
        step.event = "call_ended";
    else if (strcmp (type, "apiCallCompleted") == 0) {
        step.event = "call_ended";
        cdr = true;
    } else {
        /* transferredTheCall, or a type retain does not read. */
        rc = 0;
        goto cleanup;
    }
    r = s_read_step (&fields, cdr, &step, result);
    if (r < 0)
        goto cleanup;
    if (r > 0) {
        rc = 0; /* no customer: an internal call, a hangup naming no number */
        goto cleanup;
    }
    if (strcmp (step.event, "call_ended") == 0 && step.missed)
        step.event = "call_missed";
    else
        step.missed = false; /* only the outcome asks for a call-back */
    if (!cdr)
        step.start = -1; /* only the CDR dates the call */
    rc = s_emit (inbox, req, &step, result);
    if (rc != 0)
        ingest_fail (result, 503, "internal", "out of memory");
cleanup:
    s_fields_free (&fields);
    return rc;
}
