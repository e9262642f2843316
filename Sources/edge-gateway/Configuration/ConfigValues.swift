import Configuration
import Foundation

/// Typed, validating access to configuration values. Values are read as text from every provider
/// (environment variables and YAML scalars alike) and parsed here, so a malformed value is an
/// error naming its key instead of a silent fallback to the default.
struct ConfigValues {
    let reader: ConfigReader
    private(set) var errors: [ConfigurationError] = []
    /// Every key read, with the effective value (secrets redacted), in reading order.
    private(set) var effective: [(key: String, value: String)] = []
    /// A per-process hash of each secret's value, so a reload can tell a changed password without
    /// keeping or printing it.
    private(set) var secretHashes: [String: Int] = [:]
    /// Settings that work but contradict another one or turn a protection off.
    private(set) var warnings: [ConfigurationWarning] = []
    /// Keys whose value came from an environment variable, with the variable's name.
    private(set) var variables: [String: String] = [:]
    /// Values worked out from an empty setting (`hub.id` → the host name), with how.
    private(set) var resolved: [String: (value: String, note: String)] = [:]
    /// The environment's provider alone, asked which variable (if any) stands behind a key.
    private let environment: (any ConfigProvider)?

    init(reader: ConfigReader, environment: (any ConfigProvider)? = nil) {
        self.reader = reader
        self.environment = environment
    }

    private mutating func note(_ key: String, _ value: String, secret: Bool) {
        effective.append((key, secret ? (value.isEmpty ? "" : "<redacted>") : value))
        if secret { secretHashes[key] = value.hashValue }
        if let variable = variable(for: key) { variables[key] = variable }
    }

    /// The environment variable that sets `key` (`mqtt.port` → `MQTT_PORT`), when one does.
    func variable(for key: String) -> String? {
        guard let environment,
            let lookup = try? environment.value(forKey: AbsoluteConfigKey(ConfigKey(key)), type: .string),
            lookup.value != nil
        else { return nil }
        return lookup.encodedKey
    }

    mutating func fail(_ key: String, _ problem: String) {
        errors.append(ConfigurationError(key: key, problem: problem, variable: variable(for: key)))
    }

    mutating func warn(_ key: String, _ problem: String) {
        warnings.append(ConfigurationWarning(key: key, problem: problem))
    }

    /// Records that `key`, empty, stands for `value` (what the daemon uses), and how it got there.
    mutating func resolve(_ key: String, to value: String, _ note: String) {
        resolved[key] = (value, note)
    }

    mutating func string(_ key: String, default defaultValue: String, secret: Bool = false) -> String {
        let value = reader.string(forKey: ConfigKey(key), isSecret: secret) ?? defaultValue
        note(key, value, secret: secret)
        return value
    }

    mutating func int(_ key: String, default defaultValue: Int, range: ClosedRange<Int>) -> Int {
        guard let text = reader.string(forKey: ConfigKey(key)) else {
            note(key, "\(defaultValue)", secret: false)
            return defaultValue
        }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            fail(key, "expected a whole number, got '\(text)'")
            return defaultValue
        }
        guard range.contains(value) else {
            fail(key, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
            return defaultValue
        }
        note(key, "\(value)", secret: false)
        return value
    }

    mutating func bool(_ key: String, default defaultValue: Bool) -> Bool {
        guard let text = reader.string(forKey: ConfigKey(key)) else {
            note(key, "\(defaultValue)", secret: false)
            return defaultValue
        }
        switch text.lowercased() {
        case "true", "yes", "on", "1":
            note(key, "true", secret: false)
            return true
        case "false", "no", "off", "0":
            note(key, "false", secret: false)
            return false
        default:
            fail(key, "expected true or false, got '\(text)'")
            return defaultValue
        }
    }

    /// A decimal number in `range` (e.g. a ratio).
    mutating func double(_ key: String, default defaultValue: Double, range: ClosedRange<Double>) -> Double {
        guard let text = reader.string(forKey: ConfigKey(key)) else {
            note(key, "\(defaultValue)", secret: false)
            return defaultValue
        }
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            fail(key, "expected a number, got '\(text)'")
            return defaultValue
        }
        guard range.contains(value) else {
            fail(key, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
            return defaultValue
        }
        note(key, "\(value)", secret: false)
        return value
    }

    /// A list: a YAML sequence, or in an environment variable, items separated by commas.
    mutating func stringList(_ key: String, default defaultValue: [String]) -> [String] {
        let values = reader.stringArray(forKey: ConfigKey(key))
            ?? reader.string(forKey: ConfigKey(key)).map { $0.split(separator: ",").map(String.init) }
            ?? defaultValue
        let trimmed = values.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        note(key, "[" + trimmed.joined(separator: ", ") + "]", secret: false)
        return trimmed
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ key: String, default defaultValue: T) -> T where T.RawValue == String {
        guard let text = reader.string(forKey: ConfigKey(key)) else {
            note(key, defaultValue.rawValue, secret: false)
            return defaultValue
        }
        guard let value = T(rawValue: text) else {
            fail(key, "'\(text)' is not one of: \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            return defaultValue
        }
        note(key, value.rawValue, secret: false)
        return value
    }
}
