"""Upstream endpoints that misbehave on purpose.

``SlowBroker``: a minimal MQTT 3.1.1 broker (asyncio, in its own thread) that is only good for
being published to: CONNECT -> CONNACK, PUBLISH QoS 1 -> PUBACK after ``delay`` seconds,
PINGREQ -> PINGRESP, SUBSCRIBE -> SUBACK, DISCONNECT -> close. Packets of one connection are
handled one after the other, so with a delay of 50 ms it takes at most 20 messages a second and
TCP pushes back on the publisher: a slow consumer. It records every PUBLISH it received.

``SilentServer``: accepts TCP connections on a port and never sends a byte (a broker that takes
the connection and never answers CONNECT); what clients send is read and thrown away.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from .clients import Arrival


class SlowBroker:
    def __init__(self, port: int, delay: float = 0.05):
        self.port = port
        self.delay = delay                  # may be changed while running
        self.lock = threading.Lock()
        self.arrivals: list[Arrival] = []
        self.connections = 0
        self.errors: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"slow-broker-{port}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    def stop(self) -> None:
        """Closes the listener and every connection; returns once the port is free."""
        if not self._thread.is_alive():
            return

        async def shutdown():
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def snapshot(self) -> list[Arrival]:
        with self.lock:
            return list(self.arrivals)

    def __len__(self) -> int:
        with self.lock:
            return len(self.arrivals)

    @staticmethod
    async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        header = (await reader.readexactly(1))[0]
        length, multiplier = 0, 1
        for _ in range(4):
            byte = (await reader.readexactly(1))[0]
            length += (byte & 0x7F) * multiplier
            if byte & 0x80 == 0:
                break
            multiplier *= 128
        else:
            raise ValueError("malformed remaining length")
        return header, await reader.readexactly(length)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with self.lock:
            self.connections += 1
        try:
            while True:
                header, body = await self._read_packet(reader)
                kind = header >> 4
                if kind == 1:                                   # CONNECT
                    writer.write(bytes([0x20, 0x02, 0x00, 0x00]))  # CONNACK, accepted
                elif kind == 3:                                 # PUBLISH
                    qos = (header >> 1) & 0x03
                    topic_length = int.from_bytes(body[0:2], "big")
                    topic = body[2:2 + topic_length].decode("utf-8", "replace")
                    offset = 2 + topic_length
                    packet_id = None
                    if qos > 0:
                        packet_id = body[offset:offset + 2]
                        offset += 2
                    arrival = Arrival.make(topic, body[offset:])
                    with self.lock:
                        self.arrivals.append(arrival)
                    if qos == 1:
                        if self.delay > 0:
                            await asyncio.sleep(self.delay)
                        writer.write(bytes([0x40, 0x02]) + packet_id)   # PUBACK
                    elif qos == 2:
                        self.errors.append("QoS 2 publish received")
                        writer.write(bytes([0x50, 0x02]) + packet_id)   # PUBREC
                elif kind == 6:                                 # PUBREL (QoS 2)
                    writer.write(bytes([0x70, 0x02]) + body[0:2])
                elif kind == 8:                                 # SUBSCRIBE
                    count = 0
                    offset = 2
                    while offset < len(body):
                        n = int.from_bytes(body[offset:offset + 2], "big")
                        offset += 2 + n + 1
                        count += 1
                    writer.write(bytes([0x90, 2 + count]) + body[0:2] + bytes([0x01] * count))
                elif kind == 12:                                # PINGREQ
                    writer.write(bytes([0xD0, 0x00]))
                elif kind == 14:                                # DISCONNECT
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception as error:  # keep serving other connections; report it
            self.errors.append(f"{type(error).__name__}: {error}")
        finally:
            self._writers.discard(writer)
            writer.close()


class SilentServer:
    def __init__(self, port: int):
        self.port = port
        self.connections = 0
        self.received_bytes = 0
        self.first_bytes: list[bytes] = []    # what each connection sent first (its CONNECT)
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self._clients: list[socket.socket] = []
        self._first: dict[socket.socket, int] = {}
        self._thread = threading.Thread(target=self._serve, name=f"silent-{port}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
                conn.setblocking(False)
                self._clients.append(conn)
                self._first[conn] = len(self.first_bytes)
                self.first_bytes.append(b"")
                self.connections += 1
            except (socket.timeout, BlockingIOError):
                pass
            except OSError:
                break
            for conn in list(self._clients):
                try:
                    data = conn.recv(65536)
                    if data:
                        self.received_bytes += len(data)
                        index = self._first.get(conn)
                        if index is not None and len(self.first_bytes[index]) < 512:
                            self.first_bytes[index] += data[:512]
                    else:                       # the client closed: close too
                        conn.close()
                        self._clients.remove(conn)
                except BlockingIOError:
                    pass
                except OSError:
                    conn.close()
                    self._clients.remove(conn)

    def connections_from(self, marker: bytes) -> int:
        """Connections whose first bytes (the MQTT CONNECT, with the client id) contain ``marker``."""
        return sum(1 for first in list(self.first_bytes) if marker in first)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._clients:
            conn.close()
        self._listener.close()
        time.sleep(0.05)
