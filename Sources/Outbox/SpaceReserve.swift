import Foundation

/// Disk space set aside beside the database (`<path>-reserve`) so that, when the file system
/// fills, the outbox can still delete forwarded events and checkpoint its WAL.
///
/// In WAL mode even a DELETE appends pages to the WAL, and the WAL is only reused after a
/// checkpoint, which may have to grow the database file. On a file system with no space left
/// both fail, so forwarding would go on but nothing would ever be removed (and everything would
/// be sent again after a restart). The outbox therefore takes new events only while this file
/// is held; when a removal fails for lack of space it gives the file up, removes and
/// checkpoints, and takes new events again once the file can be set aside anew.
struct SpaceReserve {
    let path: String
    let bytes: Int64

    init(databasePath: String, bytes: Int64) {
        self.path = databasePath + "-reserve"
        self.bytes = bytes
    }

    /// Whether the reserve is in place, allocating it when missing. `false` when the file system
    /// does not have the space (the caller refuses new events until it has).
    ///
    /// - Parameter roomInFile: free pages inside the database (bytes), where new events go
    ///   without growing the file.
    func hold(roomInFile: Int64 = 0) -> Bool {
        guard bytes > 0 else { return true }
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int64, size >= bytes {
            return true
        }
        // Only with room to spare for new events besides it (on the file system or in the
        // file's free pages): taking it back the moment a removal freed that much would let
        // new events fill the disk again at once. And the WAL's frames need the file system's
        // space whatever the file holds: taking it back where that is all there is would make
        // every write fail, give it up, and take it back again.
        let directory = (path as NSString).deletingLastPathComponent
        if let free = (try? FileManager.default.attributesOfFileSystem(forPath: directory))?[.systemFreeSize] as? Int64,
            free < bytes || free - bytes < walRoom || free - bytes + roomInFile < bytes
        {
            return false
        }
        let fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        // Blocks really allocated (not a sparse file), so the space is ours until released.
        let rc = posix_fallocate(fd, 0, off_t(bytes))
        close(fd)
        if rc != 0 {
            unlink(path)
            return false
        }
        return true
    }

    /// File-system space a hold leaves beside the reserve for the WAL.
    var walRoom: Int64 { max(bytes / 4, 64 * 1024) }

    /// Whether the database file's own free pages can stand in for the reserve: new events that
    /// go there do not grow the file, so a checkpoint never needs the file system's space and the
    /// WAL's can always be given back. Twice the reserve besides what is about to be stored.
    func freePagesCanStandIn(roomInFile: Int64, incoming: Int64) -> Bool {
        bytes > 0 && roomInFile - incoming >= 2 * bytes
    }

    /// Gives the space back to the file system.
    func release() {
        guard bytes > 0 else { return }
        unlink(path)
    }
}
