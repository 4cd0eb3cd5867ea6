/*
 * sla: policies from their JSON, the policy a conversation falls under,
 * and the arithmetic of its clocks (see sla.h for the contract and the
 * rules in plain words).
 *
 * Business time is rt_tz's: rt_tz_business_add finds the instant by which
 * a given amount of open time has passed, rt_tz_business_between measures
 * the open time between two instants, and both follow the zone's DST
 * changes and the holidays. Nothing here knows what a week looks like.
 *
 * A pause is kept as "what was left": at the pause, the time from the
 * pause to the due time (open time for a business policy) is what is
 * left, and at the resume the due time becomes the resume plus that. It
 * is the same instant as the old due time moved later by the time the
 * pause covered, and it needs no record of past pauses: a timer's fields
 * are all the daemon stores. The warning moves the same way while it is
 * still to come; one that came before the pause stays where it was, as a
 * breach does.
 *
 * The parser refuses what it does not know: a policy is typed by people
 * (retainctl, the API), and a misspelt field quietly ignored would be an
 * SLA nobody measures.
 */
#include "sla.h"

#include "rt_channel.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MINUTE_MS 60000LL
/* The instants rt_tz takes (years 1 to 9999); wall-clock arithmetic keeps
 * to them too, so a stored due time is always one rt_tz can read. */
#define S_FIRST_MS (-62135596800000LL)
#define S_LAST_MS  253402300799999LL

static const char *const s_kind_names[SLA_KINDS] = {"first_response", "next_response",
                                                    "resolution"};
/* The policy's fields of each target, by sla_kind_t. */
static const char *const s_target_fields[SLA_KINDS] = {
    "first_response_minutes", "next_response_minutes", "resolution_minutes"};

static int s_fail (char *err, size_t errlen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_fail (char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err && errlen > 0) {
        va_start (ap, fmt);
        vsnprintf (err, errlen, fmt, ap);
        va_end (ap);
    }
    return -1;
}

const char *
sla_kind_name (sla_kind_t kind)
{
    return (int)kind >= 0 && kind < SLA_KINDS ? s_kind_names[kind] : "unknown";
}

const char *
sla_status_name (sla_status_t status)
{
    switch (status) {
    case SLA_OK:
        return "ok";
    case SLA_WARNING:
        return "warning";
    case SLA_BREACHED:
        return "breached";
    }
    return "unknown";
}

/* --- parsing helpers -------------------------------------------------- */

/* True when key is one of the NULL-terminated names. */
static bool
s_known (const char *key, const char *const *names)
{
    size_t i;
    for (i = 0; names[i]; i++) {
        if (strcmp (key, names[i]) == 0)
            return true;
    }
    return false;
}

/* Refuses any key of obj not in names; where says whose keys they are. */
static int
s_only (const json_t *obj, const char *const *names, const char *where, char *err, size_t errlen)
{
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)obj, key, value)
    {
        (void)value;
        if (!s_known (key, names))
            return s_fail (err, errlen, "unknown field \"%.64s\"%s%s", key, where[0] ? " in " : "",
                           where);
    }
    return 0;
}

/* A string of 0 (when empty_ok) or 1 to SLA_NAME_MAX bytes without
 * control characters, into an owned copy. */
static int
s_text (const json_t *v, const char *field, bool empty_ok, char **out, char *err, size_t errlen)
{
    const char *s;
    size_t i, len;
    if (!json_is_string (v))
        return s_fail (err, errlen, "%s must be a string", field);
    s = json_string_value (v);
    len = json_string_length (v);
    if (len == 0 && !empty_ok)
        return s_fail (err, errlen, "%s must not be empty", field);
    if (len > SLA_NAME_MAX)
        return s_fail (err, errlen, "%s is longer than %d bytes", field, SLA_NAME_MAX);
    for (i = 0; i < len; i++) {
        if ((unsigned char)s[i] < ' ' || s[i] == 0x7F)
            return s_fail (err, errlen, "%s holds a control character", field);
    }
    *out = strdup (s);
    if (!*out)
        return s_fail (err, errlen, "out of memory");
    return 0;
}

