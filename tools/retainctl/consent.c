/*
 * retainctl consent: a customer's consent to messages, as an operator
 * changes and reads it.
 *
 *   consent set --customer C (--grant | --withdraw) [--channel CH]
 *               [--category transactional|marketing] [--by NAME] [--reason TEXT]
 *   consent show --customer C [--json]
 *
 * set writes no table of notifyd's: it says what changed on the bus, as
 * the unsubscribe link does, with one ConsentChanged per category (stream
 * "customer", keyed by the customer, producer "retainctl", source
 * "operator:<by>", at now) put in the outbox in one transaction. notifyd
 * records it from there (notify.consent_set, with its history), and every
 * other daemon that reads the stream learns it too; it is durable once
 * set says so, busd running or not. Why two events rather than one with
 * no category: the message's contract names the two categories only, and
 * a consumer that reads an empty one as neither must not be told both.
 * An absorbed customer's consent is the survivor's (notifyd resolves
 * merges the same way): the events name the survivor, and set says so.
 * Nothing is written when an input is refused (exit 2): not a UUID, no
 * such customer, an unknown channel or category, neither or both of
 * --grant and --withdraw.
 *
 * show reads what notifyd holds: the newest word per channel ("any": every
 * channel) and category, the customer's and the ones kept by the
 * addresses of their channel identities (a STOP keyword read before crm
 * knew the sender), and the last S_HISTORY changes, newest first, each
 * with its source and reason. A change set has put in the outbox shows
 * once notifyd has read it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "retain/v1/customer.pb-c.h"
#include "retainctl.h"
#include "rt_bus.h"
#include "rt_channel.h"
#include "rt_clock.h"
#include "rt_config.h"
#include "rt_db.h"
#include "rt_outbox.h"
#include "rt_uuid.h"

#define S_REASON_MAX 500 /* --reason's bytes at most */
#define S_HISTORY    20  /* the changes show lists */
#define S_PRODUCER   "retainctl"

#define S_CUSTOMER                                                                                 \
    {                                                                                              \
        "customer", NULL, "", "the customer's id in crm.customers, a UUID (required)"              \
    }

static const rt_config_setting_t s_set_settings[] = {
    RETAINCTL_PG_DSN,
    S_CUSTOMER,
    {"grant", NULL, "false", "the customer agrees to the messages"},
    {"withdraw", NULL, "false", "the customer wants no more of them"},
    {"channel", NULL, "", "only on this channel (telegram, sms, email, ...); default: every one"},
    {"category", NULL, "", "only this category, transactional or marketing; default: both"},
    {"by", NULL, "", "who changed it, kept in the source operator:<by>; default: $USER"},
    {"reason", NULL, "", "why, kept with the change (one line)"},
    RETAINCTL_END};
static const rt_config_setting_t s_show_settings[] = {
    RETAINCTL_PG_DSN,
    S_CUSTOMER,
    {"json", NULL, "false", "print JSON instead of text"},
    RETAINCTL_END};

/* The survivor of the customer named (NULL: no such customer) and their
 * name. */
static const char *s_sql_customer =
    "SELECT r.id::text, c.name FROM (SELECT crm.root($1::uuid) AS id) r"
    " JOIN crm.customers c ON c.id = r.id";

/* The addresses of the customer's channel identities, by which a STOP
 * keyword may be kept (notify.address_consent). */
#define S_ADDRESSES                                                                                \
    "(SELECT DISTINCT i.channel, i.external_user_id FROM crm.identities i"                         \
    "  WHERE i.customer_id = $1::uuid)"

