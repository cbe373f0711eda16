#!/usr/bin/env python3
"""A door node and a people counter written from protocol/README.md alone, in Python with its
standard library only (MQTT 3.1.1 over a socket, HMAC-SHA256), as a device maker would write
one. tests/python_device.rs runs it against `kombinat run`; on its own:

    door_node.py --port 1883 --door d-cowork-in --device door-cowork --key <64 hex> \
        --allowed 04A1B2C3 --refused 04D4E5F6 --sensor sensor-meeting --sensor-key <64 hex> \
        --room meeting-1 --observer-password <the observer's, from mosquitto-config>

Every step prints one line; the first thing that does not go as the page says ends the run
with exit code 1 and why.
"""

import argparse
import hashlib
import hmac
import json
import socket
import struct
import sys
import time

PREFIX = "kombinat/v1"


def fail(why):
    print(f"FAIL: {why}", flush=True)
    sys.exit(1)


def step(what):
    print(f"ok: {what}", flush=True)


# --- MQTT 3.1.1, the little of it a door node needs -------------------------------------


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(s):
    b = s if isinstance(s, bytes) else s.encode()
    return struct.pack("!H", len(b)) + b


class Mqtt:
    def __init__(self, host, port, client_id, will_topic, will_payload, user, password):
        self.sock = socket.create_connection((host, port), timeout=5)
        # The page: TCP_NODELAY on, or each QoS 1 round trip waits on Nagle's algorithm.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.next_id = 1
        self.inbox = []
        # Clean session off, a will (QoS 1, retained) if given, keep-alive 30 s, a user name and
        # password.
        flags = 0x80 | 0x40 | (0x04 | (1 << 3) | 0x20 if will_topic else 0)
        body = string("MQTT") + bytes([4, flags]) + struct.pack("!H", 30)
        body += string(client_id)
        if will_topic:
            body += string(will_topic) + string(will_payload)
        body += string(user) + string(password)
        self.send(0x10, body)
        kind, payload = self.packet(5)
        if kind >> 4 != 2 or payload[1] != 0:
            fail(f"the broker refused the connection: {payload!r}")

    def send(self, first, body):
        self.sock.sendall(bytes([first]) + varint(len(body)) + body)

    def packet(self, within):
        deadline = time.monotonic() + within
        while True:
            if len(self.buf) >= 2:
                n, mult, i = 0, 1, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    n += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    i = None
                if i is not None and len(self.buf) >= i + n:
                    first, body = self.buf[0], self.buf[i : i + n]
                    self.buf = self.buf[i + n :]
                    return first, body
            left = deadline - time.monotonic()
            if left <= 0:
                return None, None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None, None
            if not chunk:
                fail("the broker closed the connection")
            self.buf += chunk

    def subscribe(self, topics):
        pid = self.pid()
        body = struct.pack("!H", pid) + b"".join(string(t) + bytes([1]) for t in topics)
        self.send(0x82, body)
        while True:
            kind, payload = self.packet(5)
            if kind is None:
                fail("no SUBACK")
            if kind >> 4 == 9:
                if any(c == 0x80 for c in payload[2:]):
                    fail(f"a subscription was refused: {payload!r}")
                return
            self.take(kind, payload)

    def publish(self, topic, payload, retain=False):
        pid = self.pid()
        body = string(topic) + struct.pack("!H", pid) + payload
        self.send(0x30 | (1 << 1) | (1 if retain else 0), body)

    def pid(self):
        pid = self.next_id
        self.next_id = self.next_id % 65535 + 1
        return pid

    def take(self, kind, body):
        """Keeps an incoming PUBLISH (acknowledged at QoS 1); PUBACKs for ours are dropped."""
        if kind >> 4 != 3:
            return
        qos = (kind >> 1) & 3
        n = struct.unpack("!H", body[:2])[0]
        topic = body[2 : 2 + n].decode()
        rest = body[2 + n :]
        if qos:
            pid = rest[:2]
            rest = rest[2:]
            self.send(0x40, pid)
        self.inbox.append((topic, rest, bool(kind & 1)))

    def message(self, topic, within, match=lambda m: True):
        """The next message on `topic` for which `match(parsed)` holds, or None."""
        deadline = time.monotonic() + within
        while True:
            for i, (t, payload, _) in enumerate(self.inbox):
                if t == topic:
                    m = json.loads(payload)
                    if match(m):
                        del self.inbox[i]
                        return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            kind, body = self.packet(left)
            if kind is not None:
                self.take(kind, body)

    def disconnect(self):
        self.send(0xE0, b"")
        self.sock.close()


