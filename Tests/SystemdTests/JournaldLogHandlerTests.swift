import Logging
import Testing

@testable import Systemd

@Suite struct JournaldLogHandlerTests {
    @Test(arguments: [
        ("device.id", "DEVICE_ID"), ("event.id", "EVENT_ID"), ("hub.id", "HUB_ID"),
        ("_private", "PRIVATE"), ("1st", "F1ST"), ("store.maxBytes", "STORE_MAXBYTES"),
    ])
    func metadataKeysBecomeValidJournalFieldNames(_ key: String, _ field: String) {
        #expect(JournaldLogHandler.fieldName(key) == field)
    }

    @Test func levelsMapToSyslogPriorities() {
        #expect(JournaldLogHandler.priority(.critical) == 2)
        #expect(JournaldLogHandler.priority(.error) == 3)
        #expect(JournaldLogHandler.priority(.warning) == 4)
        #expect(JournaldLogHandler.priority(.notice) == 5)
        #expect(JournaldLogHandler.priority(.info) == 6)
        #expect(JournaldLogHandler.priority(.debug) == 7)
    }
}
