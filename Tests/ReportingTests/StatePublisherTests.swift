import Reporting
import Testing

@Suite(.timeLimit(.minutes(1))) struct StatePublisherTests {
    @Test func readersSeeTheValueOfTheLastUpdate() {
        let publisher = StatePublisher(0)
        let reader = publisher.reader
        #expect(reader.current == 0)
        publisher.update { $0 = 1 }
        let returned = publisher.update { value -> String in
            value += 1
            return "done"
        }
        #expect(returned == "done")
        #expect(reader.current == 2)
        #expect(publisher.current == 2)
    }

    @Test func aSubscriberGetsTheCurrentValueThenEveryUpdateInOrder() async {
        let publisher = StatePublisher(0)
        var updates = publisher.reader.updates.makeAsyncIterator()
        for value in 1...100 { publisher.update { $0 = value } }
        var seen: [Int] = []
        for _ in 0...100 { seen.append(await updates.next() ?? -1) }
        #expect(seen == Array(0...100))
    }

    @Test func aLateSubscriberStartsWithTheLatestValue() async {
        let publisher = StatePublisher("starting")
        let early = publisher.reader
        publisher.update { $0 = "connected" }
        publisher.update { $0 = "subscribed" }
        var late = early.updates.makeAsyncIterator()
        #expect(await late.next() == "subscribed")
        publisher.update { $0 = "disconnected" }
        #expect(await late.next() == "disconnected")
    }

    @Test func everySubscriberGetsEveryUpdate() async {
        let publisher = StatePublisher(0)
        var first = publisher.reader.updates.makeAsyncIterator()
        var second = publisher.reader.updates.makeAsyncIterator()
        publisher.update { $0 = 7 }
        #expect(await first.next() == 0)
        #expect(await first.next() == 7)
        #expect(await second.next() == 0)
        #expect(await second.next() == 7)
    }

    @Test func firstWhereCatchesAValueThatHoldsOnlyBriefly() async {
        let publisher = StatePublisher(0)
        let reader = publisher.reader
        let (looked, lookedSink) = AsyncStream.makeStream(of: Int.self)
        let waiter = Task {
            await reader.first { value in
                lookedSink.yield(value)
                return value == 3
            }
        }
        var lookedAt = looked.makeAsyncIterator()
        // The waiter has subscribed once it has looked at the current value.
        #expect(await lookedAt.next() == 0)
        for value in 1...5 { publisher.update { $0 = value } }
        #expect(await waiter.value == 3)
        #expect(reader.current == 5)
    }

    @Test func firstWhereAnswersNilWhenItsTaskIsCancelled() async {
        let publisher = StatePublisher(false)
        let reader = publisher.reader
        let (looked, lookedSink) = AsyncStream.makeStream(of: Bool.self)
        let waiter = Task {
            await reader.first { value in
                lookedSink.yield(value)
                return value
            }
        }
        var lookedAt = looked.makeAsyncIterator()
        #expect(await lookedAt.next() == false)
        waiter.cancel()
        #expect(await waiter.value == nil)
    }

    @Test func updatesEndWhenThePublisherIsGone() async {
        var publisher: StatePublisher<Int>? = StatePublisher(1)
        let updates = publisher!.reader.updates
        publisher?.update { $0 = 2 }
        publisher = nil
        var seen: [Int] = []
        for await value in updates { seen.append(value) }
        #expect(seen == [1, 2])
    }
}
