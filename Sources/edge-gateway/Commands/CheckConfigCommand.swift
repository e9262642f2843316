import ArgumentParser
import Foundation

struct CheckConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the configuration and print the effective values (secrets redacted).")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let configuration = try await options.load()
        if !configuration.unknownKeys.isEmpty {
            printError("invalid configuration:\n" + configuration.unknownKeys.map { "  - \($0): unknown key" }.joined(separator: "\n"))
            throw ExitCode(2)
        }
        let width = configuration.effective.map(\.key.count).max() ?? 0
        for (key, value) in configuration.effective {
            print(key.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + (value.isEmpty ? "\"\"" : value))
        }
        print("store.path (resolved)".padding(toLength: width, withPad: " ", startingAt: 0) + "  " + configuration.store.path)
        print("log.format (resolved)".padding(toLength: width, withPad: " ", startingAt: 0) + "  " + configuration.logFormat.rawValue)
        print("configuration OK")
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
