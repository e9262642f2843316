import Platform

/// The outbox's event log (`<path>-events`): where a new event is made durable before its ack,
/// so the database needs one commit (and one rewrite of the pages it touches) per
/// `store.eventLogSeconds` instead of one per group of events.
///
/// An append writes the records of one group at the end of the log and `fdatasync`s: about one
/// 4 KiB page per group, where a commit of the database writes every page the group touched (the
/// event's leaf, the dedup entry's leaf, one leaf of the dedup index per device), each a 4,120-byte
/// WAL frame. The database's own transaction stays open meanwhile; when it commits, the log is
/// emptied. After a crash the records of the current generation are put into the database again
/// (those it has already are recognised by their dedup entry).
///
/// The file is written full of zeros once, a page per write, so appends never allocate (no
/// `ENOSPC` and no file-system metadata to journal with each `fdatasync`). Layout: a header (`EGEVLOG1`, the generation) in the
/// first 4 KiB, then records, each `length | crc32(generation, body) | body`. A record of another
/// generation, a torn one or zeros end the log.
final class EventLog {
    static let magic: [UInt8] = Array("EGEVLOG1".utf8)
    static let dataStart: Int64 = 4096

    let path: String
    /// Bytes for records (the file is this plus the header).
    private(set) var capacity: Int64
    private let file: DurableFile
    private(set) var generation: UInt64 = 1
    private var tail: Int64 = EventLog.dataStart

    /// Bytes of records since the last reset.
    var usedBytes: Int64 { tail - Self.dataStart }
    var isEmpty: Bool { tail == Self.dataStart }

    init(path: String, capacity: Int64) throws {
        self.path = path
        self.capacity = capacity
        file = try DurableFile(path: path)
        let header = try file.read(count: 16, at: 0)
        if header.count == 16, Array(header[0..<8]) == Self.magic {
            generation = Self.uint64(header, at: 8)
        } else {
            try writeHeader()
        }
        let size = try file.size()
        do {
            try fill(from: size, to: Self.dataStart + capacity)
        } catch {
            // No room to grow it (a full disk): a log with room for records stays usable at its
            // size, so what it holds is recovered; one without is not used.
            let usable = ((try? file.size()) ?? size) - Self.dataStart
            guard usable >= 4096 else { throw error }
            self.capacity = usable
        }
    }

    /// Writes zeros from `size` up to `wanted` bytes and syncs them. One page per write: a file
    /// written in large writes is cached in large folios on current kernels (6.18 here, ext4), and
    /// an append then dirties, writes and counts the whole folio (1 MiB per 372-byte append was
    /// measured); a file written a page at a time costs a page per append.
    private func fill(from size: Int64, to wanted: Int64) throws {
        guard size < wanted else { return }
        let zeros = [UInt8](repeating: 0, count: 4096)
        var offset = max(size, Self.dataStart)
        while offset < wanted {
            let chunk = Int(min(Int64(zeros.count), wanted - offset))
            try file.write(chunk == zeros.count ? zeros : Array(zeros[0..<chunk]), at: offset)
            offset += Int64(chunk)
        }
        try file.syncData()
    }

    /// Gives the space of an empty log back to the file system (the disk filled up): only the
    /// header stays, and nothing fits until ``grow(to:)``.
    func shrink() throws {
        try file.truncate(to: Self.dataStart)
        capacity = 0
        tail = Self.dataStart
    }

    /// Gives back the space after the records (the disk filled while they wait to go into the
    /// database): the file ends at the page after the last record, and nothing more fits until the
    /// log is emptied and grown again. Returns whether anything was given back.
    func trimUnused() throws -> Bool {
        let end = (tail + 4095) / 4096 * 4096
        guard end < Self.dataStart + capacity else { return false }
        try file.truncate(to: end)
        capacity = end - Self.dataStart
        return true
    }

    /// Takes `newCapacity` bytes for records again (after ``shrink()``).
    func grow(to newCapacity: Int64) throws {
        let size = try file.size()
        do {
            try fill(from: size, to: Self.dataStart + newCapacity)
        } catch {
            try? file.truncate(to: Self.dataStart)
            throw error
        }
        capacity = newCapacity
        tail = Self.dataStart
    }

    /// The records of the current generation, in the order they were appended. Leaves the log's end
    /// after them, so the next append follows them.
    func recover() throws -> [(seq: Int64, record: OutboxRecord)] {
        let bytes = try file.read(count: Int(Self.dataStart + capacity), at: 0)
        let (entries, end) = Self.parse(bytes, generation: generation)
        tail = Int64(end)
        return entries
    }

    /// The current generation's records of the log at `path`, read without changing it (for
    /// `edge-gateway outbox stats` beside a running daemon); empty when there is no log.
    static func read(path: String) -> [(seq: Int64, record: OutboxRecord)] {
        guard let file = try? DurableFile(path: path, readOnly: true) else { return [] }
        defer { file.close() }
        guard let size = try? file.size(), size > dataStart, let bytes = try? file.read(count: Int(size), at: 0),
            bytes.count >= 16, Array(bytes[0..<8]) == magic
        else { return [] }
        return parse(bytes, generation: uint64(bytes, at: 8)).entries
    }

