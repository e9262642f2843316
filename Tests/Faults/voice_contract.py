"""Voice contract check from outside (CONTRACTS.md §1 audio and responses, §2 upstream, §3 the ML
service, §4 the user service), in another language than the daemon: Python with Debian's
paho-mqtt (the device and the upstream consumer), grpcio (the ML service, its stubs written here
from the proto's method names, messages from Debian's protoc) and http.server (the user service).

    scripts/contract-voice [--gateway PATH] [--keep]

The device speaks PCM (pcm_s16le, 16 kHz mono) and the gateway is configured with
``ml.codec: pcm_s16le``, so the ML service must receive the device's bytes unchanged. Checked:
the ML service gets AudioConfig first, then every chunk in order; AnalyzeIntent carries the final
transcript and the user; the device gets TRANSCRIPT_PARTIAL, then DIALOG_RESPONSE with the
contract's envelope and payload; a DialogCompleted event reaches the upstream broker with the
§2 envelope and key = the user id; malformed audio gets an ERROR with code and message; after
3,000 hostile audio messages (garbage, truncated frames, bad JSON, oversized, unknown sessions,
session floods past the limits) the daemon is still up and answers a valid dialog.
Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import paho.mqtt.client as mqtt

from .procs import Gateway, HarnessError, Mosquitto, Sandbox, wait_until

ROOT = Path(__file__).resolve().parents[2]


def load_messages(directory: Path):
    """ml_pb2 from Sources/MLLink/Protos/edge/ml/v1/ml.proto, made with Debian's protoc."""
    subprocess.run(["protoc", f"--proto_path={ROOT / 'Sources/MLLink/Protos'}", f"--python_out={directory}", "edge/ml/v1/ml.proto"], check=True)
    sys.path.insert(0, str(directory / "edge" / "ml" / "v1"))
    import ml_pb2  # noqa: E402
    return ml_pb2


class MLService:
    """edge.ml.v1.MLService: a partial every 10 chunks, a final transcript at the end of the stream."""

    TRANSCRIPT = "switch on the hall light"

    def __init__(self, pb):
        self.pb = pb
        self.lock = threading.Lock()
        self.streams: list[dict] = []
        self.intents: list = []
        handlers = {
            "AnalyzeIntent": grpc.unary_unary_rpc_method_handler(
                self.analyze, request_deserializer=pb.IntentRequest.FromString,
                response_serializer=pb.IntentResponse.SerializeToString),
            "TranscribeStream": grpc.stream_stream_rpc_method_handler(
                self.transcribe, request_deserializer=pb.AudioChunk.FromString,
                response_serializer=pb.TranscriptionResult.SerializeToString),
        }
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("edge.ml.v1.MLService", handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def analyze(self, request, context):
        with self.lock:
            self.intents.append(request)
        return self.pb.IntentResponse(intent="lights.on", confidence=0.5, entities={"room": "hall"}, reply_text="Done")

    def transcribe(self, requests, context):
        first = next(requests)
        if first.WhichOneof("kind") != "config":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "config first")
        stream = {"config": first.config, "chunks": [], "kinds": []}
        for chunk in requests:
            stream["kinds"].append(chunk.WhichOneof("kind"))
            stream["chunks"].append(chunk.data)
            if len(stream["chunks"]) % 10 == 0:
                yield self.pb.TranscriptionResult(text=f"partial {len(stream['chunks'])}", is_final=False, confidence=0.3)
        with self.lock:
            self.streams.append(stream)
        yield self.pb.TranscriptionResult(text=self.TRANSCRIPT, is_final=True, confidence=0.9)


