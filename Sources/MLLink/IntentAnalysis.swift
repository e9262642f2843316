/// What `AnalyzeIntent` answered (CONTRACTS.md §3, `IntentResponse`).
public struct IntentAnalysis: Sendable, Equatable {
    public var intent: String
    public var confidence: Float
    public var entities: [String: String]
    public var replyText: String

    public init(intent: String, confidence: Float, entities: [String: String], replyText: String) {
        self.intent = intent
        self.confidence = confidence
        self.entities = entities
        self.replyText = replyText
    }
}
