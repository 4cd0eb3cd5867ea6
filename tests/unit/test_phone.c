/*
 * test_phone: common/phone/rt_phone, the one E.164 normaliser every channel
 * uses and routerd matches customers on.
 *
 * What a caller relies on: the same customer's number comes out the same
 * however a person, a PBX, Telegram or Twilio wrote it; anything that is
 * not one number (letters, an extension, a wrong length, a country code
 * nobody has) is refused with a reason a person can act on, never turned
 * into a plausible number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_phone.h"

typedef struct {
    const char *input;   /* as a channel receives it */
    const char *country; /* default country; NULL is UA */
    const char *e164;    /* expected E.164, or NULL when refused */
    const char *reason;  /* a fragment of the expected reason when refused */
} s_case_t;

static const s_case_t s_cases[] = {
    /* Ukraine, every way it is written. */
    {"067 111 22 33", NULL, "+380671112233", NULL},
    {"+38 (067) 111-22-33", NULL, "+380671112233", NULL},
    {"80671112233", NULL, "+380671112233", NULL},
    {"8 (067) 111-22-33", NULL, "+380671112233", NULL},
    {"380671112233", NULL, "+380671112233", NULL},
    {"+380671112233", NULL, "+380671112233", NULL},
    {"0671112233", NULL, "+380671112233", NULL},
    {"00380671112233", NULL, "+380671112233", NULL},
    {"0038 067 111 22 33", NULL, "+380671112233", NULL},
    {"(067) 111.22.33", NULL, "+380671112233", NULL},
    {"+380 (0) 67 111 22 33", NULL, "+380671112233", NULL},
    {"  +380 67 111 22 33\t", NULL, "+380671112233", NULL},
    {"067\xC2\xA0"
     "111\xC2\xA0"
     "22\xC2\xA0"
     "33",
     NULL, "+380671112233", NULL},
    {"+380\xE2\x80\xAF"
     "67\xE2\x80\x93"
     "111\xE2\x80\x93"
     "22\xE2\x80\x93"
     "33",
     NULL, "+380671112233", NULL},
    {"\xE2\x80\x8E+380 50 123 45 67\xE2\x80\x8F", NULL, "+380501234567", NULL},
    {"tel:+380671112233", NULL, "+380671112233", NULL},
    {"TEL:0671112233", NULL, "+380671112233", NULL},
    {"067 111 22 33", "ua", "+380671112233", NULL},
    /* Telegram's contact share: international digits, no '+'. */
    {"380501234567", NULL, "+380501234567", NULL},
    {"48600100200", NULL, "+48600100200", NULL},
    {"5511987654321", "ZZ", "+5511987654321", NULL},
    /* Twilio. */
    {"+14155552671", NULL, "+14155552671", NULL},
    {"whatsapp:+14155552671", NULL, "+14155552671", NULL},
    {"WhatsApp:+79161234567", NULL, "+79161234567", NULL},
    {"+1 (415) 555-2671", NULL, "+14155552671", NULL},
    /* Other countries of the table, international and national. */
    {"415-555-2671", "US", "+14155552671", NULL},
    {"1 415 555 2671", "US", "+14155552671", NULL},
    {"011 380 67 111 22 33", "US", "+380671112233", NULL},
    {"+1 604 555 0123", NULL, "+16045550123", NULL},
    {"+48 600 100 200", NULL, "+48600100200", NULL},
    {"600 100 200", "PL", "+48600100200", NULL},
    {"+373 69 123 456", NULL, "+37369123456", NULL},
    {"069 123 456", "MD", "+37369123456", NULL},
    {"+40 721 234 567", NULL, "+40721234567", NULL},
    {"0721 234 567", "RO", "+40721234567", NULL},
    {"+421 912 123 456", NULL, "+421912123456", NULL},
    {"+36 1 234 5678", NULL, "+3612345678", NULL},
    {"06 20 123 4567", "HU", "+36201234567", NULL},
    {"+49 30 12345678", NULL, "+493012345678", NULL},
    {"030/12345678", "DE", "+493012345678", NULL},
    {"+49 1512 3456789", NULL, "+4915123456789", NULL},
    {"+44 20 7946 0958", NULL, "+442079460958", NULL},
    {"+44 (0)20 7946 0958", NULL, "+442079460958", NULL},
    {"07700 900123", "GB", "+447700900123", NULL},
    {"+7 701 123 4567", NULL, "+77011234567", NULL},
    {"8 701 123 45 67", "KZ", "+77011234567", NULL},
    {"+995 555 12 34 56", NULL, "+995555123456", NULL},
    {"+370 612 34567", NULL, "+37061234567", NULL},
    {"8 612 34567", "LT", "+37061234567", NULL},
    {"+371 2123 4567", NULL, "+37121234567", NULL},
    {"+372 5123 4567", NULL, "+37251234567", NULL},
    {"+372 512 3456", NULL, "+3725123456", NULL},
    {"+420 601 123 456", NULL, "+420601123456", NULL},
    {"+39 06 1234 5678", NULL, "+390612345678", NULL},
    {"347 123 4567", "IT", "+393471234567", NULL},
    {"+33 6 12 34 56 78", NULL, "+33612345678", NULL},
    {"06 12 34 56 78", "FR", "+33612345678", NULL},
    {"+34 612 34 56 78", NULL, "+34612345678", NULL},
    {"+90 532 123 45 67", NULL, "+905321234567", NULL},
    {"0532 123 45 67", "TR", "+905321234567", NULL},
    {"+972 50-123-4567", NULL, "+972501234567", NULL},
    {"+972 2-123-4567", NULL, "+97221234567", NULL},
    /* A country outside the table, in international form. */
    {"+55 11 98765 4321", NULL, "+5511987654321", NULL},
    {"+91 98765 43210", NULL, "+919876543210", NULL},
    {"+86 138 0013 8000", NULL, "+8613800138000", NULL},
    {"+351 912 345 678", "BR", "+351912345678", NULL},
    {"00 55 11 98765 4321", "BR", "+5511987654321", NULL},

    /* Refused. */
    {"", NULL, NULL, "empty"},
    {"   ", NULL, NULL, "empty"},
    {"tel:", NULL, NULL, "empty"},
    {"+", NULL, NULL, "no digits"},
    {"-- ()", NULL, NULL, "empty"},
    {"abc", NULL, NULL, "letters"},
    {"1-800-FLOWERS", "US", NULL, "letters"},
    {"call 067 111 22 33", NULL, NULL, "letters"},
    {"\xD1\x82\xD0\xB5\xD0\xBB. 067 111 22 33", NULL, NULL, "letters"},
    {"067 111 22 33 ext 5", NULL, NULL, "extension"},
    {"067 111 22 33 ext. 5", NULL, NULL, "extension"},
    {"+1 415 555 2671 x204", NULL, NULL, "extension"},
    {"067 111 22 33 \xD0\xB4\xD0\xBE\xD0\xB1. 12", NULL, NULL, "extension"},
    {"+14155552671#204", NULL, NULL, "extension"},
    {"+14155552671,,204", NULL, NULL, "extension"},
    {"tel:+380671112233;ext=12", NULL, NULL, "extension"},
    {"tel:0671112233;phone-context=+380", NULL, NULL, "parameters"},
    {"++380671112233", NULL, NULL, "'+' in the middle"},
    {"380+671112233", NULL, NULL, "'+' in the middle"},
    {"067*111", NULL, NULL, "'*' is not part"},
    {"+380 67 111 22 3", NULL, NULL, "too short for +380"},
    {"+380 67 111 22 334", NULL, NULL, "too long for +380"},
    {"067 111 22 3", NULL, NULL, "too short for UA"},
    {"067 111 22 334", NULL, NULL, "too long for UA"},
    {"+1234567890123456", NULL, NULL, "too long"},
    {"+3801234567890123456789", NULL, NULL, "too long"},
    {"+12", NULL, NULL, "too short for +1"},
    {"+55 1234", NULL, NULL, "too short"},
    {"+999 123 4567", NULL, NULL, "unknown country calling code"},
    {"+259 123 4567", NULL, NULL, "unknown country calling code"},
    {"+0 67 111 22 33", NULL, NULL, "starts with 0"},
    {"+1 055 555 2671", NULL, NULL, "area code"},
    {"055 555 2671", "US", NULL, "not a US number"},
    {"671112233", NULL, NULL, "not a UA number"},
    {"501234567", NULL, NULL, "not a UA number"},
    {"5511987654321", NULL, NULL, "not a UA number"},
    {"067 111 22 33", "BR", NULL, "national numbers of BR"},
    {"067 111 22 33", "UKR", NULL, "ISO 3166"},
    {"067 111 22 33", "", NULL, "ISO 3166"},
};

