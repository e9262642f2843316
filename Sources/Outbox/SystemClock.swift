import CSQLite

/// Whether the kernel considers the system clock synchronised (NTP or a real-time clock).
enum SystemClock {
    static var isSynchronized: Bool { edge_clock_is_synchronized() != 0 }
}