#define S_AT(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* Columns of both: channel, category, granted, source, reason, at,
 * address ('' for the customer's own), and recorded_at in the history. */
static const char *s_sql_current = "SELECT channel, category, granted, source, reason, " S_AT (
    "at") ", address FROM ("
          "  SELECT channel, category, granted, source, reason, at, '' AS address FROM "
          "notify.consent"
          "   WHERE customer_id = $1::uuid"
          "  UNION ALL SELECT a.channel, a.category, a.granted, a.source, '', a.at, a.address"
          "   FROM notify.address_consent a WHERE (a.channel, a.address) IN " S_ADDRESSES ") w"
          " ORDER BY address, channel <> 'any', channel, category DESC";
static const char *s_sql_history =
    "SELECT h.channel, h.category, h.granted, h.source, h.reason, " S_AT (
        "h.at") ","
                " COALESCE(h.address, ''), " S_AT (
                    "h.recorded_at") " FROM notify.consent_history h"
                                     " WHERE h.customer_id = $1::uuid"
                                     "    OR (h.address IS NOT NULL AND (h.channel, h.address) "
                                     "IN " S_ADDRESSES ")"
                                     " ORDER BY h.at DESC, h.seq DESC LIMIT $2::integer";

enum { C_CHANNEL, C_CATEGORY, C_GRANTED, C_SOURCE, C_REASON, C_AT, C_ADDRESS, C_RECORDED };

/* --customer's survivor into root (and its name into name when not
 * NULL), connected first. *rc 2 when there is no such customer, 1 when
 * PostgreSQL failed; "merged into" said on stdout when the survivor is
 * another. */
static bool
s_customer (retainctl_cmd_t *cmd, const char *customer, char root[RT_UUID_STR_LEN + 1], char *name,
            size_t namelen, bool say_merged, int *rc)
{
    *rc = 1;
    if (!retainctl_cmd_connect (cmd, RETAINCTL_DB_MIGRATE_HINT))
        return false;
    if (!retainctl_cmd_exec (cmd, s_sql_customer, 1, &customer))
        return false;
    if (PQntuples (cmd->res) == 0) {
        fprintf (stderr, "%s: no customer %s in crm.customers\n", cmd->program, customer);
        *rc = 2;
        return false;
    }
    snprintf (root, RT_UUID_STR_LEN + 1, "%s", PQgetvalue (cmd->res, 0, 0));
    if (name)
        snprintf (name, namelen, "%s", PQgetvalue (cmd->res, 0, 1));
    if (say_merged && strcmp (root, customer) != 0)
        printf ("customer %s was merged into %s: the consent is %s's\n", customer, root, root);
    return true;
}

/* --- set --- */

/* One ConsentChanged into the outbox, inside the open transaction; its
 * envelope's id into id. false with the reason printed. */
static bool
s_append (const retainctl_cmd_t *cmd, Retain__V1__ConsentChanged *m, char id[RT_UUID_STR_LEN + 1])
{
    Retain__V1__Envelope *env =
        rt_envelope_new ("ConsentChanged", m->customer_id, &m->base, S_PRODUCER);
    bool ok;
    if (!env) {
        fprintf (stderr, "%s: out of memory\n", cmd->program);
        return false;
    }
    ok = rt_outbox_append (cmd->db, env) == 0;
    if (ok)
        snprintf (id, RT_UUID_STR_LEN + 1, "%s", env->id);
    else
        fprintf (stderr, "%s: cannot write to the outbox: %s\n", cmd->program,
                 rt_db_error (cmd->db));
    rt_envelope_free (env);
    return ok;
}

static int
s_set (int argc, char **argv)
{
    static const char *const both[] = {"transactional", "marketing"};
    retainctl_cmd_t cmd;
    const char *customer, *channel, *category, *reason;
    const char *categories[2];
    const rt_channel_t *ch = NULL;
    char root[RT_UUID_STR_LEN + 1], by[RETAINCTL_BY_MAX + 1], source[RETAINCTL_BY_MAX + 16];
    char ids[2][RT_UUID_STR_LEN + 1];
    bool grant, withdraw;
    size_t n = 0;
    int64_t now;
    int rc;

    if (!retainctl_cmd_begin (&cmd, "consent",
                              "Grant or withdraw a customer's consent, as an operator: a "
                              "ConsentChanged per category through the outbox, which notifyd "
                              "records.",
                              s_set_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!retainctl_cmd_uuid (&cmd, "customer", "a customer id", &customer) ||
        !retainctl_cmd_bool (&cmd, "grant", &grant) ||
        !retainctl_cmd_bool (&cmd, "withdraw", &withdraw))
        goto cleanup;
    if (grant == withdraw) {
        fprintf (stderr, "%s: give either --grant or --withdraw\n", cmd.program);
        goto cleanup;
    }
    channel = rt_config_get (cmd.config, "channel");
    if (*channel && strcmp (channel, "any") != 0) {
        ch = rt_channel_by_name (channel);
        if (!ch) {
            char all[256];
            rt_channel_list (all, sizeof all);
            fprintf (stderr, "%s: --channel \"%s\" must be one of %s (none: every channel)\n",
                     cmd.program, channel, all);
            goto cleanup;
        }
    }
    category = rt_config_get (cmd.config, "category");
    if (!*category) {
        categories[n++] = both[0];
        categories[n++] = both[1];
    } else if (strcmp (category, both[0]) == 0 || strcmp (category, both[1]) == 0) {
        categories[n++] = category;
    } else {
        fprintf (stderr, "%s: --category \"%s\" must be transactional or marketing (none: both)\n",
                 cmd.program, category);
        goto cleanup;
    }
    reason = rt_config_get (cmd.config, "reason");
    if (!retainctl_cmd_by (&cmd, by) || !retainctl_cmd_line (&cmd, "reason", S_REASON_MAX))
        goto cleanup;
    snprintf (source, sizeof source, "operator:%s", by);

    if (!s_customer (&cmd, customer, root, NULL, 0, true, &rc))
        goto cleanup;
    rc = 1;
    if (!retainctl_cmd_tx_begin (&cmd))
        goto cleanup;
    now = rt_clock_now_ms ();
    for (size_t i = 0; i < n; i++) {
        Retain__V1__ConsentChanged m = RETAIN__V1__CONSENT_CHANGED__INIT;
        m.customer_id = root;
        m.channel = ch ? ch->value : RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED;
        m.category = (char *)categories[i];
        m.granted = grant;
        m.source = source;
        m.at = now;
        m.reason = (char *)reason;
        if (!s_append (&cmd, &m, ids[i]))
            goto cleanup;
    }
    if (!retainctl_cmd_tx_commit (&cmd))
        goto cleanup;
    for (size_t i = 0; i < n; i++)
        printf ("consent %s: customer %s, %s, %s, source %s (event %s; notifyd records it)\n",
                grant ? "granted" : "withdrawn", root, ch ? ch->name : "every channel",
                categories[i], source, ids[i]);
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}

/* --- show --- */

static json_t *
s_row_json (const PGresult *r, int i)
{
    const char *address = PQgetvalue (r, i, C_ADDRESS);
    json_t *o = json_pack (
        "{ss ss sb ss ss ss so}", "channel", PQgetvalue (r, i, C_CHANNEL), "category",
        PQgetvalue (r, i, C_CATEGORY), "granted", strcmp (PQgetvalue (r, i, C_GRANTED), "t") == 0,
        "source", PQgetvalue (r, i, C_SOURCE), "reason", PQgetvalue (r, i, C_REASON), "at",
        PQgetvalue (r, i, C_AT), "address", *address ? json_string (address) : json_null ());
    if (o && PQnfields (r) > C_RECORDED &&
        json_object_set_new (o, "recorded_at", json_string (PQgetvalue (r, i, C_RECORDED))) != 0) {
        json_decref (o);
        return NULL;
    }
    return o;
}

/* The rows of r as a JSON array (owned; NULL when out of memory). */
static json_t *
s_rows_json (const PGresult *r)
{
    json_t *all = json_array ();
    for (int i = 0; all && i < PQntuples (r); i++) {
        if (json_array_append_new (all, s_row_json (r, i)) != 0) {
            json_decref (all);
            return NULL;
        }
    }
    return all;
}

static void
s_print_rows (const PGresult *r)
{
    printf ("%-20s  %-10s  %-13s  %-9s  %-24s  %-16s  %s\n", "AT", "CHANNEL", "CATEGORY", "CONSENT",
            "SOURCE", "ADDRESS", "REASON");
    for (int i = 0; i < PQntuples (r); i++)
        printf ("%-20s  %-10s  %-13s  %-9s  %-24s  %-16s  %s\n", PQgetvalue (r, i, C_AT),
                PQgetvalue (r, i, C_CHANNEL), PQgetvalue (r, i, C_CATEGORY),
                strcmp (PQgetvalue (r, i, C_GRANTED), "t") == 0 ? "granted" : "withdrawn",
                PQgetvalue (r, i, C_SOURCE),
                *PQgetvalue (r, i, C_ADDRESS) ? PQgetvalue (r, i, C_ADDRESS) : "-",
                PQgetvalue (r, i, C_REASON));
}

static int
s_show (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    const char *customer, *params[2];
    char root[RT_UUID_STR_LEN + 1], name[256], limit[16];
    PGresult *current = NULL, *history = NULL;
    bool json;
    int rc;

    if (!retainctl_cmd_begin (&cmd, "consent",
                              "Show a customer's consent as notifyd holds it, and its last "
                              "changes with their sources, newest first.",
                              s_show_settings, argc, argv, &rc))
        goto cleanup;
    rc = 2;
    if (!retainctl_cmd_uuid (&cmd, "customer", "a customer id", &customer) ||
        !retainctl_cmd_bool (&cmd, "json", &json))
        goto cleanup;
    if (!s_customer (&cmd, customer, root, name, sizeof name, !json, &rc))
        goto cleanup;
    rc = 1;
    snprintf (limit, sizeof limit, "%d", S_HISTORY);
    params[0] = root;
    params[1] = limit;
    current = retainctl_cmd_query (&cmd, s_sql_current, 1, params);
    history = current ? retainctl_cmd_query (&cmd, s_sql_history, 2, params) : NULL;
    if (!history)
        goto cleanup;
    if (json) {
        json_t *doc = json_pack ("{ss ss so so}", "customer_id", root, "name", name, "consent",
                                 s_rows_json (current), "history", s_rows_json (history));
        if (doc && strcmp (root, customer) != 0)
            json_object_set_new (doc, "merged_from", json_string (customer));
        if (retainctl_print_json (doc, JSON_COMPACT) != 0)
            goto cleanup;
    } else {
        printf ("customer %s%s%s%s\n\nnow (the newest word of each):\n", root, *name ? " (" : "",
                name, *name ? ")" : "");
        s_print_rows (current);
        /* What notifyd does where nobody said anything (README,
         * "Consent"). */
        printf ("(where there is no word: transactional goes; marketing only when notifyd runs "
                "--marketing-consent=opt-out)\n");
        printf ("\nthe last %d changes, newest first:\n", S_HISTORY);
        s_print_rows (history);
    }
    rc = 0;
cleanup:
    PQclear (history);
    PQclear (current);
    retainctl_cmd_end (&cmd);
    return rc;
}

const retainctl_command_t retainctl_consent_commands[] = {
    {.name = "set",
     .summary = "grant or withdraw: --customer C (--grant | --withdraw) [--channel] [--category]",
     .run = s_set},
    {.name = "show",
     .summary = "a customer's consent and its last changes: --customer C",
     .run = s_show},
    {.name = NULL}};
