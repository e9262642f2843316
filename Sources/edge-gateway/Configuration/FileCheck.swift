import Foundation
import SystemPackage

/// Whether a file the configuration names can be read, and if not, why in plain words: the
/// operator's next step differs between a typo in the path and a file the service user may not read.
enum FileCheck {
    /// The reason given for a path that does not exist.
    static let noSuchFile = "no such file"

    /// Nil when `path` can be opened for reading; else the reason (`no such file`,
    /// `permission denied`, `is a directory`, or the system's words for another errno).
    static func readProblem(_ path: String) -> String? {
        do {
            let descriptor = try FileDescriptor.open(FilePath(path), .readOnly)
            try? descriptor.close()
        } catch let errno as Errno {
            switch errno {
            case .noSuchFileOrDirectory: return noSuchFile
            case .permissionDenied: return "permission denied"
            case .notDirectory: return "a part of the path is not a directory"
            default: return errno.description.lowercased()
            }
        } catch {
            return "\(error)"
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return "is a directory"
        }
        return nil
    }

    /// Whether the directory at `path` exists and every user may create files in it (`o+w`, the
    /// sticky bit or not: a name not yet taken can be taken by anyone).
    static func writableByEveryone(directory path: String) -> Bool {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let permissions = attributes[.posixPermissions] as? Int
        else { return false }
        return permissions & 0o002 != 0
    }
}
