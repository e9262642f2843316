import Dialog
import Testing

/// `audio.tts`: what a Wyoming server's address may look like.
@Suite struct WyomingServerAddressTests {
    @Test func wyomingURLsNameHostAndPort() {
        #expect(WyomingServerAddress(url: "wyoming://127.0.0.1:10200") == WyomingServerAddress(host: "127.0.0.1", port: 10200))
        #expect(WyomingServerAddress(url: "wyoming://piper.lan:10200") == WyomingServerAddress(host: "piper.lan", port: 10200))
        #expect(WyomingServerAddress(url: "wyoming://[::1]:10200") == WyomingServerAddress(host: "::1", port: 10200))
        #expect(WyomingServerAddress(url: "wyoming://[::1]:10200")?.description == "wyoming://[::1]:10200")
        #expect(WyomingServerAddress(url: "wyoming://localhost:1")?.description == "wyoming://localhost:1")
    }

    @Test(arguments: [
        "", "127.0.0.1:10200", "tcp://127.0.0.1:10200", "http://127.0.0.1:10200", "wyoming://127.0.0.1",
        "wyoming://:10200", "wyoming://127.0.0.1:0", "wyoming://127.0.0.1:65536", "wyoming://127.0.0.1:+80",
        "wyoming://127.0.0.1:10200/", "wyoming://user@127.0.0.1:10200", "wyoming://::1:10200", "wyoming://[::1]10200",
        "wyoming://[]:10200", "wyoming://127.0.0.1:١٢٣",
    ])
    func anythingElseIsRefused(url: String) {
        #expect(WyomingServerAddress(url: url) == nil)
    }
}
