"""Publish one OrderPlaced event to retain's bus, as a shop's backend would.

Needs python3-zmq, python3-protobuf and the modules protoc generates from
proto/ (protoc --python_out=. -I proto proto/retain/v1/*.proto) on the path.
busd answers only once the event is committed; with no answer in time the
same envelope (same id) is sent again, and busd answers DUPLICATE if the
first one did land. For CURVE, set RETAIN_BUS_CURVE_SERVER_KEY (busd's public
key) and this client's RETAIN_BUS_CURVE_CLIENT_PUBLIC / _CLIENT_SECRET
(bus_curve.py, next to this file).
"""
import argparse, os, sys, time, uuid

import zmq

sys.dont_write_bytecode = True  # no __pycache__ left beside the examples
import bus_curve
from retain.v1 import common_pb2, envelope_pb2, order_pb2


def uuid7():
    """A UUIDv7: 48 bits of unix milliseconds, then random bits."""
    b = bytearray((time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10))
    b[6] = 0x70 | (b[6] & 0x0F)  # version 7
    b[8] = 0x80 | (b[8] & 0x3F)  # RFC 4122 variant
    return str(uuid.UUID(bytes=bytes(b)))


p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--bus", default=os.environ.get("RETAIN_BUS_INGRESS", "tcp://127.0.0.1:7701"),
               help="busd ingress endpoint(s), comma-separated")
p.add_argument("--key", default="customer-42", help="customer id: the partition key")
p.add_argument("--order-id", default="order-1001")
p.add_argument("--id", default=None, help="envelope id; reuse one to retry safely")
p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each ack")
p.add_argument("--retries", type=int, default=5)
args = p.parse_args()

now_ms = int(time.time() * 1000)
order = order_pb2.OrderPlaced(
    order_id=args.order_id, customer_id=args.key, placed_at=now_ms,
    total=common_pb2.Money(amount_minor=129900, currency="UAH"),
    lines=[common_pb2.OrderLine(sku="KETTLE-1", name="Kettle", quantity=1,
                                unit_price=common_pb2.Money(amount_minor=129900, currency="UAH"))])
env = envelope_pb2.Envelope(
    id=args.id or uuid7(), type="OrderPlaced", key=args.key, occurred_at=now_ms,
    producer="shop-example", payload=order.SerializeToString())
frame = env.SerializeToString()

sock = zmq.Context().socket(zmq.DEALER)
sock.linger = 0
bus_curve.apply(sock)
# busd and its standby: only the writer binds, and a DEALER sends each
# retry to the next endpoint, so one of them reaches whoever writes.
for endpoint in args.bus.split(","):
    sock.connect(endpoint.strip())

for attempt in range(1, args.retries + 1):
    sock.send(frame)
    if sock.poll(int(args.timeout * 1000)):
        # Any answer names this id (a late one to an earlier try is as good).
        ack = envelope_pb2.Ack.FromString(sock.recv())
        print(f"ack id={ack.id} status={envelope_pb2.Ack.Status.Name(ack.status)} "
              f"seq={ack.seq} partition={ack.partition} pseq={ack.pseq} {ack.error}".rstrip())
        sys.exit(0 if ack.status in (envelope_pb2.Ack.OK, envelope_pb2.Ack.DUPLICATE) else 1)
    if attempt < args.retries:
        print(f"no ack within {args.timeout}s; sending {env.id} again "
              f"({attempt + 1}/{args.retries})", file=sys.stderr)
sys.exit(f"gave up: no ack from {args.bus} after {args.retries} attempts")
