import CPlatform

/// The process's heap as glibc keeps it.
public enum HeapMemory {
    /// Gives free heap pages back to the kernel (`malloc_trim(0)`; glibc keeps them in its arenas
    /// otherwise). True when memory was released.
    public static func trim() -> Bool { edge_malloc_trim() == 1 }
}
