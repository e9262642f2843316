import Testing

/// Every integration suite is nested in this one so that the whole target runs one test at a time: the tests
/// start brokers and the daemon as real processes and share a small machine.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct IntegrationSuite {}