class UserService(BaseHTTPRequestHandler):
    USERS = {"u-py": {"id": "u-py", "name": "Py", "status": "active", "blocked": False, "deviceQuota": 3, "deviceCount": 1}}

    def do_GET(self):
        user = self.USERS.get(self.path.removeprefix("/api/users/"))
        body = json.dumps(user or {"error": "not found"}).encode()
        self.send_response(200 if user else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Listener:
    """An MQTT subscriber that keeps (topic, JSON) of every message."""

    def __init__(self, port: int, topic: str, name: str):
        self.messages: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(client_id=name, clean_session=True, protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, u, f, rc: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise HarnessError(f"could not subscribe to {topic}")

    def on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append((message.topic, json.loads(message.payload)))

    def snapshot(self):
        with self.lock:
            return list(self.messages)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default=os.environ.get("EDGE_GATEWAY_BIN", str(ROOT / ".build/debug/edge-gateway")))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)

    failures: list[str] = []

    def check(condition: bool, what: str) -> None:
        print(("  ok    " if condition else "  FAIL  ") + what)
        if not condition:
            failures.append(what)

    sandbox = Sandbox(Path(tempfile.gettempdir()), "voice-contract")
    try:
        pb = load_messages(sandbox.mkdir("pb"))
        ml = MLService(pb)
        sandbox.on_close(lambda: ml.server.stop(0))
        users = ThreadingHTTPServer(("127.0.0.1", 0), UserService)
        threading.Thread(target=users.serve_forever, daemon=True).start()
        sandbox.on_close(users.shutdown)
        device_broker = Mosquitto(sandbox, "device")
        device_broker.start()
        upstream_broker = Mosquitto(sandbox, "upstream")
        upstream_broker.start()
        upstream = Listener(upstream_broker.port, "hubs/#", "contract-upstream")
        sandbox.on_close(upstream.client.loop_stop)
        gateway = Gateway(sandbox, args.gateway, device_broker.port, upstream_broker.port, {
            "ml.endpoints": f"127.0.0.1:{ml.port}",
            "ml.codec": "pcm_s16le",
            "users.baseUrl": f"http://127.0.0.1:{users.server_address[1]}",
        })
        gateway.start()
        sandbox.on_close(gateway.kill)

        device_id = "py-dev-1"
        responses = Listener(device_broker.port, f"device/{device_id}/response", "contract-device-listener")
        sandbox.on_close(responses.client.loop_stop)
        device = mqtt.Client(client_id="contract-device", clean_session=True, protocol=mqtt.MQTTv311)
        device.connect("127.0.0.1", device_broker.port)
        device.loop_start()
        sandbox.on_close(device.loop_stop)

        session = uuid.uuid4()
        frames = []
        for index in range(50):
            samples = [int(8000 * math.sin(2 * math.pi * 220 * (index * 320 + i) / 16000)) for i in range(320)]
            frames.append(b"".join(s.to_bytes(2, "little", signed=True) for s in samples))
        start = {"session": str(session), "codec": "pcm_s16le", "sampleRate": 16000, "channels": 1,
                 "language": "de-DE", "userId": "u-py"}
        topic = f"device/{device_id}/audio"
        device.publish(topic, b"\x01" + json.dumps(start).encode(), qos=1).wait_for_publish()
        for index, frame in enumerate(frames):
            device.publish(topic, b"\x02" + session.bytes + index.to_bytes(4, "big") + frame, qos=1).wait_for_publish()
        device.publish(topic, b"\x03" + json.dumps({"session": str(session), "lastSeq": 49}).encode(), qos=1).wait_for_publish()

        print("voice contract (device -> gateway -> ML service -> device, and upstream):")
        wait_until(lambda: any(m["type"] == "DIALOG_RESPONSE" for _, m in responses.snapshot()), 20, "a DIALOG_RESPONSE")
        received = [m for _, m in responses.snapshot()]
        types = [m.get("type") for m in received]
        check(types[-1] == "DIALOG_RESPONSE" and "TRANSCRIPT_PARTIAL" in types[:-1],
              f"device: TRANSCRIPT_PARTIAL then DIALOG_RESPONSE on device/{{id}}/response ({types})")
        check(all(set(m) == {"messageId", "timestamp", "type", "payload"} for m in received),
              f"every response has the envelope messageId, timestamp, type, payload ({len(received)} responses)")
        check(all(isinstance(m["timestamp"], int) and abs(m["timestamp"] / 1000 - time.time()) < 60 for m in received),
              "every timestamp is ms since the epoch")
        check(all(str(uuid.UUID(m["messageId"])) == m["messageId"].lower() for m in received), "every messageId is a UUID")
        check(len({m["messageId"] for m in received}) == len(received), "messageIds are unique")
        answer = received[-1]["payload"]
        check({"session", "transcript", "intent", "confidence", "entities", "replyText"} <= set(answer),
              f"DIALOG_RESPONSE payload fields {sorted(answer)}")
        check(answer.get("session") == str(session), "DIALOG_RESPONSE session")
        check(answer.get("transcript") == MLService.TRANSCRIPT, "DIALOG_RESPONSE transcript")
        check(answer.get("intent") == "lights.on" and abs(answer.get("confidence", 0) - 0.5) < 1e-6,
              "DIALOG_RESPONSE intent and confidence")
        check(answer.get("entities") == {"room": "hall"} and answer.get("replyText") == "Done",
              "DIALOG_RESPONSE entities and replyText")

        stream = ml.streams[0] if ml.streams else None
        check(stream is not None, "ML service: one TranscribeStream")
        if stream:
            config = stream["config"]
            check((config.codec, config.sample_rate, config.channels, config.language, config.device_id, config.session_id)
                  == ("pcm_s16le", 16000, 1, "de-DE", device_id, str(session)),
                  f"ML service: AudioConfig first ({config.codec}, {config.sample_rate}, {config.language}, {config.session_id})")
            check(set(stream["kinds"]) == {"data"} and stream["chunks"] == frames,
                  f"ML service: then the device's PCM, unchanged and in order ({len(stream['chunks'])} chunks)")
        intent = ml.intents[0] if ml.intents else None
        check(intent is not None and intent.text == MLService.TRANSCRIPT and intent.user_id == "u-py"
              and intent.device_id == device_id, "ML service: AnalyzeIntent with the transcript, user and device")

        wait_until(lambda: any(m.get("type") == "DialogCompleted" for _, m in upstream.snapshot()), 20, "DialogCompleted upstream")
        topic, event = next((t, m) for t, m in upstream.snapshot() if m.get("type") == "DialogCompleted")
        check(set(event) == {"eventId", "hubId", "deviceId", "type", "key", "timestamp", "receivedAt", "data"},
              f"upstream: §2 envelope fields {sorted(event)}")
        check(event["key"] == "u-py" and event["deviceId"] == device_id and topic == f"hubs/faults/events/{device_id}",
              f"upstream: DialogCompleted keyed by the user, on {topic}")
        check(event["data"].get("transcript") == MLService.TRANSCRIPT and event["data"].get("intent") == "lights.on",
              "upstream: DialogCompleted carries transcript and intent")

        device.publish(topic := f"device/{device_id}/audio", b"\x02\x00\x01", qos=1).wait_for_publish()
        wait_until(lambda: any(m["type"] == "ERROR" for _, m in responses.snapshot()), 10, "an ERROR")
        error = next(m for _, m in responses.snapshot() if m["type"] == "ERROR")["payload"]
        check(isinstance(error.get("code"), str) and isinstance(error.get("message"), str) and error["message"],
              f"malformed audio: ERROR with code and message ({error.get('code')}: {error.get('message')})")

        # Hostile audio: thousands of broken, oversized, out-of-place and limit-breaking messages,
        # then the daemon must still be up and answer a valid dialog.
        import random
        rng = random.Random(2026)
        hostile = 0
        for index in range(3000):
            kind = rng.randrange(8)
            target = f"device/{device_id}/audio" if rng.random() < 0.8 else f"device/h{rng.randrange(5)}/audio"
            if kind == 0:
                payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
            elif kind == 1:
                payload = b"\x02" + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 21)))
            elif kind == 2:
                payload = b"\x01" + rng.choice([b"{", b"[]", b'{"session":"x"}', b'{"session":"%s","codec":"opus","sampleRate":7,"channels":1,"language":"x"}' % str(uuid.uuid4()).encode(), bytes(rng.randrange(256) for _ in range(40))])
            elif kind == 3:
                payload = b"\x03" + rng.choice([b"", b"{}", b'{"session":"%s","lastSeq":-1}' % str(uuid.uuid4()).encode()])
            elif kind == 4:
                payload = b"\x02" + uuid.uuid4().bytes + rng.randrange(2**32).to_bytes(4, "big") + b"\x00" * rng.randrange(0, 500)
            elif kind == 5:
                payload = b"\x01" + json.dumps({**start, "session": str(uuid.uuid4())}).encode()   # new sessions: limits
            elif kind == 6:
                payload = b"\x02" + b"\x00" * 40000                                               # over the size limit
            else:
                payload = b"\x01" + json.dumps({**start, "session": str(uuid.uuid4()), "codec": "pcm_s16le", "sampleRate": 44100}).encode()
            device.publish(target, payload, qos=0)
            hostile += 1
        time.sleep(2)
        check(gateway.running, f"the daemon is up after {hostile} hostile audio messages")
        # Sessions opened by the flood time out (dialog.sessionTimeoutMs); then a valid dialog goes through.
        after = uuid.uuid4()
        def valid_dialog_answered() -> bool:
            return any(m["type"] == "DIALOG_RESPONSE" and m["payload"].get("session") == str(after) for _, m in responses.snapshot())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not valid_dialog_answered():
            after = uuid.uuid4()
            device.publish(topic, b"\x01" + json.dumps({**start, "session": str(after)}).encode(), qos=1).wait_for_publish()
            for index, frame in enumerate(frames[:10]):
                device.publish(topic, b"\x02" + after.bytes + index.to_bytes(4, "big") + frame, qos=1).wait_for_publish()
            device.publish(topic, b"\x03" + json.dumps({"session": str(after), "lastSeq": 9}).encode(), qos=1).wait_for_publish()
            time.sleep(1.5)
        check(valid_dialog_answered(), "a valid dialog is answered after the hostile audio")
        errors = [m["payload"] for _, m in responses.snapshot() if m["type"] == "ERROR"]
        check(all(isinstance(e.get("code"), str) and e.get("message") for e in errors),
              f"every ERROR has a code and a message ({len(errors)} ERRORs, codes {sorted({e.get('code') for e in errors})})")
    except HarnessError as error:
        failures.append(str(error))
        print(f"  FAIL  {error}")
    finally:
        sandbox.close(keep=args.keep)
    print("PASS" if not failures else f"FAIL ({len(failures)})")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