/* An inbox id as ingest.inboxes takes it: [a-z0-9][a-z0-9_.-]{0,62}. */
static bool
s_inbox_ok (const char *s)
{
    size_t i, len = strlen (s);
    if (len == 0 || len > 63)
        return false;
    for (i = 0; i < len; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return false;
    }
    return true;
}

/* Whole minutes from 1 to max, as milliseconds. */
static int
s_minutes (const json_t *v, const char *field, json_int_t max, int64_t *ms, char *err,
           size_t errlen)
{
    json_int_t m;
    if (!json_is_integer (v))
        return s_fail (err, errlen, "%s must be a whole number of minutes", field);
    m = json_integer_value (v);
    if (m < 0)
        return s_fail (err, errlen, "%s must not be negative (%lld)", field, (long long)m);
    if (m == 0)
        return s_fail (err, errlen,
                       "%s must be at least 1 minute (leave it out to measure nothing)", field);
    if (m > max)
        return s_fail (err, errlen, "%s is more than %lld minutes", field, (long long)max);
    *ms = (int64_t)m * S_MINUTE_MS;
    return 0;
}

/* --- calendars -------------------------------------------------------- */

sla_calendar_t *
sla_calendar_from_json (const json_t *obj, char *err, size_t errlen)
{
    static const char *const fields[] = {"zone", "weekly", "holidays", NULL};
    char why[256] = "";
    const json_t *zone, *weekly, *holidays;
    sla_calendar_t *self = NULL;
    size_t i;
    if (!json_is_object (obj)) {
        s_fail (err, errlen,
                "business hours must be an object {\"zone\", \"weekly\", \"holidays\"}");
        return NULL;
    }
    if (s_only (obj, fields, "business hours", err, errlen) != 0)
        return NULL;
    zone = json_object_get (obj, "zone");
    weekly = json_object_get (obj, "weekly");
    holidays = json_object_get (obj, "holidays");
    if (!json_is_string (zone)) {
        s_fail (err, errlen, "zone must be a string (an IANA name, e.g. Europe/Kyiv)");
        return NULL;
    }
    if (!json_is_string (weekly)) {
        s_fail (err, errlen, "weekly must be a string (e.g. \"mon-fri 09:00-18:00\")");
        return NULL;
    }
    if (holidays && !json_is_array (holidays)) {
        s_fail (err, errlen, "holidays must be an array of dates (YYYY-MM-DD)");
        return NULL;
    }
    self = calloc (1, sizeof *self);
    if (!self) {
        s_fail (err, errlen, "out of memory");
        return NULL;
    }
    self->tz = rt_tz_new (json_string_value (zone), why, sizeof why);
    if (!self->tz) {
        s_fail (err, errlen, "zone: %s", why);
        goto error;
    }
    self->hours = rt_tz_hours_new (json_string_value (weekly), NULL, why, sizeof why);
    if (!self->hours) {
        s_fail (err, errlen, "weekly: %s", why);
        goto error;
    }
    for (i = 0; holidays && i < json_array_size (holidays); i++) {
        const json_t *day = json_array_get (holidays, i);
        if (!json_is_string (day)) {
            s_fail (err, errlen, "holidays[%zu] must be a date string (YYYY-MM-DD)", i);
            goto error;
        }
        if (rt_tz_hours_add_holiday (self->hours, json_string_value (day), why, sizeof why) != 0) {
            s_fail (err, errlen, "holidays[%zu]: %s", i, why);
            goto error;
        }
    }
    return self;
error:
    sla_calendar_destroy (&self);
    return NULL;
}

void
sla_calendar_destroy (sla_calendar_t **self_p)
{
    sla_calendar_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    rt_tz_destroy (&self->tz);
    rt_tz_hours_destroy (&self->hours);
    free (self);
    *self_p = NULL;
}

/* --- policies --------------------------------------------------------- */

