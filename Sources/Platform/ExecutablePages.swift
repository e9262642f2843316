import CPlatform
import Glibc

/// The pages of the daemon's own executable file that the kernel keeps mapped for it.
///
/// Start-up runs code and reads data that idle never touches again (the configuration reader,
/// argument parsing, ICU's tables, the services' set-up): once mapped, those pages stay in the
/// process's resident set (and in its PSS) for the life of the process, and mapped pages of an
/// executable are the last the kernel reclaims. Handing them back once start-up is over leaves
/// mapped what the daemon goes on running, which faults back in from the file.
public enum ExecutablePages {
    /// What one release did: the executable's resident kB around it.
    public struct Release: Sendable, Equatable {
        public let residentBeforeKB: Int
        public let residentAfterKB: Int
    }

    /// Why a release did not happen.
    public struct ReleaseError: Error, CustomStringConvertible {
        /// The errno of the failed call (`EINVAL`: a kernel before 5.4, without `MADV_PAGEOUT`).
        public let code: Int32
        public var description: String {
            code == EINVAL ? "the kernel has no MADV_PAGEOUT (Linux 5.4 or later is needed)" : "madvise failed (errno \(code))"
        }
    }

    /// Advises the kernel to page out every mapping of the executable (`madvise(MADV_PAGEOUT)`).
    /// Never loses content: pages the process wrote are anonymous and stay (there is no swap to
    /// move them to); clean pages of the file are simply no longer mapped until they are used.
    /// A blocking call of a few milliseconds (it reads `/proc/self/smaps` twice): call it off the
    /// cooperative pool.
    ///
    /// ```swift
    /// let release = try ExecutablePages.release()
    /// print("\(release.residentBeforeKB) kB -> \(release.residentAfterKB) kB")
    /// ```
    public static func release() throws(ReleaseError) -> Release {
        var before = -1
        var after = -1
        let result = edge_release_executable_pages(&before, &after)
        guard result == 0 else { throw ReleaseError(code: -result) }
        return Release(residentBeforeKB: before, residentAfterKB: after)
    }
}
