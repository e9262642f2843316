/// A configuration value that cannot be used, naming the key and what is wrong with it.
struct ConfigurationError: Error, CustomStringConvertible {
    var key: String
    var problem: String

    var description: String { "\(key): \(problem)" }
}

/// Several problems found at once, so an operator fixes them in one go.
struct ConfigurationErrors: Error, CustomStringConvertible {
    var errors: [ConfigurationError]

    var description: String {
        errors.map { "  - \($0)" }.joined(separator: "\n")
    }
}