/* "team", "channel" or "inbox": at most one. */
static int
s_parse_scope (sla_policy_t *p, const json_t *obj, char *err, size_t errlen)
{
    const json_t *team = json_object_get (obj, "team");
    const json_t *channel = json_object_get (obj, "channel");
    const json_t *inbox = json_object_get (obj, "inbox");
    const rt_channel_t *ch;
    char names[160];
    if ((team != NULL) + (channel != NULL) + (inbox != NULL) > 1)
        return s_fail (err, errlen,
                       "a policy applies to one of team, channel or inbox, not two (make one "
                       "policy each)");
    if (team) {
        p->scope = SLA_SCOPE_TEAM;
        return s_text (team, "team", false, &p->scope_id, err, errlen);
    }
    if (inbox) {
        p->scope = SLA_SCOPE_INBOX;
        if (s_text (inbox, "inbox", false, &p->scope_id, err, errlen) != 0)
            return -1;
        if (!s_inbox_ok (p->scope_id))
            return s_fail (err, errlen,
                           "inbox \"%s\" is not an inbox id (lower-case letters, digits, _ . -)",
                           p->scope_id);
        return 0;
    }
    if (channel) {
        p->scope = SLA_SCOPE_CHANNEL;
        ch = json_is_string (channel) ? rt_channel_by_name (json_string_value (channel)) : NULL;
        if (!ch) {
            if (rt_channel_list (names, sizeof names) != 0)
                names[0] = '\0';
            return s_fail (err, errlen, "channel must be one of %s", names);
        }
        p->channel = ch->value;
        return 0;
    }
    p->scope = SLA_SCOPE_DEFAULT;
    return 0;
}

/* "clock" and "business_hours". */
static int
s_parse_clock (sla_policy_t *p, const json_t *obj, char *err, size_t errlen)
{
    const json_t *clock = json_object_get (obj, "clock");
    const json_t *hours = json_object_get (obj, "business_hours");
    const char *name = json_string_value (clock);
    char why[256] = "";
    if (!clock)
        return s_fail (err, errlen, "clock missing: \"business\" (opening hours) or \"wall\"");
    if (name && strcmp (name, "business") == 0)
        p->clock = SLA_CLOCK_BUSINESS;
    else if (name && strcmp (name, "wall") == 0)
        p->clock = SLA_CLOCK_WALL;
    else
        return s_fail (err, errlen, "clock must be \"business\" (opening hours) or \"wall\"");
    if (!hours)
        return 0;
    if (p->clock == SLA_CLOCK_WALL)
        return s_fail (err, errlen,
                       "business_hours with clock \"wall\": a wall-clock policy counts every "
                       "hour (use clock \"business\")");
    p->calendar = sla_calendar_from_json (hours, why, sizeof why);
    if (!p->calendar)
        return s_fail (err, errlen, "business_hours: %s", why);
    return 0;
}

/* The three targets: at least one. */
static int
s_parse_targets (sla_policy_t *p, const json_t *obj, char *err, size_t errlen)
{
    int k, n = 0;
    for (k = 0; k < SLA_KINDS; k++) {
        const json_t *v = json_object_get (obj, s_target_fields[k]);
        if (!v)
            continue;
        if (s_minutes (v, s_target_fields[k], SLA_TARGET_MAX_MIN, &p->target_ms[k], err, errlen) !=
            0)
            return -1;
        n++;
    }
    if (n == 0)
        return s_fail (err, errlen,
                       "no target: set first_response_minutes, next_response_minutes or "
                       "resolution_minutes");
    return 0;
}

/* "warning": {"percent"} or {"minutes_before"}. */
static int
s_parse_warning (sla_policy_t *p, const json_t *warning, char *err, size_t errlen)
{
    static const char *const fields[] = {"percent", "minutes_before", NULL};
    const json_t *percent, *before;
    json_int_t pct;
    if (!json_is_object (warning))
        return s_fail (err, errlen,
                       "warning must be an object: {\"percent\": 80} or {\"minutes_before\": 15}");
    if (s_only (warning, fields, "warning", err, errlen) != 0)
        return -1;
    percent = json_object_get (warning, "percent");
    before = json_object_get (warning, "minutes_before");
    if (percent && before)
        return s_fail (err, errlen, "warning: percent or minutes_before, not both");
    if (!percent && !before)
        return s_fail (err, errlen, "warning: set percent or minutes_before");
    if (before)
        return s_minutes (before, "warning.minutes_before", SLA_TARGET_MAX_MIN, &p->warn_before_ms,
                          err, errlen);
    if (!json_is_integer (percent))
        return s_fail (err, errlen, "warning.percent must be a whole number from 1 to 99");
    pct = json_integer_value (percent);
    if (pct < 1 || pct > 99)
        return s_fail (err, errlen, "warning.percent must be from 1 to 99 (%lld)", (long long)pct);
    p->warn_percent = (int)pct;
    return 0;
}

