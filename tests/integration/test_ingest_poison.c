/*
 * No webhook can fail another's. Requests carrying bytes that PostgreSQL's
 * text refuses, in every header or field that ends in a text column, sent
 * together with good ones through a real retain-ingestd and retain-busd:
 * every good one is answered 200 and lands on the bus once, every bad one
 * is answered with a definite status (never 503, which a provider retries
 * forever) and is either refused with its reason or stored escaped, and
 * the daemon answers promptly afterwards.
 *
 * The mixes are random; the seed is printed, and RETAIN_TEST_SEED replays
 * one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "rt_test.h"
#include "rt_test_ingest.h"

#define TG_SECRET   "tg-secret-poison"
#define CHAT_SECRET "chat-secret-poison"
#define SMS_TOKEN   "twilio-token-poison"

/* What a request is, and so what it must be answered. */
typedef enum {
    K_TG_OK,         /* a good Telegram update: 200, stored */
    K_TG_RETRY,      /* the provider resending an earlier good one: 200, stored once */
    K_TG_BAD_TYPE,   /* Telegram, Content-Type with bytes that are not text: 200, escaped */
    K_TG_BAD_JSON,   /* Telegram, a body with bytes that are not UTF-8: 400 */
    K_CHAT_OK,       /* a good web chat message: 200 */
    K_CHAT_BAD_TYPE, /* web chat, Content-Type not text: 200, escaped */
    K_CHAT_NUL,      /* web chat, a visitor id holding \u0000: 400 */
    K_SMS_OK,        /* a good Twilio message: 200 */
    K_SMS_BAD_TYPE,  /* Twilio, Content-Type not text: 200, escaped */
    K_SMS_FF_SID,    /* Twilio, %FF in MessageSid: 200, the id made text */
    K_SMS_FF_FROM,   /* Twilio, %FF in From: 200 */
    K_SMS_NUL_SID,   /* Twilio, %00 in MessageSid: 400 */
    K_SMS_NUL_FROM,  /* Twilio, %00 in From: 400 */
    K_COUNT
} s_kind_t;

static const char *const s_kind_name[K_COUNT] = {
    "tg_ok",         "tg_retry",    "tg_bad_type", "tg_bad_json",  "chat_ok",
    "chat_bad_type", "chat_nul",    "sms_ok",      "sms_bad_type", "sms_ff_sid",
    "sms_ff_from",   "sms_nul_sid", "sms_nul_from"};

/* One request in flight and what it must come to. */
typedef struct {
    s_kind_t kind;              /* what it is */
    char path[64];              /* where it goes */
    char *body;                 /* owned */
    size_t len;                 /* its length */
    struct curl_slist *headers; /* owned */
    rt_test_reply_t answer;     /* what it was answered (status 0: nothing) */
    char channel[16];           /* ingest.messages.channel it is stored under */
    char ext[160];              /* the external id it is stored under, or refused by */
    char stored_type[160];      /* the content type ingest.raw must hold, "" unchecked */
} s_req_t;

static rt_test_ingest_t s_t;
/* Numbers every request apart. */
static long s_next_id;

/* Bytes that break UTF-8, each byte of each on its own (so escaping and
 * replacing both treat every byte alike): a lone 0xff, an overlong '/', a
 * surrogate, a code point past U+10FFFF, a lone continuation, a cut
 * sequence. */
static const char *const s_bad[] = {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                    "\x80", "\xe2\x82"};
#define NBAD (sizeof s_bad / sizeof *s_bad)

static int
s_setup (void **state)
{
    static const rt_test_inbox_t inboxes[] = {
        {"shop-bot", "telegram", TG_SECRET, "{}"},
        {"sms", "sms", SMS_TOKEN, "{}"},
        {"site", "webchat", CHAT_SECRET, "{\"allowed_origins\": [\"https://shop.example\"]}"},
    };
    const char *extra[] = {"--request-timeout=30s", NULL};
    /* Six digits throughout, so that no id is a prefix of another. */
    s_next_id = 100000;
    *state = &s_t;
    rt_test_ingest_start (&s_t, "ingest_poison", "", extra);
    rt_test_ingest_inboxes (&s_t, inboxes, sizeof inboxes / sizeof *inboxes);
    return 0;
}