# --- Signing, as the page's "Signing" says ----------------------------------------------


def field(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def mac(key, kind, fields):
    text = f"kombinat/1|{kind}|" + "".join(field(f) + "|" for f in fields)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def broker_password(key):
    # The page: the first 16 bytes of the MAC of kind mqtt-password with no fields, in hex.
    return mac(key, "mqtt-password", [])[:32]


def verify(key, kind, fields, got):
    want = mac(key, kind, fields)
    if not hmac.compare_digest(want, got):
        fail(f"a {kind} from the gateway does not carry the MAC the page describes")


def credential_text(c):
    # The page: in the MAC input a card UID is upper-case hex, without separators, however
    # the JSON writes it.
    if "card" in c:
        uid = "".join(ch for ch in c["card"] if ch not in ":- ").upper()
        return f"card|{uid}"
    return f"pin|{c['pin']}"


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--door", required=True)
    a.add_argument("--device", required=True)
    a.add_argument("--key", required=True)
    a.add_argument("--allowed", required=True, help="a card the gateway lets in at this door")
    a.add_argument("--refused", required=True, help="a card it refuses")
    a.add_argument("--sensor", required=True)
    a.add_argument("--sensor-key", required=True, help="the counter's key, for its broker password")
    a.add_argument("--room", required=True)
    a.add_argument("--observer-password", required=True, help="the broker's read-only account")
    a.add_argument("--boot", type=int, default=1, help="this boot's count, kept in flash")
    args = a.parse_args()
    key = bytes.fromhex(args.key)
    door, device = args.door, args.device
    base = f"{PREFIX}/door/{door}"
    status_topic = f"{PREFIX}/device/{device}/status"

    node = Mqtt(args.host, args.port, device, status_topic, b'{"v":1,"state":"offline"}',
                device, broker_password(key))
    node.subscribe([f"{base}/decision", f"{base}/command", f"{base}/allowlist", f"{base}/offline-ack"])
    step("connected as the door node and subscribed to its four topics")
    online = {"v": 1, "state": "online", "firmware": "0.1-python", "uptime_s": 0, "heartbeat_s": 30}
    node.publish(status_topic, json.dumps(online).encode(), retain=True)

    # Counters start each boot at boot_count << 32.
    counter = args.boot << 32
    last_gateway = 0

    # The retained allow-list: its MAC, and the allowed card in it.
    lst = node.message(f"{base}/allowlist", 10)
    if lst is None:
        fail("no allow-list arrived (it is retained: it should come on subscribing)")
    fields = [lst["v"], lst["door"], lst["device"], lst["counter"], lst["valid_from"], lst["valid_until"], len(lst["cards"])]
    for c in lst["cards"]:
        fields += [c["card"], c["from"], c["until"]]
    verify(key, "allowlist", fields, lst["mac"])
    if lst["door"] != door or lst["device"] != device:
        fail(f"the allow-list is for {lst['door']}/{lst['device']}")
    now = time.time()
    listed = [c for c in lst["cards"] if c["card"] == args.allowed.upper() and c["from"] <= now < c["until"]]
    if not listed:
        fail(f"the allowed card is not in the allow-list now: {lst['cards']}")
    list_counter = lst["counter"]
    step(f"allow-list verified: {len(lst['cards'])} cards, counter {list_counter}")

    def tap(credential):
        nonlocal counter
        counter += 1
        t = {"v": 1, "door": door, "device": device, "counter": counter, "credential": credential}
        t["mac"] = mac(key, "tap", [1, door, device, counter, credential_text(credential)])
        sent = time.monotonic()
        node.publish(f"{base}/tap", json.dumps(t).encode())
        return counter, sent

    def decision(tap_counter, within=3):
        nonlocal last_gateway
        d = node.message(f"{base}/decision", within, lambda m: m.get("tap") == tap_counter)
        if d is None:
            return None
        verify(key, "decision", [d["v"], d["door"], d["device"], d["counter"], d["tap"], d["allow"], d["reason"], d["unlock_ms"]], d["mac"])
        if d["counter"] <= last_gateway:
            fail(f"a decision's counter {d['counter']} is not above the last one taken ({last_gateway})")
        last_gateway = d["counter"]
        return d

    # An allowed card: the strike opens for unlock_ms.
    c, sent = tap({"card": args.allowed})
    d = decision(c)
    if d is None or not d["allow"] or d["unlock_ms"] <= 0 or not d["reason"].startswith("allow."):
        fail(f"the allowed card was not let in: {d}")
    step(f"allowed card let in: {d['reason']}, unlock {d['unlock_ms']} ms, answered in {(time.monotonic() - sent) * 1000:.0f} ms")

    # A card in lower case with colons is the same card (the MAC over its canonical form).
    lower = ":".join(args.allowed.lower()[i : i + 2] for i in range(0, len(args.allowed), 2))
    c, _ = tap({"card": lower})
    d = decision(c)
    if d is None or not d["allow"]:
        fail(f"the allowed card written {lower!r} was not let in: {d}")
    step(f"the same card written {lower} let in too")

    # A refused card, and a PIN nobody has: a deny, with unlock_ms 0.
    for cred in ({"card": args.refused}, {"pin": "0000"}):
        c, _ = tap(cred)
        d = decision(c)
        if d is None or d["allow"] or d["unlock_ms"] != 0 or not d["reason"].startswith("deny."):
            fail(f"{cred} was not refused as the page says: {d}")
        step(f"{list(cred)[0]} refused: {d['reason']}, unlock_ms 0")

    # A replayed tap (the same counter again) gets no answer.
    t = {"v": 1, "door": door, "device": device, "counter": c, "credential": {"card": args.allowed}}
    t["mac"] = mac(key, "tap", [1, door, device, c, credential_text(t["credential"])])
    node.publish(f"{base}/tap", json.dumps(t).encode())
    if node.message(f"{base}/decision", 1.5, lambda m: m.get("tap") == c) is not None:
        fail("a replayed tap was answered")
    step("a replayed tap got no answer")

    # The door's state, signed.
    counter += 1
    s = {"v": 1, "door": door, "device": device, "counter": counter, "contact": "closed", "locked": True, "held_open": False, "forced": False, "tamper": False}
    s["mac"] = mac(key, "state", [1, door, device, counter, "closed", True, False, False, False])
    node.publish(f"{base}/state", json.dumps(s).encode())
    step("door state sent")

    # A people counter in the room: two in. Its count comes back retained on the room's topic,
    # which the broker's read-only observer account reads (a counter's own account reads
    # nothing).
    sensor_status = f"{PREFIX}/device/{args.sensor}/status"
    sensor = Mqtt(args.host, args.port, args.sensor, sensor_status, b'{"v":1,"state":"offline"}',
                  args.sensor, broker_password(bytes.fromhex(args.sensor_key)))
    watcher = Mqtt(args.host, args.port, "python-watcher", None, None, "observer", args.observer_password)
    watcher.subscribe([f"{PREFIX}/room/{args.room}/occupancy"])
    sensor.publish(sensor_status, json.dumps({"v": 1, "state": "online", "heartbeat_s": 30}).encode(), retain=True)
    reading = {"v": 1, "device": args.sensor, "counter": (args.boot << 32) + 1, "reading": {"counter": {"in": 2, "out": 0}}}
    sensor.publish(f"{PREFIX}/sensor/{args.sensor}/reading", json.dumps(reading).encode())
    occ = watcher.message(f"{PREFIX}/room/{args.room}/occupancy", 10, lambda m: m.get("count", 0) >= 2)
    if occ is None:
        fail("the room's occupancy never showed the two people counted in")
    step(f"room {args.room}: {occ['count']} inside on basis {occ['basis']}")
    # The same reading again (a QoS 1 redelivery) counts nobody twice.
    sensor.publish(f"{PREFIX}/sensor/{args.sensor}/reading", json.dumps(reading).encode())
    if watcher.message(f"{PREFIX}/room/{args.room}/occupancy", 2, lambda m: m.get("count", 0) > occ["count"]) is not None:
        fail("a reading delivered twice was counted twice")
    step("a reading delivered twice counted once")

    # Clean stop: say offline (retained), then disconnect.
    for client, topic in ((sensor, sensor_status), (node, status_topic)):
        client.publish(topic, b'{"v":1,"state":"offline"}', retain=True)
        client.disconnect()
    watcher.disconnect()
    step("stopped cleanly")


if __name__ == "__main__":
    main()
