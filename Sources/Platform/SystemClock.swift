import CPlatform

/// Whether the kernel considers the system clock synchronised (NTP or a real-time clock). The
/// outbox ages events by the wall clock and must know whether it can be trusted.
public enum SystemClock {
    public static var isSynchronized: Bool { edge_clock_is_synchronized() != 0 }
}
