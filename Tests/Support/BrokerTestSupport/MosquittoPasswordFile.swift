import Foundation

/// A Mosquitto `password_file` with one user, made with `mosquitto_passwd`.
public enum MosquittoPasswordFile {
    public static let executable = "/usr/bin/mosquitto_passwd"

    public static func make(user: String, password: String, in directory: URL) async throws -> URL {
        let file = directory.appendingPathComponent("passwords")
        try await Tool.run(executable, ["-b", "-c", file.path, user, password], in: directory)
        return file
    }
}