/* --- building requests ------------------------------------------------- */

/* Each bad byte of s as \xNN, the way ingestd stores what is not text
 * (every byte of s_bad is bad on its own). */
static void
s_escaped (const char *s, char *out, size_t outlen)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 5 < outlen; p++) {
        if (*p >= 0x80)
            o += (size_t)snprintf (out + o, outlen - o, "\\x%02x", *p);
        else
            out[o++] = (char)*p;
    }
    out[o] = '\0';
}

/* Each bad byte of s as U+FFFD, the way the form channels clean a field. */
static void
s_replaced (const char *s, char *out, size_t outlen)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 < outlen; p++) {
        if (*p >= 0x80) {
            memcpy (out + o, "\xef\xbf\xbd", 3);
            o += 3;
        } else
            out[o++] = (char)*p;
    }
    out[o] = '\0';
}

/* Percent-encodes len bytes of s (NUL included) for a form body. */
static void
s_pct (const char *s, size_t len, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len && o + 4 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

static void s_header (s_req_t *r, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_header (s_req_t *r, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (line, sizeof line, fmt, ap);
    va_end (ap);
    r->headers = curl_slist_append (r->headers, line);
}

static void
s_req_free (s_req_t *r)
{
    free (r->body);
    curl_slist_free_all (r->headers);
    r->body = NULL;
    r->headers = NULL;
}

/* A Telegram update with message id `id`, its text `text`, sent as `ctype`. */
static void
s_telegram (s_req_t *r, s_kind_t kind, long id, const char *text, const char *ctype)
{
    memset (r, 0, sizeof *r);
    r->kind = kind;
    snprintf (r->path, sizeof r->path, "/hooks/telegram/shop-bot");
    snprintf (r->channel, sizeof r->channel, "telegram");
    snprintf (r->ext, sizeof r->ext, "42:%ld", id);
    if (asprintf (&r->body,
                  "{\"update_id\":%ld,\"message\":{\"message_id\":%ld,\"from\":{\"id\":42,"
                  "\"is_bot\":false,\"first_name\":\"Олена\"},\"chat\":{\"id\":42,\"type\":"
                  "\"private\"},\"date\":1795500000,\"text\":\"%s\"}}",
                  id, id, text) < 0)
        fail_msg ("out of memory");
    r->len = strlen (r->body);
    s_header (r, "Content-Type: %s", ctype);
    s_header (r, "X-Telegram-Bot-Api-Secret-Token: %s", TG_SECRET);
}

/* A web chat message from `visitor` (raw JSON string contents) sent as
 * `ctype`; signed with the inbox secret. */
static void
s_chat (s_req_t *r, s_kind_t kind, const char *visitor, long id, const char *ctype)
{
    char sig[RT_TEST_INGEST_SIG_LEN];
    memset (r, 0, sizeof *r);
    r->kind = kind;
    snprintf (r->path, sizeof r->path, "/chat/site/messages");
    snprintf (r->channel, sizeof r->channel, "webchat");
    snprintf (r->ext, sizeof r->ext, "%s:m-%ld", visitor, id);
    rt_test_ingest_hmac_hex (CHAT_SECRET, visitor, strlen (visitor), sig);
    if (asprintf (&r->body,
                  "{\"visitor_id\":\"%s\",\"visitor_signature\":\"%s\",\"message_id\":\"m-%ld\","
                  "\"text\":\"Do you ship to Lviv?\"}",
                  visitor, sig, id) < 0)
        fail_msg ("out of memory");
    r->len = strlen (r->body);
    s_header (r, "Content-Type: %s", ctype);
    s_header (r, "Origin: https://shop.example");
}

/* A Twilio inbound SMS with MessageSid `sid` and From `from` (raw bytes,
 * sid_len and from_len of them), signed as Twilio signs: the URL and the
 * sorted decoded parameters. */
static void
s_sms (s_req_t *r, s_kind_t kind, const char *sid, size_t sid_len, const char *from,
       size_t from_len, const char *ctype)
{
    char esid[256], efrom[256], sig[RT_TEST_INGEST_SIG_LEN], url[128];
    memset (r, 0, sizeof *r);
    r->kind = kind;
    snprintf (r->path, sizeof r->path, "/hooks/twilio/sms");
    snprintf (r->channel, sizeof r->channel, "sms");
    snprintf (r->ext, sizeof r->ext, "%.*s", (int)sid_len, sid);
    s_pct (sid, sid_len, esid, sizeof esid);
    s_pct (from, from_len, efrom, sizeof efrom);
    if (asprintf (&r->body,
                  "ToCountry=US&SmsMessageSid=%s&NumMedia=0&SmsStatus=received&Body=Where+is+my+"
                  "order%%3F&To=%%2B14155238886&MessageSid=%s&AccountSid="
                  "AC0123456789abcdef0123456789abcdef&From=%s&ApiVersion=2010-04-01",
                  esid, esid, efrom) < 0)
        fail_msg ("out of memory");
    r->len = strlen (r->body);
    snprintf (url, sizeof url, "%s/hooks/twilio/sms", s_t.ingestd.base);
    if (rt_test_ingest_twilio_sign (SMS_TOKEN, url, r->body, r->len, sig) != 0)
        snprintf (sig, sizeof sig, "unsignable"); /* a form that does not parse */
    s_header (r, "Content-Type: %s", ctype);
    s_header (r, "X-Twilio-Signature: %s", sig);
}

/* A request of the given kind, with a fresh id; `bad` picks the bytes. */
static void
s_make (s_req_t *r, s_kind_t kind, const char *bad, const s_req_t *earlier)
{
    long id = s_next_id++;
    char ctype[128], sid[96], from[96], visitor[64];
    snprintf (ctype, sizeof ctype, "application/json; x=%s", bad);
    snprintf (visitor, sizeof visitor, "v-%ld", id);
    switch (kind) {
    case K_TG_OK:
        s_telegram (r, kind, id, "Де моє замовлення?", "application/json");
        snprintf (r->stored_type, sizeof r->stored_type, "application/json");
        break;
    case K_TG_RETRY:
        *r = *earlier;
        r->kind = kind;
        r->body = strdup (earlier->body);
        r->headers = NULL;
        for (struct curl_slist *h = earlier->headers; h; h = h->next)
            r->headers = curl_slist_append (r->headers, h->data);
        memset (&r->answer, 0, sizeof r->answer);
        break;
    case K_TG_BAD_TYPE:
        s_telegram (r, kind, id, "hello", ctype);
        s_escaped (ctype, r->stored_type, sizeof r->stored_type);
        break;
    case K_TG_BAD_JSON: {
        char text[32];
        snprintf (text, sizeof text, "caf%s", bad);
        s_telegram (r, kind, id, text, "application/json");
        break;
    }
    case K_CHAT_OK:
        s_chat (r, kind, visitor, id, "application/json");
        snprintf (r->stored_type, sizeof r->stored_type, "application/json");
        break;
    case K_CHAT_BAD_TYPE:
        s_chat (r, kind, visitor, id, ctype);
        s_escaped (ctype, r->stored_type, sizeof r->stored_type);
        break;
    case K_CHAT_NUL:
        snprintf (visitor, sizeof visitor, "v-%ld\\u0000x", id);
        s_chat (r, kind, visitor, id, "application/json");
        snprintf (r->ext, sizeof r->ext, "v-%ld%%", id);
        break;
    case K_SMS_OK:
    case K_SMS_BAD_TYPE:
        snprintf (sid, sizeof sid, "SM%032ld", id);
        s_sms (r, kind, sid, strlen (sid), "+14155551234", 12,
               kind == K_SMS_OK ? "application/x-www-form-urlencoded"
                                : "application/x-www-form-urlencoded; x=\xff");
        if (kind == K_SMS_OK)
            snprintf (r->stored_type, sizeof r->stored_type, "application/x-www-form-urlencoded");
        else
            snprintf (r->stored_type, sizeof r->stored_type,
                      "application/x-www-form-urlencoded; x=\\xff");
        break;
    case K_SMS_FF_SID:
        snprintf (sid, sizeof sid, "SM%030ld%s", id, bad);
        s_sms (r, kind, sid, strlen (sid), "+14155551234", 12, "application/x-www-form-urlencoded");
        s_replaced (sid, r->ext, sizeof r->ext);
        break;
    case K_SMS_FF_FROM:
        snprintf (sid, sizeof sid, "SM%032ld", id);
        snprintf (from, sizeof from, "+1415555%s%ld", bad, id % 10000);
        s_sms (r, kind, sid, strlen (sid), from, strlen (from),
               "application/x-www-form-urlencoded");
        break;
    case K_SMS_NUL_SID: {
        size_t n = (size_t)snprintf (sid, sizeof sid, "SM%030ldxx", id);
        sid[n - 2] = '\0'; /* SM...<NUL>x */
        s_sms (r, kind, sid, n, "+14155551234", 12, "application/x-www-form-urlencoded");
        snprintf (r->ext, sizeof r->ext, "SM%030ld%%", id);
        break;
    }
    case K_SMS_NUL_FROM: {
        size_t n;
        snprintf (sid, sizeof sid, "SM%032ld", id);
        n = (size_t)snprintf (from, sizeof from, "+1415555xx");
        from[n - 2] = '\0';
        s_sms (r, kind, sid, strlen (sid), from, n, "application/x-www-form-urlencoded");
        break;
    }
    default:
        fail_msg ("no such kind %d", kind);
    }
}

/* True when the kind is answered 200 and stored. */
static bool
s_stored (s_kind_t kind)
{
    return kind != K_TG_BAD_JSON && kind != K_CHAT_NUL && kind != K_SMS_NUL_SID &&
           kind != K_SMS_NUL_FROM;
}

/* --- sending them all at once ----------------------------------------- */

/* Sends reqs[0..n) concurrently, each on its own connection, and records
 * each answer. */
static void
s_send_all (s_req_t *reqs, size_t n)
{
    CURLM *multi = curl_multi_init ();
    CURL **easy = calloc (n, sizeof *easy);
    int running = 0;
    CURLMsg *msg;
    int left;
    assert_non_null (multi);
    for (size_t i = 0; i < n; i++) {
        char url[256];
        snprintf (url, sizeof url, "%s%s", s_t.ingestd.base, reqs[i].path);
        easy[i] = curl_easy_init ();
        curl_easy_setopt (easy[i], CURLOPT_URL, url);
        curl_easy_setopt (easy[i], CURLOPT_POST, 1L);
        curl_easy_setopt (easy[i], CURLOPT_POSTFIELDS, reqs[i].body);
        curl_easy_setopt (easy[i], CURLOPT_POSTFIELDSIZE, (long)reqs[i].len);
        curl_easy_setopt (easy[i], CURLOPT_HTTPHEADER, reqs[i].headers);
        curl_easy_setopt (easy[i], CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt (easy[i], CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt (easy[i], CURLOPT_WRITEFUNCTION, rt_test_reply_write);
        curl_easy_setopt (easy[i], CURLOPT_WRITEDATA, &reqs[i].answer);
        curl_easy_setopt (easy[i], CURLOPT_PRIVATE, &reqs[i]);
        curl_multi_add_handle (multi, easy[i]);
    }
    do {
        curl_multi_perform (multi, &running);
        if (running)
            curl_multi_poll (multi, NULL, 0, 1000, NULL);
    } while (running);
    while ((msg = curl_multi_info_read (multi, &left))) {
        s_req_t *r = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (msg->data.result == CURLE_OK)
            curl_easy_getinfo (msg->easy_handle, CURLINFO_RESPONSE_CODE, &r->answer.status);
    }
    for (size_t i = 0; i < n; i++) {
        curl_multi_remove_handle (multi, easy[i]);
        curl_easy_cleanup (easy[i]);
    }
    free (easy);
    curl_multi_cleanup (multi);
}

/* --- what must hold afterwards ----------------------------------------- */

static long long
s_query_long (const char *sql, const char *a, const char *b)
{
    const char *params[2] = {a, b};
    PGresult *res = PQexecParams (s_t.conn, sql, b ? 2 : 1, NULL, params, NULL, NULL, 0);
    long long v;
    if (PQresultStatus (res) != PGRES_TUPLES_OK)
        fail_msg ("%s: %s", sql, PQresultErrorMessage (res));
    v = atoll (PQgetvalue (res, 0, 0));
    PQclear (res);
    return v;
}

/* Waits until busd has drained the outbox. */
static void
s_wait_drained (void)
{
    assert_int_equal (rt_test_ingest_wait_drained (s_t.conn), 0);
    assert_int_equal (rt_test_pg_long (s_t.conn, "SELECT count(*) FROM outbox.rejected"), 0);
}

/* The count of bus.events once everything answered so far is in it. */
static long long
s_events (void)
{
    s_wait_drained ();
    return rt_test_pg_long (s_t.conn, "SELECT count(*) FROM bus.events");
}

/* Checks every request's answer and what the database holds for it;
 * events_before is s_events () before the requests. */
static void
s_check_all (const s_req_t *reqs, size_t n, long long events_before)
{
    long long distinct = 0;
    s_wait_drained ();
    for (size_t i = 0; i < n; i++) {
        const s_req_t *r = &reqs[i];
        if (s_stored (r->kind)) {
            if (r->answer.status != 200)
                fail_msg ("request %zu (%s) answered %ld: %s", i, s_kind_name[r->kind],
                          r->answer.status, r->answer.body);
            /* Once in ingest, once on the bus. */
            if (s_query_long ("SELECT count(*) FROM ingest.messages WHERE channel = $1 AND "
                              "external_id = $2",
                              r->channel, r->ext) != 1)
                fail_msg ("request %zu (%s): not stored once under \"%s\"", i, s_kind_name[r->kind],
                          r->ext);
            if (s_query_long ("SELECT count(*) FROM ingest.messages m JOIN bus.events e ON "
                              "e.id = m.event_id WHERE m.channel = $1 AND m.external_id = $2",
                              r->channel, r->ext) != 1)
                fail_msg ("request %zu (%s): not on the bus once", i, s_kind_name[r->kind]);
            if (r->kind != K_TG_RETRY)
                distinct++;
            /* The content type as stored, escaped when it was not text. */
            if (r->stored_type[0] &&
                s_query_long ("SELECT count(*) FROM ingest.raw r JOIN ingest.messages m ON "
                              "m.raw_id = r.id WHERE m.external_id = $1 AND r.content_type = $2",
                              r->ext, r->stored_type) != 1)
                fail_msg ("request %zu (%s): content type not stored as \"%s\"", i,
                          s_kind_name[r->kind], r->stored_type);
        } else {
            /* A definite refusal with its reason, and nothing kept. */
            if (r->answer.status < 400 || r->answer.status > 499)
                fail_msg ("request %zu (%s) answered %ld, not a 4xx: %s", i, s_kind_name[r->kind],
                          r->answer.status, r->answer.body);
            if (r->answer.len == 0)
                fail_msg ("request %zu (%s) refused without a reason", i, s_kind_name[r->kind]);
            if (s_query_long ("SELECT count(*) FROM ingest.messages WHERE external_id LIKE $1",
                              r->ext, NULL) != 0)
                fail_msg ("request %zu (%s) refused but stored", i, s_kind_name[r->kind]);
        }
    }
    /* Nothing else reached the bus. */
    assert_int_equal (rt_test_pg_long (s_t.conn, "SELECT count(*) FROM bus.events"),
                      events_before + distinct);
}

/* A good webhook after the storm is answered 200 within a second. */
static void
s_nothing_stuck (void)
{
    s_req_t r;
    int64_t t0;
    s_make (&r, K_TG_OK, "", NULL);
    t0 = rt_test_now_ms ();
    s_send_all (&r, 1);
    assert_int_equal (r.answer.status, 200);
    if (rt_test_now_ms () - t0 > 1000)
        fail_msg ("a webhook after took %lld ms", (long long)(rt_test_now_ms () - t0));
    s_req_free (&r);
}

/* --- the tests ---------------------------------------------------------- */

static void
test_poisoned_header_in_busy_round (void **state)
{
    enum { GOOD = 200, POISONED = 10 };
    s_req_t *reqs = calloc (GOOD + POISONED, sizeof *reqs);
    long long events = s_events ();
    size_t i, n = 0;
    (void)state;
    /* The poisoned ones spread among the good, as they would arrive. */
    for (i = 0; i < GOOD + POISONED; i++) {
        if (i % ((GOOD + POISONED) / POISONED) == 5)
            s_make (&reqs[n++], K_TG_BAD_TYPE, "\xff", NULL);
        else
            s_make (&reqs[n++], K_TG_OK, "", NULL);
    }
    s_send_all (reqs, n);
    s_check_all (reqs, n, events);
    assert_int_equal (rt_test_pg_long (s_t.conn,
                                       "SELECT count(*) FROM ingest.raw WHERE content_type = "
                                       "'application/json; x=\\xff'"),
                      POISONED);
    s_nothing_stuck ();
    for (i = 0; i < n; i++)
        s_req_free (&reqs[i]);
    free (reqs);
}

static void
test_random_mixes (void **state)
{
    enum { PER_MIX = 160, MIXES = 3 };
    const char *env = getenv ("RETAIN_TEST_SEED");
    unsigned seed = env && *env ? (unsigned)strtoul (env, NULL, 10)
                                : (unsigned)time (NULL) ^ (unsigned)getpid ();
    s_req_t *reqs = calloc (PER_MIX, sizeof *reqs);
    (void)state;
    printf ("test_random_mixes: seed %u (replay with RETAIN_TEST_SEED=%u)\n", seed, seed);
    fflush (stdout);
    srand (seed);
    for (int mix = 0; mix < MIXES; mix++) {
        long long events = s_events ();
        size_t i, n = 0, seen[K_COUNT] = {0};
        for (i = 0; i < PER_MIX; i++) {
            /* Half good, half of every bad kind. */
            s_kind_t kind = rand () % 2 ? K_TG_OK : (s_kind_t)(rand () % K_COUNT);
            const s_req_t *earlier = NULL;
            if (kind == K_TG_RETRY) {
                /* Of a good one sent in the same mix, picked at random. */
                size_t start = n ? (size_t)rand () % n : 0;
                for (size_t j = 0; j < n && !earlier; j++)
                    if (reqs[(start + j) % n].kind == K_TG_OK)
                        earlier = &reqs[(start + j) % n];
                if (!earlier)
                    kind = K_TG_OK;
            }
            s_make (&reqs[n++], kind, s_bad[(size_t)rand () % NBAD], earlier);
            seen[kind]++;
        }
        s_send_all (reqs, n);
        s_check_all (reqs, n, events);
        for (i = 0; i < n; i++)
            s_req_free (&reqs[i]);
        printf ("mix %d:", mix);
        for (i = 0; i < K_COUNT; i++)
            printf (" %s=%zu", s_kind_name[i], seen[i]);
        printf ("\n");
    }
    s_nothing_stuck ();
    free (reqs);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_poisoned_header_in_busy_round),
        cmocka_unit_test (test_random_mixes),
    };
    curl_global_init (CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests (tests, s_setup, rt_test_ingest_teardown);
}
