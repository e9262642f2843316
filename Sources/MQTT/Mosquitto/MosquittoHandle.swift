import CMosquitto
import Foundation
import Synchronization

/// libmosquitto is initialised once per process, before the first handle.
private let mosquittoLibrary: Void = {
    mosquitto_lib_init()
}()

/// What a handle's C callbacks report, on the network thread.
protocol MosquittoDelegate: AnyObject {
    func mosquittoDidConnect(resultCode: Int32)
    func mosquittoDidDisconnect(resultCode: Int32)
    func mosquittoDidSubscribe(messageID: Int32, grantedQoS: [Int32])
    func mosquittoDidPublish(messageID: Int32)
    func mosquittoDidReceive(_ message: MQTTMessage)
}

/// Owns one `struct mosquitto *`. Created per connection attempt so that nothing libmosquitto
/// queued on a dead connection is replayed out of order on the next one: the outbox is the only
/// queue. The delegate is passed to the C callbacks as the userdata pointer, unretained; the
/// delegate outlives the handle (the client destroys the handle before it goes away).
final class MosquittoHandle {
    let pointer: OpaquePointer
    /// Wakes ``loop(timeoutMs:)`` when another thread queued a packet (-1 if it could not be made:
    /// the loop then falls back on `mosquitto_loop`).
    private let wakeup: Int32
    /// Whether a wake-up is signalled and not yet drained, so a burst of publishes costs one write.
    private let wakeupPending = Atomic<Bool>(false)
    /// Connected to a Unix domain socket: no TCP options (`TCP_NODELAY`, corking) apply.
    private let unixSocket: Bool

    private init(pointer: OpaquePointer, unixSocket: Bool) {
        self.pointer = pointer
        self.unixSocket = unixSocket
        self.wakeup = edge_wakeup_open()
    }

    deinit {
        mosquitto_destroy(pointer)
        if wakeup >= 0 { close(wakeup) }
    }

    static func describe(_ rc: Int32) -> String {
        if rc == MOSQ_ERR_ERRNO.rawValue {
            return String(cString: strerror(errno))
        }
        return String(cString: mosquitto_strerror(rc))
    }

    static func connackDescription(_ rc: Int32) -> String {
        String(cString: mosquitto_connack_string(rc))
    }

