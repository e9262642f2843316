import ArgumentParser
import Foundation

struct CheckConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the configuration and print the effective values (secrets redacted).",
        discussion: """
            Reports every problem in one run: bad values (naming the environment variable when one set \
            the value), unknown keys in the file, and warnings about settings that contradict each other \
            or turn a protection off. Values worked out from an empty setting (hub.id, store.path) are \
            shown as the daemon uses them, with a note.

            Exit status: 0 valid (warnings are printed to standard error); 2 a bad value, an unknown key, \
            a file that cannot be read, or with --strict a warning.
            """)

    @OptionGroup var options: ConfigOption
    @Flag(help: "Fail (exit 2) on warnings too.") var strict = false

    func run() async throws {
        let configuration = try await options.load(printingWarnings: true)
        if !configuration.unknownKeys.isEmpty {
            printError("invalid configuration:\n\(ConfigurationErrors(errors: [], unknownKeys: configuration.unknownKeys))")
            Self.printWarnings(configuration.warnings)
            throw ExitCode(2)
        }
        let width = configuration.effective.map(\.key.count).max() ?? 0
        for (key, value) in configuration.effective {
            var shown = value
            var notes: [String] = []
            if let resolved = configuration.resolved[key] {
                shown = resolved.value
                notes.append(resolved.note)
            }
            if let variable = configuration.variables[key] {
                notes.append("from environment variable \(variable)")
            }
            print(
                key.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + (shown.isEmpty ? "\"\"" : shown)
                    + (notes.isEmpty ? "" : "  (" + notes.joined(separator: "; ") + ")"))
        }
        Self.printWarnings(configuration.warnings)
        let count = configuration.warnings.count
        let warnings = count == 1 ? "1 warning" : "\(count) warnings"
        if count > 0, strict {
            printError("configuration not accepted with --strict: \(warnings)")
            throw ExitCode(2)
        }
        print(count == 0 ? "configuration OK" : "configuration OK, with \(warnings)")
    }

    static func printWarnings(_ warnings: [ConfigurationWarning]) {
        guard !warnings.isEmpty else { return }
        printError("warnings:\n" + warnings.map { "  - \($0)" }.joined(separator: "\n"))
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
