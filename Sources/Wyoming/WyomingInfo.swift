/// What a Wyoming server offers, read from its `info` answer to `describe`.
///
/// The reference package lists programs per service (`asr`, `intent`, `handle`, `tts`, `wake`, also `mic`,
/// `snd`, `satellite`, which this client does not use); each program has models (for TTS: voices) with their
/// languages. A service is offered when it lists at least one installed program.
public struct WyomingInfo: Sendable, Hashable {
    public enum Service: String, Sendable, Hashable, CaseIterable {
        case asr, intent, handle, tts, wake
    }

    public struct Model: Sendable, Hashable {
        public var name: String
        public var languages: [String]
        public var installed: Bool
        public var description: String?
        public var version: String?
        /// For wake-word models, the phrase that wakes them.
        public var phrase: String?
    }

    public struct Program: Sendable, Hashable {
        public var name: String
        public var installed: Bool
        public var description: String?
        public var version: String?
        /// Models; for a TTS program, its voices.
        public var models: [Model]
        /// ASR only: the server sends `transcript-start`/`-chunk`/`-stop` before the `transcript`.
        public var supportsTranscriptStreaming: Bool
    }

    public var programs: [Service: [Program]]

    public init(programs: [Service: [Program]]) {
        self.programs = programs
    }

    /// The services with at least one installed program.
    public var services: Set<Service> {
        Set(Service.allCases.filter { service in programs[service, default: []].contains { $0.installed } })
    }

    public func offers(_ service: Service) -> Bool { services.contains(service) }

    /// Whether some installed ASR program streams partial transcripts.
    public var streamsTranscripts: Bool {
        programs[.asr, default: []].contains { $0.installed && $0.supportsTranscriptStreaming }
    }

    /// The languages of the installed models of a service, sorted, without duplicates.
    public func languages(of service: Service) -> [String] {
        let all = programs[service, default: []].filter(\.installed).flatMap(\.models).filter(\.installed).flatMap(\.languages)
        return Array(Set(all)).sorted()
    }

    /// The names of the installed models (TTS: voices) of a service.
    public func models(of service: Service) -> [String] {
        programs[service, default: []].filter(\.installed).flatMap(\.models).filter(\.installed).map(\.name)
    }

    /// Reads an `info` event's data; entries that are not objects or have no name are skipped, a field of the
    /// wrong type reads as absent: a server's odd extra is not a failed health check.
    init(data: [String: WyomingJSON]) {
        var programs: [Service: [Program]] = [:]
        for service in Service.allCases {
            let entries = data[service.rawValue]?.array ?? []
            programs[service] = entries.compactMap { entry in
                guard let object = entry.object, let name = object["name"]?.string else { return nil }
                let modelKey = service == .tts ? "voices" : "models"
                let models: [Model] = (object[modelKey]?.array ?? []).compactMap { model in
                    guard let model = model.object, let name = model["name"]?.string else { return nil }
                    return Model(
                        name: name,
                        languages: (model["languages"]?.array ?? []).compactMap(\.string),
                        installed: model["installed"]?.bool ?? true,
                        description: model["description"]?.string,
                        version: model["version"]?.string,
                        phrase: model["phrase"]?.string
                    )
                }
                return Program(
                    name: name,
                    installed: object["installed"]?.bool ?? true,
                    description: object["description"]?.string,
                    version: object["version"]?.string,
                    models: models,
                    supportsTranscriptStreaming: object["supports_transcript_streaming"]?.bool ?? false
                )
            }
        }
        self.programs = programs
    }
}
