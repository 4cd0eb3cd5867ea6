/*
 * test_ingest_twilio_npm: a third party's code checks ours. Every
 * X-Twilio-Signature here is made by the official `twilio` npm package
 * (tests/e2e/twilio/sign.js, getExpectedTwilioSignature, self-checked with
 * validateRequest), and twilio_handle must accept exactly those and refuse
 * tampered requests: the fixtures, values with unicode, '+', spaces and
 * escapes, names sent several times, names whose order differs between
 * UTF-16 and UTF-8, URLs with and without the default port.
 *
 * Needs `node` on PATH (deploy/deps --test installs nodejs and npm when
 * none is there); installs the package with `npm ci` into
 * tests/e2e/twilio/node_modules when it is missing. Without node the test
 * fails rather than skips: the issue asks for this check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "rt_test.h"
#include "rt_crypto.h"
#include "rt_form.h"

#define NPM_DIR RT_TEST_SOURCE_DIR "/tests/e2e/twilio"
#define TOKEN   "npm-test-auth-token"
#define URL     "https://hooks.example.com/hooks/twilio/shop-sms"

static char *
s_fixture (const char *name)
{
    char rel[256];
    snprintf (rel, sizeof rel, "ingest/twilio/%s", name);
    return rt_test_fixture (rel, NULL);
}

/* The signature the twilio package computes, into out (64 bytes). The
 * arguments go through the shell in single quotes, so none may hold one
 * (form bodies escape it as %27). */
