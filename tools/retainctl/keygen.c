/*
 * retainctl keygen: a new CURVE key pair for busd or for a client, printed
 * as the settings that take it, one NAME=VALUE line each.
 *
 * busd's pair is printed as RETAIN_BUSD_CURVE_SECRET (busd's setting) and
 * RETAIN_BUS_CURVE_SERVER_KEY (the public half, which every client names);
 * a client's as RETAIN_BUS_CURVE_CLIENT_PUBLIC (what busd's --curve-clients
 * list admits) and RETAIN_BUS_CURVE_CLIENT_SECRET. The lines are for an env
 * file (docker-compose --env-file, env_file:), not for a shell: Z85 keys
 * hold characters a shell would read.
 */
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "cmd.h"
#include "retainctl.h"
#include "rt_config.h"

static const rt_config_setting_t s_settings[] = {
    {"for", NULL, "client",
     "whose pair: busd (its secret, and the server key clients verify) or client (a producer's "
     "or a service's own pair)"},
    RETAINCTL_END};

int
retainctl_keygen (int argc, char **argv)
{
    retainctl_cmd_t cmd;
    char pub[41], sec[41];
    const char *whose;
    int rc;
    if (!retainctl_cmd_begin (
            &cmd, NULL, "Print a new ZeroMQ CURVE key pair (Z85) as the settings that take it.",
            s_settings, argc, argv, &rc))
        goto cleanup;
    whose = rt_config_get (cmd.config, "for");
    if (strcmp (whose, "busd") != 0 && strcmp (whose, "client") != 0) {
        fprintf (stderr, "%s: --for is busd or client, not \"%s\"\n", cmd.program, whose);
        rc = 2;
        goto cleanup;
    }
    if (zmq_curve_keypair (pub, sec) != 0) {
        fprintf (stderr, "%s: %s\n", cmd.program, zmq_strerror (zmq_errno ()));
        goto cleanup;
    }
    /* Z85 keys hold $, &, (, #, ... but never a quote or a backslash:
     * single quotes make each line literal to a shell's `.`, to
     * docker-compose's --env-file (which strips them) and to systemd. */
    if (strcmp (whose, "busd") == 0)
        printf ("RETAIN_BUSD_CURVE_SECRET='%s'\nRETAIN_BUS_CURVE_SERVER_KEY='%s'\n", sec, pub);
    else
        printf ("RETAIN_BUS_CURVE_CLIENT_PUBLIC='%s'\nRETAIN_BUS_CURVE_CLIENT_SECRET='%s'\n", pub,
                sec);
    rc = 0;
cleanup:
    retainctl_cmd_end (&cmd);
    return rc;
}
