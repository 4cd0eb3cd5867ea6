/*
 * zap: ZeroMQ CURVE on the ingress and PUB sockets, with a ZAP handler
 * (ZeroMQ RFC 27) that admits only the client public keys listed in a file.
 *
 * busd's own secret key is --curve-server-secret (RETAIN_BUSD_CURVE_SECRET),
 * a name no client uses: a client's keys are rt_bus_client_settings. The
 * public key clients verify is derived from the secret and logged at start
 * ("CURVE enabled", server_key). Without a secret the sockets are plain
 * TCP, which is what the local runner and the tests use on loopback; the
 * production compose file sets the key and the list.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "busd.h"
#include "rt_log.h"

#define ZAP_MAX_KEYS 4096

static int
s_load_keys (busd_t *self, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen (path, "r");
    char line[256];
    int lineno = 0;
    if (!f) {
        snprintf (err, errlen, "cannot open CURVE client list %s: %s", path, strerror (errno));
        return -1;
    }
    self->curve_keys = calloc (ZAP_MAX_KEYS, sizeof *self->curve_keys);
    if (!self->curve_keys) {
        fclose (f);
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    while (fgets (line, sizeof line, f)) {
        char *p = line, *end;
        lineno++;
        while (*p == ' ' || *p == '\t')
            p++;
        /* Z85 uses "#" too: a comment is a line that starts with it. */
        end = p + strcspn (p, " \t\r\n");
        if (*p == '#' || end == p)
            continue;
        *end = '\0';
        if (strlen (p) != 40 || self->ncurve_keys == ZAP_MAX_KEYS ||
            !zmq_z85_decode (self->curve_keys[self->ncurve_keys], p)) {
            snprintf (err, errlen, "%s:%d: not a Z85 CURVE public key (40 characters)", path,
                      lineno);
            fclose (f);
            return -1;
        }
        self->ncurve_keys++;
    }
    fclose (f);
    return 0;
}

int
zap_start (busd_t *self, char *err, size_t errlen)
{
    char server_key[41];
    if (!self->curve_secret[0])
        return 0;
    if (!zmq_has ("curve")) {
        snprintf (err, errlen, "this libzmq was built without CURVE");
        return -1;
    }
    /* Its public half is what every client names as the server key. */
    if (strlen (self->curve_secret) != 40 ||
        zmq_curve_public (server_key, self->curve_secret) != 0) {
        snprintf (err, errlen,
                  "--curve-server-secret / RETAIN_BUSD_CURVE_SECRET must be a CURVE secret key: "
                  "40 Z85 characters (retainctl keygen --for busd)");
        return -1;
    }
    if (!self->curve_clients[0]) {
        snprintf (err, errlen,
                  "CURVE needs a list of admitted client keys (--curve-clients / "
                  "RETAIN_BUSD_CURVE_CLIENTS)");
        return -1;
    }
    if (s_load_keys (self, self->curve_clients, err, errlen) != 0)
        return -1;
    self->zap = zmq_socket (self->zmq_ctx, ZMQ_REP);
    if (!self->zap || zmq_bind (self->zap, "inproc://zeromq.zap.01") != 0) {
        snprintf (err, errlen, "ZAP handler: %s", zmq_strerror (errno));
        return -1;
    }
    rt_log (RT_LOG_INFO, "CURVE enabled", rt_log_uint ("admitted_keys", self->ncurve_keys),
            rt_log_str ("server_key", server_key));
    return 0;
}

int
zap_apply_server (busd_t *self, void *socket, char *err, size_t errlen)
{
    int one = 1;
    if (!self->curve_secret[0])
        return 0;
    if (zmq_setsockopt (socket, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt (socket, ZMQ_CURVE_SECRETKEY, self->curve_secret, 40) != 0 ||
        zmq_setsockopt (socket, ZMQ_ZAP_DOMAIN, "retain", 6) != 0) {
        snprintf (err, errlen, "CURVE setup: %s", zmq_strerror (errno));
        return -1;
    }
    return 0;
}

void
zap_handle (busd_t *self)
{
    zmq_msg_t frames[8];
    int n = 0, more = 1, i;
    bool admit = false;
    if (!self->zap)
        return;
    while (more) {
        zmq_msg_t f;
        zmq_msg_init (&f);
        if (zmq_msg_recv (&f, self->zap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&f);
            if (n == 0)
                return;
            break;
        }
        more = zmq_msg_more (&f);
        if (n < 8)
            frames[n++] = f;
        else
            zmq_msg_close (&f);
    }
    /* version, request id, domain, address, identity, mechanism, key */
    if (n == 7 && zmq_msg_size (&frames[5]) == 5 &&
        memcmp (zmq_msg_data (&frames[5]), "CURVE", 5) == 0 && zmq_msg_size (&frames[6]) == 32) {
        size_t k;
        for (k = 0; k < self->ncurve_keys && !admit; k++)
            admit = memcmp (self->curve_keys[k], zmq_msg_data (&frames[6]), 32) == 0;
    }
    if (!admit) {
        char addr[64] = "";
        if (n > 3)
            snprintf (addr, sizeof addr, "%.*s", (int)zmq_msg_size (&frames[3]),
                      (const char *)zmq_msg_data (&frames[3]));
        rt_log (RT_LOG_WARN, "client refused: key not admitted", rt_log_str ("address", addr));
    }
    zmq_send (self->zap, "1.0", 3, ZMQ_SNDMORE);
    if (n > 1)
        zmq_send (self->zap, zmq_msg_data (&frames[1]), zmq_msg_size (&frames[1]), ZMQ_SNDMORE);
    else
        zmq_send (self->zap, "", 0, ZMQ_SNDMORE);
    zmq_send (self->zap, admit ? "200" : "400", 3, ZMQ_SNDMORE);
    zmq_send (self->zap, admit ? "OK" : "key not admitted", admit ? 2 : 16, ZMQ_SNDMORE);
    zmq_send (self->zap, "", 0, ZMQ_SNDMORE);
    zmq_send (self->zap, "", 0, 0);
    for (i = 0; i < n; i++)
        zmq_msg_close (&frames[i]);
}

void
zap_stop (busd_t *self)
{
    if (self->zap) {
        zmq_close (self->zap);
        self->zap = NULL;
    }
    free (self->curve_keys);
    self->curve_keys = NULL;
    self->ncurve_keys = 0;
}
