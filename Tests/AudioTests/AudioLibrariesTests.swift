import Audio
import Testing

@Suite struct AudioLibrariesTests {
    @Test func alsaAndOpusAreLinkedAndReportVersions() {
        #expect(AudioLibraries.alsaVersion.split(separator: ".").count >= 2)
        #expect(AudioLibraries.opusVersion.hasPrefix("libopus"))
    }

    @Test func opusEncoderAcceptsBitrateThroughShim() {
        #expect(AudioLibraries.canCreateOpusEncoder())
    }
}
