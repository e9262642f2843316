import GatewayCore
import Upstream

extension UpstreamConfiguration {
    /// `upstream.topic`, `upstream.inflight`, `upstream.shutdownGraceSeconds`.
    init(_ v: inout ConfigValues, hubID: String) {
        self.init(hubID: hubID)
        let template = UpstreamTopicTemplate(v.string("upstream.topic", default: topic.template))
        if let problem = template.validate() { v.fail("upstream.topic", problem) }
        topic = template
        inflight = v.int("upstream.inflight", default: inflight, range: 1...65535)
        let grace = v.int("upstream.shutdownGraceSeconds", default: Int(shutdownGrace.components.seconds), range: 0...600)
        shutdownGrace = .seconds(grace)
    }
}
