"""ZeroMQ CURVE for a client of retain's bus, from the same variables every
retain client reads (a daemon's or retainctl's --help lists them):

  RETAIN_BUS_CURVE_SERVER_KEY     busd's public key, which the client verifies
  RETAIN_BUS_CURVE_CLIENT_PUBLIC  this client's public key (on busd's list)
  RETAIN_BUS_CURVE_CLIENT_SECRET  this client's secret key

All three, or none for plain TCP (`retainctl keygen` makes a client's pair).
The old RETAIN_BUS_CURVE_PUBLIC_KEY / RETAIN_BUS_CURVE_SECRET_KEY are
refused, as retain's own clients refuse them, rather than run without CURVE.
"""
import os
import sys

NEW = ("RETAIN_BUS_CURVE_SERVER_KEY", "RETAIN_BUS_CURVE_CLIENT_PUBLIC",
       "RETAIN_BUS_CURVE_CLIENT_SECRET")
RETIRED = {"RETAIN_BUS_CURVE_PUBLIC_KEY": "RETAIN_BUS_CURVE_CLIENT_PUBLIC",
           "RETAIN_BUS_CURVE_SECRET_KEY": "RETAIN_BUS_CURVE_CLIENT_SECRET"}


def apply(sock):
    """Sets the socket's CURVE keys from the environment, before it connects."""
    for old, new in RETIRED.items():
        if os.environ.get(old):
            sys.exit(f"{old} is no longer read: set {new} instead")
    values = [os.environ.get(name, "") for name in NEW]
    if not any(values):
        return
    if not all(values):
        sys.exit("CURVE needs all three of " + ", ".join(NEW) + ", or none")
    sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = (v.encode() for v in values)