    /// Creates a handle with callbacks wired to `delegate` and options from `configuration`, for a
    /// connection to `address`.
    static func make(configuration: MQTTClientConfiguration, address: MQTTBrokerAddress, delegate: MQTTClient) throws(MQTTError) -> MosquittoHandle {
        _ = mosquittoLibrary
        let context = Unmanaged.passUnretained(delegate).toOpaque()
        guard let raw = mosquitto_new(configuration.clientID, configuration.cleanSession, context) else {
            throw MQTTError(.library(MOSQ_ERR_NOMEM.rawValue), "mosquitto_new failed: \(String(cString: strerror(errno)))")
        }
        let handle = MosquittoHandle(pointer: raw, unixSocket: address.isUnixSocket)
        try handle.check(mosquitto_int_option(raw, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311), "protocol version")
        if !address.isUnixSocket {
            // Acks and PUBACKs are small packets sent one at a time: without TCP_NODELAY, Nagle
            // holds each one back until the previous is acknowledged, and a device waits for the
            // peer's delayed ACK (20–40 ms) for every ack at low rates.
            try handle.check(mosquitto_int_option(raw, MOSQ_OPT_TCP_NODELAY, 1), "TCP_NODELAY")
        }
        try handle.check(
            mosquitto_max_inflight_messages_set(raw, UInt32(max(configuration.maxInflightMessages, 1))), "max inflight")
        // Publishes come from other threads; they wake this handle's loop through its socket pair.
        try handle.check(mosquitto_threaded_set(raw, true), "threaded")
        if let username = configuration.username, !username.isEmpty {
            try handle.check(mosquitto_username_pw_set(raw, username, configuration.password), "username/password")
        }
        if let tls = configuration.tls {
            try handle.check(
                mosquitto_tls_set(raw, tls.caFile, nil, tls.certFile, tls.keyFile, nil), "TLS files")
            if tls.insecure {
                // Explicitly asked for (upstream.tls.insecure, warned about at start): no chain
                // and no host name check. Otherwise both are checked against caFile.
                try handle.check(mosquitto_tls_opts_set(raw, 0, nil, nil), "TLS verification off")
                try handle.check(mosquitto_tls_insecure_set(raw, true), "TLS host name check off")
            }
        }
        mosquitto_connect_callback_set(raw) { _, userdata, rc in
            client(from: userdata)?.mosquittoDidConnect(resultCode: rc)
        }
        mosquitto_disconnect_callback_set(raw) { _, userdata, rc in
            client(from: userdata)?.mosquittoDidDisconnect(resultCode: rc)
        }
        mosquitto_subscribe_callback_set(raw) { _, userdata, mid, count, granted in
            let qos = (0..<Int(count)).map { granted?[$0] ?? 0x80 }
            client(from: userdata)?.mosquittoDidSubscribe(messageID: mid, grantedQoS: qos)
        }
        mosquitto_publish_callback_set(raw) { _, userdata, mid in
            client(from: userdata)?.mosquittoDidPublish(messageID: mid)
        }
        mosquitto_message_callback_set(raw) { _, userdata, message in
            guard let message else { return }
            let m = message.pointee
            let topic: [UInt8] = m.topic.map { Array(UnsafeBufferPointer(start: UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), count: strlen($0))) } ?? []
            let payload: [UInt8] = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(m.payloadlen))) } ?? []
            client(from: userdata)?.mosquittoDidReceive(MQTTMessage(topic: topic, payload: payload, qos: m.qos))
        }
        return handle
    }

    private func check(_ rc: Int32, _ what: String) throws(MQTTError) {
        guard rc == MOSQ_ERR_SUCCESS.rawValue else {
            throw MQTTError(.library(rc), "mosquitto \(what): \(Self.describe(rc))")
        }
    }

    /// Starts a non-blocking connect; the loop completes it. A Unix domain socket is libmosquitto's
    /// host = path, port = 0, which is how ``MQTTBrokerAddress`` holds one.
    func connectAsync(to address: MQTTBrokerAddress, keepAlive: Int) -> Int32 {
        mosquitto_connect_async(pointer, address.host, Int32(address.port), Int32(keepAlive))
    }

    /// One iteration of the network loop: wait for the socket or a wake-up, read every packet
    /// that is there, write what is queued, keep the connection alive.
    ///
    /// `mosquitto_loop` is not used on plain TCP: other threads' publishes each write a byte to
    /// its internal socket pair, and it reads one byte per call, so under load it spins once per
    /// packet (select, read) and reads one packet per wake-up. Here a burst of publishes costs
    /// one wake-up and one write pass, and a burst of incoming packets one read pass
    /// (BENCHMARKS.md, "network loop"). TLS keeps `mosquitto_loop`, which also drains what the
    /// TLS layer has buffered.
    func loop(timeoutMs: Int32) -> Int32 {
        guard wakeup >= 0, !usesTLS else { return mosquitto_loop(pointer, timeoutMs, 1) }
        let socket = mosquitto_socket(pointer)
        guard socket >= 0 else { return MOSQ_ERR_NO_CONN.rawValue }
        let socketEvents = Int16(POLLIN) | (mosquitto_want_write(pointer) ? Int16(POLLOUT) : 0)
        var fds = [pollfd(fd: socket, events: socketEvents, revents: 0), pollfd(fd: wakeup, events: Int16(POLLIN), revents: 0)]
        if poll(&fds, 2, timeoutMs) < 0, errno != EINTR { return MOSQ_ERR_ERRNO.rawValue }
        if fds[1].revents & Int16(POLLIN) != 0 {
            // Drain, then clear: a publish that still saw the flag set queued its packet before
            // this point, so the write below sends it; one after this point signals again.
            // (Clearing first would let a drain swallow a signal whose flag stays set, and every
            // later wake-up would be skipped.)
            edge_wakeup_drain(wakeup)
            wakeupPending.store(false, ordering: .sequentiallyConsistent)
        }
        if fds[0].revents & (Int16(POLLIN) | Int16(POLLERR) | Int16(POLLHUP)) != 0 {
            // Everything that has arrived, a bounded number of packets at a time.
            for _ in 0..<256 {
                let rc = mosquitto_loop_read(pointer, 1)
                if rc != MOSQ_ERR_SUCCESS.rawValue { return rc }
                var more = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
                if poll(&more, 1, 0) <= 0 { break }
            }
        }
        if mosquitto_want_write(pointer) {
            // One pass writes every queued packet, one write each: corked, they leave together.
            // (A Unix domain socket has no segments to merge: each write is queued to the reader.)
            if !unixSocket { edge_tcp_cork(socket, 1) }
            let rc = mosquitto_loop_write(pointer, 1)
            if !unixSocket { edge_tcp_cork(socket, 0) }
            if rc != MOSQ_ERR_SUCCESS.rawValue { return rc }
        }
        return mosquitto_loop_misc(pointer)
    }

    /// Tells the network thread that a packet is queued (called after a publish from any thread).
    private func wake() {
        guard wakeup >= 0 else { return }
        if !wakeupPending.exchange(true, ordering: .sequentiallyConsistent) {
            edge_wakeup_signal(wakeup)
        }
    }

    /// Writes what is queued and keeps the connection alive, without reading: used while ingress
    /// drains at shutdown so no new messages are taken (and PUBACKed) that could not be stored.
    func loopWithoutReading(timeoutMs: Int32) -> Int32 {
        let socket = mosquitto_socket(pointer)
        guard socket >= 0 else { return MOSQ_ERR_NO_CONN.rawValue }
        if mosquitto_want_write(pointer) {
            var fds = pollfd(fd: socket, events: Int16(POLLOUT), revents: 0)
            _ = poll(&fds, 1, timeoutMs)
            let rc = mosquitto_loop_write(pointer, 1)
            if rc != MOSQ_ERR_SUCCESS.rawValue { return rc }
        } else {
            usleep(UInt32(timeoutMs) * 1000)
        }
        return mosquitto_loop_misc(pointer)
    }

    /// Ends a connection whose reading was paused without losing anything either way.
    ///
    /// Closing a TCP socket that still has unread data makes the kernel send RST, and an RST
    /// makes the broker drop what it had received from us but not yet read: the last acks. So:
    /// write out everything queued, half-close (FIN), then read and discard raw bytes until the
    /// broker closes too. Discarded bytes were never parsed by libmosquitto, so they were never
    /// PUBACKed: the broker keeps those messages for our persistent session and sends them again
    /// on the next connection.
    func closeWithoutReading(deadline: ContinuousClock.Instant) {
        while mosquitto_want_write(pointer), ContinuousClock.now < deadline {
            if loopWithoutReading(timeoutMs: 20) != Self.success { return }
        }
        let socket = mosquitto_socket(pointer)
        guard socket >= 0 else { return }
        _ = Glibc.shutdown(socket, Int32(SHUT_WR))
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while ContinuousClock.now < deadline {
            var fds = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            guard poll(&fds, 1, 50) >= 0 else { return }
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count == 0 { return }  // the broker closed its side: a clean end
            if count < 0, errno != EAGAIN, errno != EWOULDBLOCK, errno != EINTR { return }
        }
    }

    /// Whether the connection is TLS (raw socket tricks do not apply then).
    var usesTLS: Bool {
        mosquitto_ssl_get(pointer) != nil
    }

    func subscribe(_ topic: String, qos: Int32) -> (rc: Int32, mid: Int32) {
        var mid: Int32 = 0
        let rc = mosquitto_subscribe(pointer, &mid, topic, qos)
        return (rc, mid)
    }

    func publish(topic: String, payload: [UInt8], qos: Int32, retain: Bool) -> (rc: Int32, mid: Int32) {
        var mid: Int32 = 0
        let rc = payload.withUnsafeBytes { buffer in
            mosquitto_publish(pointer, &mid, topic, Int32(buffer.count), buffer.baseAddress, qos, retain)
        }
        if rc == MOSQ_ERR_SUCCESS.rawValue { wake() }
        return (rc, mid)
    }

    func disconnect() -> Int32 {
        let rc = mosquitto_disconnect(pointer)
        wake()
        return rc
    }

    static let success = MOSQ_ERR_SUCCESS.rawValue
    static let noConnection = MOSQ_ERR_NO_CONN.rawValue
    static let payloadTooLarge = MOSQ_ERR_PAYLOAD_SIZE.rawValue
    static let invalid = MOSQ_ERR_INVAL.rawValue
}

/// Recovers the client from the userdata pointer given to `mosquitto_new`.
private func client(from userdata: UnsafeMutableRawPointer?) -> MQTTClient? {
    guard let userdata else { return nil }
    return Unmanaged<MQTTClient>.fromOpaque(userdata).takeUnretainedValue()
}