static void
s_npm_sign (const char *token, const char *url, const char *body, char *out)
{
    char *cmd = NULL;
    FILE *p;
    size_t n;
    int status;
    if (strchr (token, '\'') || strchr (url, '\'') || strchr (body, '\''))
        fail_msg ("a quote in an argument to sign.js");
    if (asprintf (&cmd, "node '%s/sign.js' '%s' '%s' '%s'", NPM_DIR, token, url, body) < 0)
        fail_msg ("out of memory");
    p = popen (cmd, "r");
    free (cmd);
    assert_non_null (p);
    if (!fgets (out, 64, p))
        out[0] = '\0';
    status = pclose (p);
    if (status != 0)
        fail_msg ("sign.js failed (status %d)", status);
    n = strlen (out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    assert_int_equal (n, 28); /* Base64 of 20 bytes */
}

typedef struct {
    ingest_header_t headers[2];
    ingest_request_t req;
    ingest_inbox_t inbox;
    json_t *config;
    ingest_result_t result;
} s_call_t;

static void
s_init (s_call_t *c)
{
    memset (c, 0, sizeof *c);
    c->config = json_object ();
    c->inbox.id = "shop-sms";
    c->inbox.channel = RETAIN__V1__CHANNEL__SMS;
    c->inbox.secret = TOKEN;
    c->inbox.previous_secret = "";
    c->inbox.config = c->config;
    c->req.method = "POST";
    c->req.path = "/hooks/twilio/shop-sms";
    c->req.query = "";
    c->req.headers = c->headers;
    c->req.public_url = URL;
    c->req.now_ms = 1750000000000LL;
}

static int
s_handle (s_call_t *c, const char *body, const char *signature)
{
    c->headers[0].name = "Content-Type";
    c->headers[0].value = "application/x-www-form-urlencoded";
    c->headers[1].name = "X-Twilio-Signature";
    c->headers[1].value = signature;
    c->req.nheaders = 2;
    c->req.body = (const uint8_t *)body;
    c->req.body_len = strlen (body);
    ingest_result_reset (&c->result);
    return twilio_handle (&c->inbox, &c->req, &c->result);
}

static void
s_done (s_call_t *c)
{
    ingest_result_reset (&c->result);
    json_decref (c->config);
}

static void
s_accepted (s_call_t *c, const char *body, const char *signature, size_t items)
{
    int rc = s_handle (c, body, signature);
    if (rc != 0)
        fail_msg ("refused (%d %s: %s) a body the twilio package signed: %s", c->result.status,
                  c->result.label, c->result.reason, body);
    assert_int_equal (c->result.count, items);
}

static void
s_forged (s_call_t *c, const char *body, const char *signature)
{
    assert_int_equal (s_handle (c, body, signature), -1);
    assert_int_equal (c->result.status, 403);
    assert_string_equal (c->result.label, "bad_signature");
    assert_int_equal (c->result.count, 0);
}

static void
test_fixtures (void **state)
{
    static const struct {
        const char *name;
        size_t items;
    } fixtures[] = {
        {"sms.form", 1},
        {"mms.form", 1},
        {"whatsapp.form", 1},
        {"whatsapp_media.form", 1},
        {"whatsapp_location.form", 1},
        {"whatsapp_button.form", 1},
        {"status_sent.form", 0},
        {"status_delivered.form", 1},
        {"status_read_whatsapp.form", 1},
        {"status_undelivered.form", 1},
        {"status_failed.form", 1},
    };
    s_call_t c;
    char sig[64];
    size_t i;
    (void)state;
    s_init (&c);
    for (i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        char *body = s_fixture (fixtures[i].name);
        s_npm_sign (TOKEN, URL, body, sig);
        s_accepted (&c, body, sig, fixtures[i].items);
        free (body);
    }
    s_done (&c);
}

/* Names sent several times count their distinct values, sorted; names and
 * values sort as JavaScript strings (UTF-16 code units), where U+E000
 * comes after U+1F600, unlike their UTF-8 bytes. */
static void
test_repeated_and_unicode_order (void **state)
{
    s_call_t c;
    char sig[64], naive[64], err[128];
    char *body = s_fixture ("repeated_unicode.form");
    rt_form_t *form;
    const rt_form_pair_t *const *sorted;
    uint8_t mac[RT_SHA1_LEN];
    char *data;
    size_t i, len;
    (void)state;
    s_init (&c);
    s_npm_sign (TOKEN, URL, body, sig);
    s_accepted (&c, body, sig, 1);

    /* The same request signed with byte order and every value kept is
     * another signature: the test would notice a naive implementation. */
    form = rt_form_parse (body, strlen (body), err, sizeof err);
    assert_non_null (form);
    sorted = rt_form_sorted (form);
    data = malloc (strlen (URL) + strlen (body) + 1);
    strcpy (data, URL);
    len = strlen (URL);
    for (i = 0; i < rt_form_count (form); i++) {
        len += (size_t)sprintf (data + len, "%s%s", sorted[i]->name, sorted[i]->value);
    }
    rt_hmac_sha1 (TOKEN, strlen (TOKEN), data, len, mac);
    rt_base64_encode (mac, sizeof mac, naive);
    assert_string_not_equal (naive, sig);
    s_forged (&c, body, naive);
    free (data);
    rt_form_destroy (&form);
    free (body);
    s_done (&c);
}

/* Values the way form encoding can spell them. */
static void
test_special_values (void **state)
{
    static const char *const bodies[] = {
        /* '+' is a space, %2B a plus, %20 a space too */
        "MessageSid=SM1&From=%2B14155551234&Body=a+b%2Bc%20d++e",
        /* empty values, a name without '=', an empty part */
        "MessageSid=SM2&From=%2B14155551234&Body=&Flag&&ProfileName=",
        /* an empty name, escapes in names, reserved characters */
        "MessageSid=SM3&From=%2B14155551234&=empty-name&A%2BB=1&A+B=2&Body=%3D%26%3F%23%25%27%22",
        /* UTF-8 of several lengths, and emoji beyond U+FFFF */
        "MessageSid=SM4&From=whatsapp%3A%2B79161234567&Body=%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82+"
        "%E2%82%AC+%F0%9F%98%80&ProfileName=%E5%BC%A0%E4%BC%9F",
        /* the same name twice with the same value, and out of order */
        "MessageSid=SM5&From=%2B14155551234&Body=x&Tag=z&Tag=a&Tag=z&Tag=m",
    };
    s_call_t c;
    char sig[64];
    size_t i;
    (void)state;
    s_init (&c);
    for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        s_npm_sign (TOKEN, URL, bodies[i], sig);
        s_accepted (&c, bodies[i], sig, 1);
    }
    s_done (&c);
}