static void
test_table (void **state)
{
    size_t i, accepted = 0, refused = 0;
    (void)state;
    for (i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        const s_case_t *c = &s_cases[i];
        char out[RT_PHONE_E164_MAX + 1] = "junk";
        char why[200] = "";
        int rc = rt_phone_normalize (c->input, c->country, out, why, sizeof why);
        if (c->e164) {
            if (rc != 0 || strcmp (out, c->e164) != 0)
                fail_msg ("\"%s\" (%s): expected %s, got rc %d \"%s\" (%s)", c->input,
                          c->country ? c->country : "UA", c->e164, rc, out, why);
            accepted++;
        } else {
            if (rc != -1 || out[0] != '\0')
                fail_msg ("\"%s\" (%s): expected a refusal (%s), got rc %d \"%s\"", c->input,
                          c->country ? c->country : "UA", c->reason, rc, out);
            if (!strstr (why, c->reason))
                fail_msg ("\"%s\": reason \"%s\" does not say \"%s\"", c->input, why, c->reason);
            refused++;
        }
    }
    /* The issue asks for at least 40 real-world inputs, both kinds. */
    assert_true (accepted + refused >= 40);
    assert_true (accepted >= 20);
    assert_true (refused >= 20);
}

/* The four channels' numbers for one customer meet in one spelling. */
static void
test_one_customer_across_channels (void **state)
{
    static const char *const spellings[] = {
        "+380 50 123 45 67",      /* the PBX */
        "050 123 45 67",          /* typed into the web chat */
        "380501234567",           /* Telegram's contact share */
        "whatsapp:+380501234567", /* Twilio's WhatsApp From */
        "+38 (050) 123-45-67",    /* a shop's CRM export */
        "tel:+380-50-123-45-67",  /* a tel: link */
        "8 050 123 45 67",        /* written the old way */
        "0038\xC2\xA0"
        "050 1234567", /* copied from a web page */
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        char out[RT_PHONE_E164_MAX + 1];
        char why[200] = "";
        if (rt_phone_normalize (spellings[i], "UA", out, why, sizeof why) != 0)
            fail_msg ("\"%s\" refused: %s", spellings[i], why);
        assert_string_equal (out, "+380501234567");
    }
}

