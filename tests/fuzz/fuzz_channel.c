/*
 * libFuzzer targets for ingestd's parsers: one binary per target, chosen at
 * build time by FUZZ_TARGET. For the webhook channels the harness signs the
 * fuzzed body the way the provider would, so inputs get past verification
 * into the parser, where the bugs would be; an unsigned run would only ever
 * exercise the signature check.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "mime.h"
#include "rt_crypto.h"
#include "rt_form.h"

#define SECRET "fuzz-secret"

__attribute__ ((unused)) static int
s_never_seen (void *arg, const char *nonce, int64_t expires_ms)
{
    (void)arg;
    (void)nonce;
    (void)expires_ms;
    return 0;
}

__attribute__ ((unused)) static void
s_run (ingest_handler_fn handler, Retain__V1__Channel channel, const char *content_type,
       const ingest_header_t *extra, size_t nextra, const uint8_t *data, size_t size,
       const char *query)
{
    ingest_header_t headers[8];
    ingest_inbox_t inbox;
    ingest_request_t req;
    ingest_result_t result;
    json_t *config =
        json_pack ("{s:s, s:[s]}", "verify_token", "vt", "allowed_origins", "https://shop.example");
    size_t n = 0, i;
    headers[n++] = (ingest_header_t){"Content-Type", content_type};
    for (i = 0; i < nextra && n < 8; i++)
        headers[n++] = extra[i];
    memset (&inbox, 0, sizeof inbox);
    inbox.id = "fuzz";
    inbox.channel = channel;
    inbox.secret = SECRET;
    inbox.previous_secret = "";
    inbox.config = config;
    memset (&req, 0, sizeof req);
    req.method = "POST";
    req.path = "/hooks/fuzz/fuzz";
    req.query = query;
    req.headers = headers;
    req.nheaders = n;
    req.body = data;
    req.body_len = size;
    req.public_url = "https://hooks.example/hooks/twilio/fuzz";
    req.now_ms = 1795500000000LL;
    req.replay_check = s_never_seen;
    memset (&result, 0, sizeof result);
    handler (&inbox, &req, &result);
    ingest_result_reset (&result);
    json_decref (config);
}

__attribute__ ((unused)) static void
s_hex_hmac (const uint8_t *data, size_t size, char out[65])
{
    uint8_t mac[RT_SHA256_LEN];
    rt_hmac_sha256 (SECRET, strlen (SECRET), data, size, mac);
    rt_hex_encode (mac, sizeof mac, out);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
#if defined(FUZZ_TELEGRAM)
    ingest_header_t h[] = {{"X-Telegram-Bot-Api-Secret-Token", SECRET}};
    s_run (telegram_handle, RETAIN__V1__CHANNEL__TELEGRAM, "application/json", h, 1, data, size,
           "");
#elif defined(FUZZ_VIBER)
    char sig[65];
    s_hex_hmac (data, size, sig);
    ingest_header_t h[] = {{"X-Viber-Content-Signature", sig}};
    s_run (viber_handle, RETAIN__V1__CHANNEL__VIBER, "application/json", h, 1, data, size, "");
#elif defined(FUZZ_META)
    char sig[65], header[80];
    s_hex_hmac (data, size, sig);
    snprintf (header, sizeof header, "sha256=%s", sig);
    ingest_header_t h[] = {{"X-Hub-Signature-256", header}};
    s_run (meta_handle, RETAIN__V1__CHANNEL__WHATSAPP, "application/json", h, 1, data, size, "");
    s_run (meta_handle, RETAIN__V1__CHANNEL__MESSENGER, "application/json", h, 1, data, size, "");
#elif defined(FUZZ_WEBCHAT)
    s_run (webchat_handle, RETAIN__V1__CHANNEL__WEBCHAT, "application/json", NULL, 0, data, size,
           "");
#elif defined(FUZZ_PHONE)
    char sig[65], header[80];
    s_hex_hmac (data, size, sig);
    snprintf (header, sizeof header, "sha256=%s", sig);
    ingest_header_t h[] = {{"X-Retain-Signature", header}};
    s_run (phone_handle, RETAIN__V1__CHANNEL__PHONE, "application/json", h, 1, data, size, "");
#elif defined(FUZZ_TWILIO)
    /* The signature covers the sorted form, which the harness cannot make
     * without parsing: exercise the form parser and the handler's
     * rejection path; the parser itself is fuzzed through FUZZ_FORM. */
    ingest_header_t h[] = {{"X-Twilio-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}};
    s_run (twilio_handle, RETAIN__V1__CHANNEL__SMS, "application/x-www-form-urlencoded", h, 1, data,
           size, "");
#elif defined(FUZZ_MAILGUN)
    s_run (mailgun_handle, RETAIN__V1__CHANNEL__EMAIL, "multipart/form-data; boundary=fuzzboundary",
           NULL, 0, data, size, "");
    s_run (mailgun_handle, RETAIN__V1__CHANNEL__EMAIL, "application/x-www-form-urlencoded", NULL, 0,
           data, size, "");
#elif defined(FUZZ_FORM)
    char err[128];
    rt_form_t *form = rt_form_parse ((const char *)data, size, err, sizeof err);
    if (form) {
        rt_form_sorted (form);
        rt_form_get (form, "Body");
        rt_form_destroy (&form);
    }
#elif defined(FUZZ_MIME)
    mime_message_t *msg = mime_parse ((const char *)data, size);
    mime_free (&msg);
#else
#error "define one FUZZ_<TARGET>"
#endif
    return 0;
}