    private static func parse(_ bytes: [UInt8], generation: UInt64) -> (entries: [(seq: Int64, record: OutboxRecord)], end: Int) {
        var entries: [(seq: Int64, record: OutboxRecord)] = []
        var offset = Int(dataStart)
        while offset + 8 <= bytes.count {
            let length = Int(uint32(bytes, at: offset))
            let crc = uint32(bytes, at: offset + 4)
            let bodyStart = offset + 8
            guard length > 0, length <= bytes.count - bodyStart else { break }
            let body = bytes[bodyStart..<(bodyStart + length)]
            guard checksum(generation: generation, body: body) == crc, let entry = decode(body) else { break }
            entries.append(entry)
            offset = bodyStart + length
        }
        return (entries, offset)
    }

    /// Bytes `entries` take in the log.
    static func size(of entries: [(seq: Int64, record: OutboxRecord)]) -> Int64 {
        entries.reduce(0) { $0 + Int64(8 + encodedSize($1.record)) }
    }

    /// Whether `bytes` more fit before the log must be emptied.
    func fits(_ bytes: Int64) -> Bool { tail + bytes <= Self.dataStart + capacity }

    /// Appends the records and makes them durable. The caller checked ``fits(_:)``.
    @discardableResult
    func append(_ entries: [(seq: Int64, record: OutboxRecord)]) throws -> Int64 {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(Self.size(of: entries)))
        for (seq, record) in entries {
            var body: [UInt8] = []
            body.reserveCapacity(Self.encodedSize(record))
            Self.encode(seq: seq, record: record, into: &body)
            Self.put(UInt32(body.count), into: &bytes)
            Self.put(Self.checksum(generation: generation, body: body[...]), into: &bytes)
            bytes.append(contentsOf: body)
        }
        try file.write(bytes, at: tail)
        try file.syncData()
        tail += Int64(bytes.count)
        return Int64(bytes.count)
    }

    /// Empties the log once the database holds everything in it: the next generation starts. The
    /// header goes to the disk with the next append's `fdatasync`; if a crash comes first, the old
    /// generation's records are all in the database already and are recognised as such.
    func reset() throws {
        generation &+= 1
        try writeHeader()
        tail = Self.dataStart
    }

    func close() { file.close() }

    private func writeHeader() throws {
        var header = Self.magic
        Self.put(generation, into: &header)
        try file.write(header, at: 0)
    }

    // MARK: - Encoding

    private static func encodedSize(_ record: OutboxRecord) -> Int {
        16 + 4 + record.device.utf8.count + 4 + record.eventID.utf8.count + 4 + record.key.utf8.count + 1
            + (record.topic.map { 4 + $0.utf8.count } ?? 0) + 4 + record.payload.count
    }

    private static func encode(seq: Int64, record: OutboxRecord, into body: inout [UInt8]) {
        put(UInt64(bitPattern: seq), into: &body)
        put(UInt64(bitPattern: record.receivedAt), into: &body)
        for text in [record.device, record.eventID, record.key] {
            put(UInt32(text.utf8.count), into: &body)
            body.append(contentsOf: text.utf8)
        }
        if let topic = record.topic {
            body.append(1)
            put(UInt32(topic.utf8.count), into: &body)
            body.append(contentsOf: topic.utf8)
        } else {
            body.append(0)
        }
        put(UInt32(record.payload.count), into: &body)
        body.append(contentsOf: record.payload)
    }

    private static func decode(_ body: ArraySlice<UInt8>) -> (seq: Int64, record: OutboxRecord)? {
        var offset = body.startIndex
        func take(_ count: Int) -> ArraySlice<UInt8>? {
            guard count >= 0, body.endIndex - offset >= count else { return nil }
            defer { offset += count }
            return body[offset..<(offset + count)]
        }
        func text() -> String? {
            guard let length = take(4).map({ Int(uint32(Array($0), at: 0)) }), let bytes = take(length) else { return nil }
            return String(decoding: bytes, as: UTF8.self)
        }
        guard let seq = take(8).map({ Int64(bitPattern: uint64(Array($0), at: 0)) }),
            let receivedAt = take(8).map({ Int64(bitPattern: uint64(Array($0), at: 0)) }),
            let device = text(), let eventID = text(), let key = text(), let flag = take(1)?.first
        else { return nil }
        var topic: String?
        if flag == 1 {
            guard let value = text() else { return nil }
            topic = value
        }
        guard let length = take(4).map({ Int(uint32(Array($0), at: 0)) }), let payload = take(length), offset == body.endIndex
        else { return nil }
        return (seq, OutboxRecord(device: device, eventID: eventID, key: key, receivedAt: receivedAt, payload: Array(payload), topic: topic))
    }

    private static func put(_ value: UInt32, into bytes: inout [UInt8]) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    private static func put(_ value: UInt64, into bytes: inout [UInt8]) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    private static func uint32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << UInt32(8 * $1) }
    }

    private static func uint64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << UInt64(8 * $1) }
    }

    // MARK: - CRC-32 (IEEE 802.3)

    private static let crcTable: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        return crc
    }

    static func checksum(generation: UInt64, body: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        var prefix: [UInt8] = []
        put(generation, into: &prefix)
        for byte in prefix { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        for byte in body { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
