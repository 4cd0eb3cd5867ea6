/*
 * test_channel: common/channel/rt_channel, the one table of channels and
 * inbox kinds, and what must agree with it.
 *
 * What a user relies on: every channel the bus can carry has a row; the
 * database accepts exactly the channels and (channel, provider) pairs the
 * table has (a channel the table has and the CHECK lacks is an inbox
 * nobody can add; the other way round, an inbox ingestd skips); an inbox
 * named without a provider gets the table's default in SQL as in
 * retainctl; the webhook addresses shops have configured at their
 * providers stay where they are; and every route ingestd serves has a
 * handler behind it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "rt_channel.h"

#define S_MAX_NAMES 64

/* What a migration says, as read from its text. */
typedef struct {
    char file[512];                 /* the latest migration that says it */
    char names[S_MAX_NAMES][2][32]; /* the quoted names (one, or a pair, per entry) */
    size_t count;                   /* how many entries */
} s_sql_list_t;

/* The file's text with comments dropped and every run of white space made
 * one space, so the markers below match however the SQL is laid out.
 * Owned. */
static char *
s_read_sql (const char *path)
{
    FILE *f = fopen (path, "rb");
    char *text, *out;
    long n;
    size_t i, o = 0;
    bool space = false;
    if (!f)
        fail_msg ("cannot read %s", path);
    fseek (f, 0, SEEK_END);
    n = ftell (f);
    fseek (f, 0, SEEK_SET);
    text = calloc ((size_t)n + 1, 1);
    out = calloc ((size_t)n + 1, 1);
    assert_non_null (text);
    assert_non_null (out);
    assert_int_equal (fread (text, 1, (size_t)n, f), (size_t)n);
    fclose (f);
    for (i = 0; i < (size_t)n; i++) {
        if (text[i] == '-' && text[i + 1] == '-') {
            while (i < (size_t)n && text[i] != '\n')
                i++;
        }
        if (i < (size_t)n && isspace ((unsigned char)text[i])) {
            space = true;
            continue;
        }
        if (space && o > 0)
            out[o++] = ' ';
        space = false;
        if (i < (size_t)n)
            out[o++] = text[i];
    }
    free (text);
    return out;
}

/* Reads one quoted name at *p into out; false when *p is not a quote. */
static bool
s_quoted (const char **p, char out[32])
{
    const char *q = *p, *end;
    while (*q == ' ')
        q++;
    if (*q != '\'')
        return false;
    end = strchr (q + 1, '\'');
    if (!end || end - q - 1 >= 32)
        return false;
    snprintf (out, 32, "%.*s", (int)(end - q - 1), q + 1);
    *p = end + 1;
    return true;
}

