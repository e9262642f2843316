import Foundation
import MLLink

extension MLConfiguration {
    /// `ml.*`: endpoints, TLS, codec, deadlines, balancing, breaker, resolution and health intervals.
    init(_ v: inout ConfigValues) {
        self.init()
        for entry in v.stringList("ml.endpoints", default: []) {
            if let target = Target(entry) {
                targets.append(target)
            } else {
                v.fail("ml.endpoints", "'\(entry)' is not host:port, [v6]:port, dns:///name:port or wyoming://host:port")
            }
        }
        codec = v.choice("ml.codec", default: codec)
        intentTimeout = .milliseconds(v.int("ml.intentTimeoutMs", default: 5000, range: 50...600_000))
        transcriptionBackends = v.choice("ml.transcription", default: transcriptionBackends)
        intentBackends = v.choice("ml.intent", default: intentBackends)
        for (key, backends) in [("ml.transcription", transcriptionBackends), ("ml.intent", intentBackends)]
        where backends != .auto && !targets.contains(where: { backends.allows($0.kind) }) {
            v.fail(key, "'\(backends.rawValue)' but ml.endpoints has no \(backends.rawValue) endpoint")
        }
        wyomingTranscriptTimeout = .milliseconds(v.int("ml.wyoming.transcriptTimeoutMs", default: 10_000, range: 100...600_000))
        keepalive = .seconds(v.int("ml.keepaliveSeconds", default: 30, range: 1...86400))
        balancing = v.choice("ml.balancing", default: balancing)
        breaker.failureRatio = v.double("ml.breaker.failureRatio", default: breaker.failureRatio, range: 0.01...1)
        breaker.minimumCalls = v.int("ml.breaker.minimumCalls", default: breaker.minimumCalls, range: 1...10_000)
        breaker.openDuration = .seconds(v.int("ml.breaker.openSeconds", default: 10, range: 1...86400))
        breaker.window = .seconds(v.int("ml.breaker.windowSeconds", default: 30, range: 1...86400))
        resolveInterval = .seconds(v.int("ml.resolveIntervalSeconds", default: 30, range: 1...86400))
        healthCheckInterval = .seconds(v.int("ml.healthCheckIntervalSeconds", default: 10, range: 0...86400))
        shutdownGrace = .seconds(v.int("ml.shutdownGraceSeconds", default: 5, range: 0...600))

        let enabled = v.bool("ml.tls.enabled", default: false)
        let caFile = v.string("ml.tls.caFile", default: "")
        let certFile = v.string("ml.tls.certFile", default: "")
        let keyFile = v.string("ml.tls.keyFile", default: "")
        let serverName = v.string("ml.tls.serverName", default: "")
        if enabled {
            for (key, path) in [("ml.tls.caFile", caFile), ("ml.tls.certFile", certFile), ("ml.tls.keyFile", keyFile)]
            where !path.isEmpty {
                if let problem = FileCheck.readProblem(path) { v.fail(key, "cannot read \(path): \(problem)") }
            }
            if certFile.isEmpty != keyFile.isEmpty {
                v.fail("ml.tls.certFile", "certFile and keyFile go together (mutual TLS needs both)")
            }
            tls = TLS(caFile: caFile.nonEmpty, certFile: certFile.nonEmpty, keyFile: keyFile.nonEmpty, serverName: serverName.nonEmpty)
        } else if !caFile.isEmpty || !certFile.isEmpty || !keyFile.isEmpty {
            v.fail("ml.tls.enabled", "TLS files are given but ml.tls.enabled is false")
        } else if !serverName.isEmpty {
            v.warn("ml.tls.serverName", "has no effect while ml.tls.enabled is false")
        }
    }
}
