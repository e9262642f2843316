/// A configuration value that cannot be used, naming the key, the environment variable it came
/// from (if it did), and what is wrong with it.
struct ConfigurationError: Error, CustomStringConvertible {
    var key: String
    var problem: String
    /// The environment variable that set the value (`MQTT_PORT`), so the operator looks there and
    /// not in the file.
    var variable: String?

    init(key: String, problem: String, variable: String? = nil) {
        self.key = key
        self.problem = problem
        self.variable = variable
    }

    var description: String {
        "\(key)\(variable.map { " (from environment variable \($0))" } ?? ""): \(problem)"
    }
}

/// Several problems found at once, so an operator fixes them in one go: bad values and, from the
/// same run, the file's keys the gateway does not know (likely typos).
struct ConfigurationErrors: Error, CustomStringConvertible {
    var errors: [ConfigurationError]
    /// Keys in the file that the gateway does not read.
    var unknownKeys: [String] = []
    /// Warnings found in the same run (shown by `check-config` beside the errors).
    var warnings: [ConfigurationWarning] = []

    /// Bad values first, in reading order, then unknown keys.
    var all: [ConfigurationError] {
        errors + unknownKeys.map { ConfigurationError(key: $0, problem: "unknown key") }
    }

    var description: String {
        all.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// A setting that works but contradicts another one or turns a protection off: the daemon runs
/// with it (and logs it at start), `check-config` shows it, and `check-config --strict` fails on it.
struct ConfigurationWarning: CustomStringConvertible, Sendable {
    var key: String
    var problem: String

    var description: String { "\(key): \(problem)" }
}
