/*
 * retainctl keygen: a new CURVE key pair for busd or for a client, printed
 * as environment assignments.
 */
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "retainctl.h"

int
retainctl_keygen (int argc, char **argv)
{
    char pub[41], sec[41];
    if (argc > 1 && strcmp (argv[1], "--help") == 0) {
        printf ("usage: retainctl keygen\n\nPrints a new ZeroMQ CURVE key pair (Z85).\n");
        return 0;
    }
    if (zmq_curve_keypair (pub, sec) != 0) {
        fprintf (stderr, "retainctl keygen: %s\n", zmq_strerror (zmq_errno ()));
        return 1;
    }
    printf ("public=%s\nsecret=%s\n", pub, sec);
    return 0;
}