/* "escalation": {"flag_supervisor", "reassign", "reassign_team"}. */
static int
s_parse_escalation (sla_policy_t *p, const json_t *esc, char *err, size_t errlen)
{
    static const char *const fields[] = {"flag_supervisor", "reassign", "reassign_team", NULL};
    const json_t *flag, *reassign, *team;
    if (!json_is_object (esc))
        return s_fail (err, errlen, "escalation must be an object");
    if (s_only (esc, fields, "escalation", err, errlen) != 0)
        return -1;
    flag = json_object_get (esc, "flag_supervisor");
    reassign = json_object_get (esc, "reassign");
    team = json_object_get (esc, "reassign_team");
    if (flag && !json_is_boolean (flag))
        return s_fail (err, errlen, "escalation.flag_supervisor must be true or false");
    if (reassign && !json_is_boolean (reassign))
        return s_fail (err, errlen, "escalation.reassign must be true or false");
    if (flag)
        p->escalation.flag_supervisor = json_is_true (flag);
    if (reassign)
        p->escalation.reassign = json_is_true (reassign);
    if (!team)
        return 0;
    if (!p->escalation.reassign)
        return s_fail (err, errlen,
                       "escalation.reassign_team without \"reassign\": true (nothing would move)");
    return s_text (team, "escalation.reassign_team", false, &p->escalation.reassign_team, err,
                   errlen);
}

sla_policy_t *
sla_policy_from_json (const json_t *obj, char *err, size_t errlen)
{
    static const char *const fields[] = {"name",
                                         "team",
                                         "channel",
                                         "inbox",
                                         "clock",
                                         "business_hours",
                                         "first_response_minutes",
                                         "next_response_minutes",
                                         "resolution_minutes",
                                         "warning",
                                         "escalation",
                                         NULL};
    sla_policy_t *self = NULL;
    const json_t *name, *warning, *esc;
    if (!json_is_object (obj)) {
        s_fail (err, errlen, "a policy must be a JSON object");
        return NULL;
    }
    if (s_only (obj, fields, "", err, errlen) != 0)
        return NULL;
    self = calloc (1, sizeof *self);
    if (!self) {
        s_fail (err, errlen, "out of memory");
        return NULL;
    }
    self->channel = RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED;
    self->escalation.flag_supervisor = true;
    name = json_object_get (obj, "name");
    if (name) {
        if (s_text (name, "name", true, &self->name, err, errlen) != 0)
            goto error;
    } else {
        self->name = strdup ("");
        if (!self->name) {
            s_fail (err, errlen, "out of memory");
            goto error;
        }
    }
    if (s_parse_scope (self, obj, err, errlen) != 0 ||
        s_parse_clock (self, obj, err, errlen) != 0 ||
        s_parse_targets (self, obj, err, errlen) != 0)
        goto error;
    warning = json_object_get (obj, "warning");
    if (warning && s_parse_warning (self, warning, err, errlen) != 0)
        goto error;
    esc = json_object_get (obj, "escalation");
    if (esc && s_parse_escalation (self, esc, err, errlen) != 0)
        goto error;
    return self;
error:
    sla_policy_destroy (&self);
    return NULL;
}

