/*
 * retainctl keygen: a new CURVE key pair for busd or for a client, printed
 * as environment assignments.
 */
#include <stdio.h>

#include <zmq.h>

#include "retainctl.h"
#include "rt_config.h"

/* No settings: the table is there so --help and a stray argument are
 * answered as by every other command. */
static const rt_config_setting_t s_settings[] = {{NULL, NULL, NULL, NULL}};

int
retainctl_keygen (int argc, char **argv)
{
    char pub[41], sec[41];
    rt_config_t *config = rt_config_new (
        "retainctl keygen", "Print a new ZeroMQ CURVE key pair (Z85) as public=... secret=...",
        s_settings);
    int rc = 1;
    if (!config)
        return 1;
    if (!retainctl_parse (config, "retainctl keygen", argc, argv, &rc))
        goto cleanup;
    if (zmq_curve_keypair (pub, sec) != 0) {
        fprintf (stderr, "retainctl keygen: %s\n", zmq_strerror (zmq_errno ()));
        rc = 1;
        goto cleanup;
    }
    printf ("public=%s\nsecret=%s\n", pub, sec);
    rc = 0;
cleanup:
    rt_config_destroy (&config);
    return rc;
}