/* Skips spaces and one `c`; false when the next character is not c. */
static bool
s_expect (const char **p, char c)
{
    while (**p == ' ')
        (*p)++;
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

/* Parses the IN list after `marker` in the latest of ingest's migrations
 * that has it: quoted names ("'a', 'b'") when pairs is false, pairs
 * ("('a', 'b'), ...") when true, up to the list's closing parenthesis. */
static void
s_sql_list (const char *marker, bool pairs, s_sql_list_t *list)
{
    glob_t g;
    char pattern[512];
    char *latest = NULL;
    const char *p;
    size_t i;
    memset (list, 0, sizeof *list);
    snprintf (pattern, sizeof pattern, "%s/services/ingest/sql/[0-9][0-9][0-9]_*.sql",
              RT_TEST_SOURCE_DIR);
    assert_int_equal (glob (pattern, 0, NULL, &g), 0);
    /* glob sorts, and migrations apply in the order of their numbers. */
    for (i = 0; i < g.gl_pathc; i++) {
        char *text = s_read_sql (g.gl_pathv[i]);
        if (strstr (text, marker)) {
            free (latest);
            latest = text;
            snprintf (list->file, sizeof list->file, "%s", g.gl_pathv[i]);
        } else
            free (text);
    }
    globfree (&g);
    if (!latest)
        fail_msg ("no migration of services/ingest/sql has \"%s\"", marker);
    p = strstr (latest, marker) + strlen (marker);
    while (!s_expect (&p, ')')) {
        if (list->count == S_MAX_NAMES)
            fail_msg ("%s: more than %d entries after \"%s\"", list->file, S_MAX_NAMES, marker);
        if (pairs) {
            if (!s_expect (&p, '(') || !s_quoted (&p, list->names[list->count][0]) ||
                !s_expect (&p, ',') || !s_quoted (&p, list->names[list->count][1]) ||
                !s_expect (&p, ')'))
                fail_msg ("%s: cannot read the pairs after \"%s\" at \"%.40s\"", list->file, marker,
                          p);
        } else if (!s_quoted (&p, list->names[list->count][0]))
            fail_msg ("%s: cannot read the names after \"%s\" at \"%.40s\"", list->file, marker, p);
        list->count++;
        s_expect (&p, ',');
    }
    free (latest);
}

/* The default provider of each channel and the config keys, as SQL sees
 * them: the arms of the latest ingest.default_provider. */
static char *
s_default_provider_sql (char *file, size_t filelen)
{
    glob_t g;
    char pattern[512];
    char *latest = NULL;
    size_t i;
    snprintf (pattern, sizeof pattern, "%s/services/ingest/sql/[0-9][0-9][0-9]_*.sql",
              RT_TEST_SOURCE_DIR);
    assert_int_equal (glob (pattern, 0, NULL, &g), 0);
    for (i = 0; i < g.gl_pathc; i++) {
        char *text = s_read_sql (g.gl_pathv[i]);
        char *at = strstr (text, "FUNCTION ingest.default_provider(");
        if (at) {
            char *end = strstr (at, "$$;");
            if (end)
                *end = '\0';
            free (latest);
            latest = strdup (at);
            snprintf (file, filelen, "%s", g.gl_pathv[i]);
        }
        free (text);
    }
    globfree (&g);
    if (!latest)
        fail_msg ("no migration of services/ingest/sql defines ingest.default_provider");
    return latest;
}

static void
test_every_bus_channel_has_a_row (void **state)
{
    (void)state;
    const ProtobufCEnumDescriptor *d = &retain__v1__channel__descriptor;
    size_t i, rows = 0;
    for (i = 0; i < d->n_values; i++) {
        const ProtobufCEnumValue *v = &d->values[i];
        const rt_channel_t *channel;
        char lower[64];
        size_t k;
        if (v->value == RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED)
            continue;
        channel = rt_channel_by_value ((Retain__V1__Channel)v->value);
        if (!channel)
            fail_msg ("Channel %s (%d) of common.proto has no row in rt_channel.c", v->name,
                      v->value);
        /* The stored name is the proto's, lower-cased: one spelling. */
        for (k = 0; v->name[k] && k + 1 < sizeof lower; k++)
            lower[k] = (char)tolower ((unsigned char)v->name[k]);
        lower[k] = '\0';
        assert_string_equal (channel->name, lower);
        assert_non_null (channel->title);
        assert_true (channel->title[0] != '\0');
        rows++;
    }
    /* And no row for a value the bus cannot carry. */
    assert_int_equal (rows, rt_channel_count ());
    for (i = 0; i < rt_channel_count (); i++)
        assert_non_null (protobuf_c_enum_descriptor_get_value (d, rt_channel_at (i)->value));
    assert_null (rt_channel_by_value (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED));
}

static void
test_sql_channel_check_is_the_table (void **state)
{
    (void)state;
    s_sql_list_t list;
    size_t i, k;
    s_sql_list ("CHECK (channel IN (", false, &list);
    for (i = 0; i < list.count; i++) {
        if (!rt_channel_by_name (list.names[i][0]))
            fail_msg ("%s: the channel CHECK allows \"%s\", which rt_channel.c has no row for",
                      list.file, list.names[i][0]);
        for (k = 0; k < i; k++) {
            if (strcmp (list.names[k][0], list.names[i][0]) == 0)
                fail_msg ("%s: \"%s\" twice in the channel CHECK", list.file, list.names[i][0]);
        }
    }
    for (i = 0; i < rt_channel_count (); i++) {
        bool found = false;
        for (k = 0; k < list.count && !found; k++)
            found = strcmp (list.names[k][0], rt_channel_at (i)->name) == 0;
        if (!found)
            fail_msg ("%s: the channel CHECK lacks \"%s\" of rt_channel.c: add a migration that "
                      "replaces it",
                      list.file, rt_channel_at (i)->name);
    }
    assert_int_equal (list.count, rt_channel_count ());
}

static void
test_sql_kind_check_is_the_table (void **state)
{
    (void)state;
    s_sql_list_t list;
    size_t i, k;
    s_sql_list ("CHECK ((channel, provider) IN (", true, &list);
    for (i = 0; i < list.count; i++) {
        const rt_channel_t *channel = rt_channel_by_name (list.names[i][0]);
        if (!channel || !rt_channel_kind_find (channel->value, list.names[i][1]))
            fail_msg ("%s: the kind CHECK allows (%s, %s), which rt_channel.c has no row for",
                      list.file, list.names[i][0], list.names[i][1]);
    }
    for (i = 0; i < rt_channel_kind_count (); i++) {
        const rt_channel_kind_t *kind = rt_channel_kind_at (i);
        bool found = false;
        for (k = 0; k < list.count && !found; k++)
            found = strcmp (list.names[k][0], rt_channel_name (kind->channel)) == 0 &&
                    strcmp (list.names[k][1], kind->provider) == 0;
        if (!found)
            fail_msg ("%s: the kind CHECK lacks (%s, %s) of rt_channel.c", list.file,
                      rt_channel_name (kind->channel), kind->provider);
    }
    assert_int_equal (list.count, rt_channel_kind_count ());
}

static void
test_sql_default_provider_is_the_table (void **state)
{
    (void)state;
    char file[512], arm[160];
    char *sql = s_default_provider_sql (file, sizeof file);
    size_t i;
    for (i = 0; i < rt_channel_count (); i++) {
        const rt_channel_t *channel = rt_channel_at (i);
        const rt_channel_kind_t *kind = rt_channel_kind_default (channel->value);
        assert_non_null (kind);
        snprintf (arm, sizeof arm, "WHEN '%s' THEN '%s'", channel->name, kind->provider);
        if (!strstr (sql, arm))
            fail_msg ("%s: ingest.default_provider lacks \"%s\" (rt_channel.c's default)", file,
                      arm);
    }
    for (i = 0; i < rt_channel_kind_count (); i++) {
        const rt_channel_kind_t *kind = rt_channel_kind_at (i);
        if (!kind->config_key)
            continue;
        snprintf (arm, sizeof arm, "WHEN channel = '%s' AND config ? '%s' THEN '%s'",
                  rt_channel_name (kind->channel), kind->config_key, kind->provider);
        if (!strstr (sql, arm))
            fail_msg ("%s: ingest.default_provider lacks \"%s\"", file, arm);
    }
    free (sql);
}

/* The addresses shops configured at their providers: moving one loses
 * their messages, so the table may only add to these. */
static void
test_webhook_addresses_stay (void **state)
{
    (void)state;
    static const struct {
        Retain__V1__Channel channel;
        const char *provider;
        const char *url; /* for inbox "x" on base "https://h", NULL: polled */
    } want[] = {
        {RETAIN__V1__CHANNEL__TELEGRAM, "telegram", "https://h/hooks/telegram/x"},
        {RETAIN__V1__CHANNEL__VIBER, "viber", "https://h/hooks/viber/x"},
        {RETAIN__V1__CHANNEL__MESSENGER, "meta", "https://h/hooks/messenger/x"},
        {RETAIN__V1__CHANNEL__INSTAGRAM, "meta", "https://h/hooks/instagram/x"},
        {RETAIN__V1__CHANNEL__WHATSAPP, "meta", "https://h/hooks/whatsapp/x"},
        {RETAIN__V1__CHANNEL__WHATSAPP, "twilio", "https://h/hooks/twilio/x"},
        {RETAIN__V1__CHANNEL__SMS, "twilio", "https://h/hooks/twilio/x"},
        {RETAIN__V1__CHANNEL__EMAIL, "mailgun", "https://h/hooks/mailgun/x"},
        {RETAIN__V1__CHANNEL__EMAIL, "imap", NULL},
        {RETAIN__V1__CHANNEL__WEBCHAT, "webchat", "https://h/chat/x/messages"},
        {RETAIN__V1__CHANNEL__PHONE, "pbx", "https://h/hooks/phone/x"},
    };
    char url[128];
    size_t i;
    for (i = 0; i < sizeof want / sizeof *want; i++) {
        const rt_channel_kind_t *kind = rt_channel_kind_find (want[i].channel, want[i].provider);
        if (!kind)
            fail_msg ("no kind (%s, %s)", rt_channel_name (want[i].channel), want[i].provider);
        if (!want[i].url) {
            assert_null (kind->route);
            assert_int_equal (rt_channel_kind_url (kind, "https://h", "x", url, sizeof url), -1);
            assert_string_equal (url, "");
            continue;
        }
        assert_int_equal (rt_channel_kind_url (kind, "https://h", "x", url, sizeof url), 0);
        assert_string_equal (url, want[i].url);
    }
}

static void
test_lookups (void **state)
{
    (void)state;
    const rt_channel_kind_t *kind;
    char text[256];

    assert_int_equal (rt_channel_by_name ("whatsapp")->value, RETAIN__V1__CHANNEL__WHATSAPP);
    assert_string_equal (rt_channel_by_name ("webchat")->title, "Web chat");
    assert_null (rt_channel_by_name ("WhatsApp")); /* stored names are exact */
    assert_null (rt_channel_by_name ("fax"));
    assert_null (rt_channel_by_name (""));
    assert_null (rt_channel_by_name (NULL));
    assert_string_equal (rt_channel_name (RETAIN__V1__CHANNEL__SMS), "sms");
    assert_string_equal (rt_channel_name ((Retain__V1__Channel)99), "unknown");
    assert_string_equal (ingest_channel_name (RETAIN__V1__CHANNEL__EMAIL), "email");
    assert_int_equal (rt_channel_index ((Retain__V1__Channel)99), -1);
    assert_int_equal (rt_channel_index (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED), -1);
    assert_null (rt_channel_at (rt_channel_count ()));

    /* WhatsApp comes through Meta unless told otherwise; Twilio serves it
     * at its own route, shared with SMS. */
    kind = rt_channel_kind_default (RETAIN__V1__CHANNEL__WHATSAPP);
    assert_string_equal (kind->provider, "meta");
    assert_string_equal (kind->route, "/hooks/whatsapp/{inbox}");
    kind = rt_channel_kind_find (RETAIN__V1__CHANNEL__WHATSAPP, "twilio");
    assert_non_null (kind);
    assert_false (kind->is_default);
    assert_ptr_equal (
        rt_channel_kind_by_route ("/hooks/twilio/{inbox}", RETAIN__V1__CHANNEL__WHATSAPP), kind);
    assert_string_equal (
        rt_channel_kind_by_route ("/hooks/twilio/{inbox}", RETAIN__V1__CHANNEL__SMS)->provider,
        "twilio");
    assert_null (rt_channel_kind_by_route ("/hooks/whatsapp/{inbox}", RETAIN__V1__CHANNEL__SMS));
    assert_null (rt_channel_kind_by_route ("/hooks/twilio/{inbox}", RETAIN__V1__CHANNEL__TELEGRAM));
    assert_null (rt_channel_kind_by_route (NULL, RETAIN__V1__CHANNEL__SMS));
    assert_null (rt_channel_kind_find (RETAIN__V1__CHANNEL__TELEGRAM, "twilio"));
    assert_null (rt_channel_kind_find (RETAIN__V1__CHANNEL__TELEGRAM, NULL));
    assert_null (rt_channel_kind_default ((Retain__V1__Channel)99));
    kind = rt_channel_kind_find (RETAIN__V1__CHANNEL__EMAIL, "imap");
    assert_string_equal (kind->config_key, "imap_url");
    assert_string_equal (rt_channel_kind_default (RETAIN__V1__CHANNEL__EMAIL)->provider, "mailgun");

    assert_true (rt_channel_provider_known ("pbx"));
    assert_false (rt_channel_provider_known ("phone")); /* the channel, not a provider */
    assert_false (rt_channel_provider_known (NULL));

    /* The lists people read in --help and errors. */
    assert_int_equal (rt_channel_list (text, sizeof text), 0);
    assert_string_equal (text, "telegram, viber, messenger, instagram, whatsapp, sms, email, "
                               "webchat or phone");
    assert_int_equal (rt_channel_providers (RETAIN__V1__CHANNEL__WHATSAPP, text, sizeof text), 0);
    assert_string_equal (text, "meta or twilio");
    assert_int_equal (rt_channel_providers (RETAIN__V1__CHANNEL__TELEGRAM, text, sizeof text), 0);
    assert_string_equal (text, "telegram");
    assert_int_equal (
        rt_channel_providers (RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED, text, sizeof text), 0);
    assert_string_equal (text,
                         "telegram, viber, meta, twilio, mailgun, imap, webchat, pbx or binotel");
    assert_int_equal (rt_channel_providers (RETAIN__V1__CHANNEL__PHONE, text, sizeof text), 0);
    assert_string_equal (text, "pbx or binotel");
    /* Too small: -1, never an overrun. */
    assert_int_equal (rt_channel_list (text, 10), -1);
    assert_true (strlen (text) < 10);
    kind = rt_channel_kind_default (RETAIN__V1__CHANNEL__TELEGRAM);
    assert_int_equal (rt_channel_kind_url (kind, "https://hooks.example.com", "shop-bot", text, 20),
                      -1);
}

/* What the rest of retain assumes of the table. */
static void
test_table_holds_together (void **state)
{
    (void)state;
    size_t i, k;
    for (i = 0; i < rt_channel_count (); i++) {
        const rt_channel_t *channel = rt_channel_at (i);
        size_t defaults = 0;
        /* Metrics arrays are indexed by position. */
        assert_int_equal (rt_channel_index (channel->value), (int)i);
        assert_ptr_equal (rt_channel_by_name (channel->name), channel);
        for (k = 0; k < rt_channel_kind_count (); k++) {
            const rt_channel_kind_t *kind = rt_channel_kind_at (k);
            defaults += kind->channel == channel->value && kind->is_default;
        }
        if (defaults != 1)
            fail_msg ("channel %s has %zu default providers, not one", channel->name, defaults);
    }
    for (i = 0; i < rt_channel_kind_count (); i++) {
        const rt_channel_kind_t *kind = rt_channel_kind_at (i);
        assert_non_null (rt_channel_by_value (kind->channel));
        assert_ptr_equal (rt_channel_kind_find (kind->channel, kind->provider), kind);
        if (kind->route) {
            const char *at = strstr (kind->route, "{inbox}");
            assert_true (kind->route[0] == '/');
            if (!at || strstr (at + 1, "{inbox}"))
                fail_msg ("route %s must hold {inbox} once", kind->route);
            assert_ptr_equal (rt_channel_kind_by_route (kind->route, kind->channel), kind);
        }
        /* The route picks the handler: one provider per route. */
        for (k = 0; k < rt_channel_kind_count (); k++) {
            const rt_channel_kind_t *other = rt_channel_kind_at (k);
            if (kind->route && other->route && strcmp (kind->route, other->route) == 0 &&
                strcmp (kind->provider, other->provider) != 0)
                fail_msg ("route %s is served by %s and %s", kind->route, kind->provider,
                          other->provider);
        }
    }
}

static void
test_every_route_has_a_handler (void **state)
{
    (void)state;
    char err[256] = "";
    size_t i;
    if (ingest_providers_check (err, sizeof err) != 0)
        fail_msg ("%s", err);
    for (i = 0; i < rt_channel_kind_count (); i++) {
        const rt_channel_kind_t *kind = rt_channel_kind_at (i);
        const ingest_provider_t *provider = ingest_provider (kind->provider);
        if (!kind->route)
            continue;
        if (!provider || !provider->handler)
            fail_msg ("provider %s serves %s but ingest has no handler", kind->provider,
                      kind->route);
        assert_string_equal (provider->provider, kind->provider);
    }
    /* Only the web chat is called from browsers. */
    assert_true (ingest_provider ("webchat")->cors);
    assert_false (ingest_provider ("twilio")->cors);
    assert_null (ingest_provider ("imap")); /* a poller: no webhook to read */
    assert_null (ingest_provider ("nope"));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_every_bus_channel_has_a_row),
        cmocka_unit_test (test_sql_channel_check_is_the_table),
        cmocka_unit_test (test_sql_kind_check_is_the_table),
        cmocka_unit_test (test_sql_default_provider_is_the_table),
        cmocka_unit_test (test_webhook_addresses_stay),
        cmocka_unit_test (test_lookups),
        cmocka_unit_test (test_table_holds_together),
        cmocka_unit_test (test_every_route_has_a_handler),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