sla_policy_t *
sla_policy_parse (const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *obj;
    sla_policy_t *self;
    if (!text) {
        s_fail (err, errlen, "policy missing");
        return NULL;
    }
    obj = json_loadb (text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        s_fail (err, errlen, "not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                jerr.column);
        return NULL;
    }
    self = sla_policy_from_json (obj, err, errlen);
    json_decref (obj);
    return self;
}

void
sla_policy_destroy (sla_policy_t **self_p)
{
    sla_policy_t *self;
    if (!self_p || !*self_p)
        return;
    self = *self_p;
    free (self->name);
    free (self->scope_id);
    sla_calendar_destroy (&self->calendar);
    free (self->escalation.reassign_team);
    free (self);
    *self_p = NULL;
}

/* Whether p applies to the conversation at all, whatever its rank. */
static bool
s_applies (const sla_policy_t *p, const char *team, const char *inbox, Retain__V1__Channel channel)
{
    switch (p->scope) {
    case SLA_SCOPE_DEFAULT:
        return true;
    case SLA_SCOPE_TEAM:
        return team && strcmp (team, p->scope_id) == 0;
    case SLA_SCOPE_CHANNEL:
        return channel != RETAIN__V1__CHANNEL__CHANNEL_UNSPECIFIED && channel == p->channel;
    case SLA_SCOPE_INBOX:
        return inbox && strcmp (inbox, p->scope_id) == 0;
    }
    return false;
}

const sla_policy_t *
sla_select (const sla_policy_t *const *policies, size_t n, const char *team, const char *inbox,
            Retain__V1__Channel channel)
{
    const sla_policy_t *best = NULL;
    size_t i;
    for (i = 0; i < n; i++) {
        const sla_policy_t *p = policies[i];
        /* Strictly more specific: the first listed wins between equals. */
        if (p && s_applies (p, team, inbox, channel) && (!best || p->scope > best->scope))
            best = p;
    }
    return best;
}

/* --- clocks ----------------------------------------------------------- */

/* The calendar a business policy counts in; NULL with the reason. */
static const sla_calendar_t *
s_calendar (const sla_policy_t *policy, const sla_calendar_t *team, char *err, size_t errlen)
{
    if (policy->calendar)
        return policy->calendar;
    if (team && team->tz && team->hours)
        return team;
    s_fail (err, errlen,
            "policy \"%s\" counts business hours, and neither it nor the team has a calendar",
            policy->name);
    return NULL;
}

/* How much of a target of target_ms is used when the warning comes:
 * target_ms itself without a warning. */
static int64_t
s_warn_used (const sla_policy_t *policy, int64_t target_ms)
{
    if (policy->warn_percent > 0)
        return target_ms * policy->warn_percent / 100;
    if (policy->warn_before_ms > 0)
        return policy->warn_before_ms >= target_ms ? 0 : target_ms - policy->warn_before_ms;
    return target_ms;
}

/* The instant `ms` of the policy's time after t. */
static int
s_add (const sla_policy_t *policy, const sla_calendar_t *cal, int64_t t, int64_t ms, int64_t *at,
       char *err, size_t errlen)
{
    if (policy->clock == SLA_CLOCK_WALL) {
        if (t + ms > S_LAST_MS)
            return s_fail (err, errlen, "due time past the year 9999");
        *at = t + ms;
        return 0;
    }
    if (rt_tz_business_add (cal->hours, cal->tz, t, ms, at) != 0)
        return s_fail (err, errlen, "no opening hours ahead in %s to count %lld minutes in",
                       rt_tz_name (cal->tz), (long long)(ms / S_MINUTE_MS));
    return 0;
}

/* The policy's time in [a, b). */
static int
s_between (const sla_policy_t *policy, const sla_calendar_t *cal, int64_t a, int64_t b, int64_t *ms,
           char *err, size_t errlen)
{
    if (policy->clock == SLA_CLOCK_WALL) {
        *ms = b > a ? b - a : 0;
        return 0;
    }
    if (rt_tz_business_between (cal->hours, cal->tz, a, b, ms) != 0)
        return s_fail (err, errlen, "an instant out of range for %s", rt_tz_name (cal->tz));
    return 0;
}

int
sla_due (const sla_policy_t *policy, const sla_calendar_t *team, sla_kind_t kind, int64_t start_ms,
         int64_t *due_ms, int64_t *warn_ms, char *err, size_t errlen)
{
    const sla_calendar_t *cal = NULL;
    int64_t target, used, due, warn;
    if ((int)kind < 0 || kind >= SLA_KINDS)
        return s_fail (err, errlen, "unknown SLA kind %d", (int)kind);
    target = policy->target_ms[kind];
    if (target == 0)
        return 0;
    if (start_ms < S_FIRST_MS || start_ms > S_LAST_MS)
        return s_fail (err, errlen, "start %lld out of range", (long long)start_ms);
    if (policy->clock == SLA_CLOCK_BUSINESS) {
        cal = s_calendar (policy, team, err, errlen);
        if (!cal)
            return -1;
    }
    used = s_warn_used (policy, target);
    if (s_add (policy, cal, start_ms, target, &due, err, errlen) != 0)
        return -1;
    warn = due;
    if (used != target && s_add (policy, cal, start_ms, used, &warn, err, errlen) != 0)
        return -1;
    *due_ms = due;
    *warn_ms = warn;
    return 1;
}

int
sla_timer_start (const sla_policy_t *policy, const sla_calendar_t *team, sla_kind_t kind,
                 int64_t start_ms, sla_timer_t *timer, char *err, size_t errlen)
{
    int64_t due = 0, warn = 0;
    int rc = sla_due (policy, team, kind, start_ms, &due, &warn, err, errlen);
    if (rc != 1)
        return rc;
    memset (timer, 0, sizeof *timer);
    timer->start_ms = start_ms;
    timer->due_ms = due;
    timer->warn_ms = warn;
    return 1;
}

void
sla_pause (sla_timer_t *timer, int64_t now_ms)
{
    if (timer->paused)
        return;
    timer->paused = true;
    timer->paused_at_ms = now_ms;
}

/* The instant `at`, still to come at the pause, after a pause from
 * paused to resumed: what was left is left. */
static int
s_moved (const sla_policy_t *policy, const sla_calendar_t *cal, int64_t at, int64_t paused,
         int64_t resumed, int64_t *out, char *err, size_t errlen)
{
    int64_t left;
    if (at <= paused) {
        *out = at;
        return 0;
    }
    if (s_between (policy, cal, paused, at, &left, err, errlen) != 0)
        return -1;
    return s_add (policy, cal, resumed, left, out, err, errlen);
}

int
sla_resume (const sla_policy_t *policy, const sla_calendar_t *team, sla_timer_t *timer,
            int64_t now_ms, char *err, size_t errlen)
{
    const sla_calendar_t *cal = NULL;
    int64_t paused, resumed, due, warn;
    if (!timer->paused)
        return 0;
    paused = timer->paused_at_ms;
    /* A clock set back while paused: the pause covered nothing. */
    resumed = now_ms > paused ? now_ms : paused;
    if (resumed > S_LAST_MS)
        return s_fail (err, errlen, "resume %lld out of range", (long long)now_ms);
    if (policy->clock == SLA_CLOCK_BUSINESS) {
        cal = s_calendar (policy, team, err, errlen);
        if (!cal)
            return -1;
    }
    if (s_moved (policy, cal, timer->due_ms, paused, resumed, &due, err, errlen) != 0 ||
        s_moved (policy, cal, timer->warn_ms, paused, resumed, &warn, err, errlen) != 0)
        return -1;
    timer->due_ms = due;
    timer->warn_ms = warn;
    timer->paused = false;
    timer->paused_at_ms = 0;
    return 0;
}

void
sla_state (const sla_timer_t *timer, int64_t now_ms, sla_state_t *out)
{
    int64_t t = now_ms;
    if (timer->paused && timer->paused_at_ms < t)
        t = timer->paused_at_ms;
    out->paused = timer->paused;
    out->left_ms = timer->due_ms - t;
    if (t >= timer->due_ms)
        out->status = SLA_BREACHED;
    else if (t >= timer->warn_ms)
        out->status = SLA_WARNING;
    else
        out->status = SLA_OK;
}