/* The URL is signed as Twilio called it, query included; the default port
 * may or may not be in it. */
static void
test_urls (void **state)
{
    static const char *const query_url =
        "https://hooks.example.com/hooks/twilio/shop-sms?tenant=a%20b&x=1";
    s_call_t c;
    char sig[64];
    char *body = s_fixture ("sms.form");
    (void)state;
    s_init (&c);
    c.req.public_url = query_url;
    s_npm_sign (TOKEN, query_url, body, sig);
    s_accepted (&c, body, sig, 1);

    c.req.public_url = URL;
    s_npm_sign (TOKEN, "https://hooks.example.com:443/hooks/twilio/shop-sms", body, sig);
    s_accepted (&c, body, sig, 1);
    c.req.public_url = "https://hooks.example.com:443/hooks/twilio/shop-sms";
    s_npm_sign (TOKEN, URL, body, sig);
    s_accepted (&c, body, sig, 1);

    /* Another path, another query or another port is another request. */
    c.req.public_url = URL;
    s_npm_sign (TOKEN, URL "?x=1", body, sig);
    s_forged (&c, body, sig);
    s_npm_sign (TOKEN, "https://hooks.example.com:8443/hooks/twilio/shop-sms", body, sig);
    s_forged (&c, body, sig);
    s_npm_sign (TOKEN, "http://hooks.example.com/hooks/twilio/shop-sms", body, sig);
    s_forged (&c, body, sig);
    free (body);
    s_done (&c);
}

static void
test_tampered_and_wrong_token (void **state)
{
    s_call_t c;
    char sig[64];
    char *body = s_fixture ("whatsapp.form");
    char *tampered = s_fixture ("whatsapp_tampered.form");
    (void)state;
    s_init (&c);
    s_npm_sign (TOKEN, URL, body, sig);
    s_accepted (&c, body, sig, 1);
    s_forged (&c, tampered, sig);
    s_npm_sign ("another-token", URL, body, sig);
    s_forged (&c, body, sig);

    /* During a rotation the previous token still signs. */
    c.inbox.secret = "rotated-token";
    c.inbox.previous_secret = TOKEN;
    s_npm_sign (TOKEN, URL, body, sig);
    s_accepted (&c, body, sig, 1);
    s_npm_sign ("rotated-token", URL, body, sig);
    s_accepted (&c, body, sig, 1);
    free (body);
    free (tampered);
    s_done (&c);
}

/* node on PATH, and the package installed from the committed lock file. */
static int
s_setup (void **state)
{
    char marker[512];
    (void)state;
    if (system ("command -v node >/dev/null 2>&1") != 0) {
        fprintf (stderr, "test_ingest_twilio_npm: node is not on PATH "
                         "(deploy/deps --test installs nodejs and npm)\n");
        return -1;
    }
    snprintf (marker, sizeof marker, "%s/node_modules/twilio/package.json", NPM_DIR);
    if (access (marker, R_OK) != 0 &&
        system ("cd '" NPM_DIR "' && npm ci --no-audit --no-fund >&2") != 0) {
        fprintf (stderr, "test_ingest_twilio_npm: npm ci failed in %s\n", NPM_DIR);
        return -1;
    }
    return 0;
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_fixtures),
        cmocka_unit_test (test_repeated_and_unicode_order),
        cmocka_unit_test (test_special_values),
        cmocka_unit_test (test_urls),
        cmocka_unit_test (test_tampered_and_wrong_token),
    };
    return cmocka_run_group_tests (tests, s_setup, NULL);
}