/* A reason buffer is optional, and a short one is cut, never overrun. */
static void
test_reason_buffer (void **state)
{
    char out[RT_PHONE_E164_MAX + 1];
    char why[8];
    (void)state;
    assert_int_equal (rt_phone_normalize ("abc", NULL, out, NULL, 0), -1);
    assert_string_equal (out, "");
    assert_int_equal (rt_phone_normalize (NULL, NULL, out, NULL, 0), -1);
    memset (why, 'x', sizeof why);
    assert_int_equal (rt_phone_normalize ("+999 1", NULL, out, why, sizeof why), -1);
    assert_int_equal (strlen (why), sizeof why - 1);
    assert_int_equal (rt_phone_normalize ("+380671112233", NULL, out, NULL, 0), 0);
    assert_string_equal (out, "+380671112233");
}

/* The output always fits RT_PHONE_E164_MAX, whatever comes in. */
static void
test_longest_fits (void **state)
{
    char out[RT_PHONE_E164_MAX + 1];
    char why[200];
    (void)state;
    assert_int_equal (rt_phone_normalize ("+55 123456789012 3", NULL, out, why, sizeof why), 0);
    assert_string_equal (out, "+551234567890123");
    assert_int_equal (strlen (out), RT_PHONE_E164_MAX);
    assert_int_equal (rt_phone_normalize ("+49 1234567890123", NULL, out, why, sizeof why), 0);
    assert_string_equal (out, "+491234567890123");
    assert_int_equal (rt_phone_normalize ("+49 12345678901234", NULL, out, why, sizeof why), -1);
    assert_non_null (strstr (why, "too long"));
}

/* Arbitrary bytes: never a crash, never an output outside E.164. */
static void
test_garbage (void **state)
{
    char in[40], out[RT_PHONE_E164_MAX + 1], why[200];
    unsigned seed = 12345;
    int i, j;
    static const char alphabet[] = "0123456789+ -().x#;:\xC2\xA0\xE2\x80\x93telwhatsp";
    (void)state;
    for (i = 0; i < 20000; i++) {
        int len = (int)(rand_r (&seed) % (sizeof in - 1));
        for (j = 0; j < len; j++)
            in[j] = alphabet[rand_r (&seed) % (sizeof alphabet - 1)];
        in[len] = '\0';
        if (rt_phone_normalize (in, (i & 1) ? "US" : NULL, out, why, sizeof why) == 0) {
            size_t n = strlen (out), k;
            assert_true (out[0] == '+' && n >= 8 && n <= RT_PHONE_E164_MAX);
            for (k = 1; k < n; k++)
                assert_true (out[k] >= '0' && out[k] <= '9');
        } else {
            assert_string_equal (out, "");
            assert_true (why[0] != '\0');
        }
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_table),         cmocka_unit_test (test_one_customer_across_channels),
        cmocka_unit_test (test_reason_buffer), cmocka_unit_test (test_longest_fits),
        cmocka_unit_test (test_garbage),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
