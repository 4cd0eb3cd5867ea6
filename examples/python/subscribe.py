"""Print the events busd publishes: topic, seq, type and the decoded payload.

Live only (a SUB socket drops what it misses); a consumer that must see
every event reads the gaps from the log (retainctl tail, bus.events).
Same module path and CURVE variables as publish.py (bus_curve.py).
"""
import argparse, os, sys

import zmq
from google.protobuf import json_format

sys.dont_write_bytecode = True  # no __pycache__ left beside the examples
import bus_curve
from retain.v1 import (conversation_pb2, customer_pb2, envelope_pb2, loyalty_pb2,
                       message_pb2, notification_pb2, order_pb2, shipment_pb2)

MODULES = [conversation_pb2, customer_pb2, loyalty_pb2, message_pb2,
           notification_pb2, order_pb2, shipment_pb2]

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--pub", default=os.environ.get("RETAIN_BUS_PUB", "tcp://127.0.0.1:7702"),
               help="busd PUB endpoint(s), comma-separated")
p.add_argument("--topic", default="", help='prefix: "" all, "order." a stream, "order.0003" a partition')
args = p.parse_args()

sock = zmq.Context().socket(zmq.SUB)
bus_curve.apply(sock)
for endpoint in args.pub.split(","):  # busd and its standby: only the writer publishes
    sock.connect(endpoint.strip())
sock.subscribe(args.topic)
try:
    while True:
        topic, frame = sock.recv_multipart()
        env = envelope_pb2.Envelope.FromString(frame)
        cls = next((getattr(m, env.type) for m in MODULES if hasattr(m, env.type)), None)
        # The proto3 JSON mapping, as retainctl tail prints it.
        payload = (json_format.MessageToJson(cls.FromString(env.payload), indent=None)
                   if cls else f"<{len(env.payload)} bytes of unknown type>")
        print(f"{topic.decode()} seq={env.seq} pseq={env.pseq} {env.type} {payload}", flush=True)
except KeyboardInterrupt:
    pass
