// swift-tools-version: 6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "edge-gateway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "edge-gateway", targets: ["edge-gateway"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: [.defaults, "YAML", "Reloading"]),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // System libraries: one module per C library, found through pkg-config, provided by Debian.
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CALSA", pkgConfig: "alsa", providers: [.apt(["libasound2-dev"])]),
        .systemLibrary(name: "COpus", pkgConfig: "opus", providers: [.apt(["libopus-dev"])]),

        // Linux calls that belong to no wrapped library (adjtimex, malloc_trim, madvise); only Platform imports it.
        .target(name: "CPlatform"),

        .target(
            // Value types with no I/O and no shared mutable state (scripts/fuzz compiles all of it).
            name: "GatewayCore",
            swiftSettings: swiftSettings
        ),
        .plugin(
            // Writes the git commit into BuildInfo before each build (Plugins/BuildCommit).
            name: "BuildCommit",
            capability: .buildTool()
        ),
        .target(
            // The version and the commit the binary was built from (GatewayVersion): read by the
            // CLI, the log at start, /api and gateway_build_info only, so a new commit recompiles little.
            name: "BuildInfo",
            swiftSettings: swiftSettings,
            plugins: ["BuildCommit"]
        ),
        .target(
            // How components report about themselves: their state published as values
            // (StatePublisher) and rate-limited logs (RateLimitedLog).
            name: "Reporting",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(
            // SQLite connections and statements (the C API wrapped; used by the outbox), and SQLiteStore:
            // a small store whose connection lives on its own thread (sagas, local registry, user cache).
            name: "SQLite",
            dependencies: ["CSQLite"],
            swiftSettings: swiftSettings
        ),
        .target(
            // The Swift face of CPlatform: the system clock's state, the heap's free pages, the executable's mapped pages.
            name: "Platform",
            dependencies: ["CPlatform"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Outbox",
            dependencies: [
                "SQLite", "GatewayCore", "Reporting", "Platform",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MQTT",
            dependencies: ["CMosquitto", "Reporting", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Systemd",
            dependencies: [
                "CSystemd", "Platform",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Audio",
            dependencies: ["CALSA", "COpus"],
            swiftSettings: swiftSettings
        ),
        .target(
            // The device edge: every connection to the device broker, the topic grammar, events into
            // the outbox with their acks, typed inboxes (audio, registrations, push-to-talk), replies,
            // and the devices' broker accounts.
            name: "DeviceLink",
            dependencies: [
                "GatewayCore", "Outbox", "MQTT", "Reporting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            // The ML endpoints: the gRPC client and the Wyoming backend (over the Wyoming module, with
            // Audio's Opus decoder and resampler), the pool over both. Sources/MLLink/Generated is protoc output of
            // Sources/MLLink/Protos, committed; scripts/generate-proto regenerates it (no build
            // plugin: it would compile protoc).
            name: "MLLink",
            dependencies: [
                "GatewayCore", "Wyoming", "Audio", "Platform",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Protos"],
            swiftSettings: swiftSettings
        ),
        .target(
            // The Wyoming protocol client (CONTRACTS.md §8): framing with limits, one connection per call,
            // describe/transcribe/recognize/handle/synthesize/detect. MLLink's WyomingBackend uses it.
            name: "Wyoming",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            exclude: ["README.md"],  // the module's documentation page
            swiftSettings: swiftSettings
        ),
        .target(
            // The REST services of CONTRACTS.md §4: one client with deadline and circuit breaker.
            name: "REST",
            dependencies: [
                "GatewayCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            // The user service (REST) with its SQLite cache.
            name: "Users",
            dependencies: [
                "GatewayCore", "SQLite", "REST", "Reporting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            // Device voice dialogs: audio sessions to the ML service and answers to the device.
            name: "Dialog",
            dependencies: [
                "GatewayCore", "Outbox", "MLLink", "Users", "Audio", "Reporting", "DeviceLink",
                "Wyoming",  // HubSpeaker speaks replies through a Wyoming TTS server (audio.tts); the microphone's wake-word server
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["README.md"],  // the module's documentation page
            swiftSettings: swiftSettings
        ),
        .target(
            // Device registration: the saga (REST services, local registry, the device edge's broker accounts).
            name: "Registration",
            dependencies: [
                "GatewayCore", "SQLite", "Outbox", "REST", "Reporting", "DeviceLink",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"],  // the module's documentation page
            swiftSettings: swiftSettings
        ),
        .target(
            // Cloud → device commands (CONTRACTS.md §6): parsing, the durable queue (its own SQLite
            // file) and its decisions; no MQTT: the daemon publishes what the queue says.
            name: "Commands",
            dependencies: [
                "GatewayCore", "SQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            exclude: ["README.md"],  // the module's documentation page
            swiftSettings: swiftSettings
        ),
        .target(
            // Cloud → device: the loop that carries commands (and shadows) between the upstream
            // link, the outbox and DeviceLink's commands connection.
            name: "CloudToDevice",
            dependencies: [
                "GatewayCore", "Commands", "Shadow", "DeviceLink", "Outbox", "Reporting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Upstream",
            dependencies: [
                "GatewayCore", "Outbox", "MQTT", "Reporting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            // The device shadow (CONTRACTS.md §7): JSON values, merge patches and deltas, the messages,
            // and the durable documents (ShadowStore). No MQTT: the device edge and the upstream link call it.
            name: "Shadow",
            dependencies: [
                "GatewayCore", "SQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            exclude: ["README.md"],  // the module's documentation page
            swiftSettings: swiftSettings
        ),
        .target(
            // The operator's view: health, Prometheus metrics, the JSON API, the live stream and
            // the status page (Hummingbird).
            name: "Admin",
            dependencies: [
                "GatewayCore", "Outbox", "MLLink", "Registration", "Reporting", "BuildInfo",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The module's documentation page and the screenshot in it (scripts/check-status-page).
            exclude: ["README.md", "StatusPage.png"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "edge-gateway",
            dependencies: [
                "GatewayCore", "Outbox", "MQTT", "DeviceLink", "Upstream", "Systemd", "MLLink", "Users", "Dialog", "Registration", "REST", "Admin", "Reporting", "BuildInfo", "Platform", "Commands", "Shadow", "CloudToDevice",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings,
            // Release builds (the package a hub installs) are linked with lld, relative relocations
            // packed (DT_RELR, glibc >= 2.36: Debian 12) and no exported symbols: the loader reads
            // about 50 kB of relocations instead of 3.7 MB, and the --export-dynamic that
            // --static-swift-stdlib adds (60,000 symbols, 2.7 MB of them resident) is undone. The
            // package's idle PSS falls by a fifth, 39.8 to 31.5 MB (BENCHMARKS.md "Idle footprint of
            // the package"). A stripped package's crash backtraces then have addresses, not names.
            // Package/edge-gateway.order (scripts/order-file) puts the functions that run from start
            // to idle at the front of .text, so the kernel's fault-around windows hold code that runs:
            // idle PSS 31.6 -> 22 MB (BENCHMARKS.md "Idle footprint with an ordered binary"). lld
            // moves sections, not functions: the package is built with every Swift function in a
            // section of its own, `-Xswiftc -Xfrontend -Xswiftc -function-sections` on the command
            // line (a manifest cannot set flags for its dependencies; without it the file still
            // helps, to 25.6 MB). Names it lists that no longer exist are ignored: a stale file costs
            // memory, never correctness. SwiftPM does not see the file as an input: after
            // regenerating it, relink (remove the built binary).
            linkerSettings: [
                .unsafeFlags(
                    [
                        "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker", "--no-export-dynamic",
                        "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Package/edge-gateway.order",
                        "-Xlinker", "--no-warn-symbol-ordering",
                    ],
                    .when(platforms: [.linux], configuration: .release)
                )
            ]
        ),

        // The benchmark tools of scripts/bench live in Tests/Benchmarks (with the C load tools).
        .executableTarget(
            // The voice benchmark (scripts/bench section 7): devices, fake ML endpoints, a real gateway.
            name: "voice-bench",
            dependencies: [
                "MQTT", "Audio", "MLFake", "Wyoming", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/Benchmarks/voice-bench",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "outbox-bench",
            dependencies: ["Outbox", .product(name: "Logging", package: "swift-log")],
            path: "Tests/Benchmarks/outbox-bench",
            swiftSettings: swiftSettings
        ),

        // Test support: targets under Tests/Support that only test targets and the benchmark tools
        // depend on; the product (edge-gateway) never links them, and `swift build --product
        // edge-gateway` does not compile them.
        .target(
            // A scripted ML service (real gRPC server) for the integration tests and voice-bench.
            name: "MLFake",
            dependencies: [
                "MLLink",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ],
            path: "Tests/Support/MLFake",
            swiftSettings: swiftSettings
        ),
        .target(
            // The REST services of CONTRACTS.md §4 as one HTTP server on loopback, for tests.
            name: "ServiceFakes",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Tests/Support/ServiceFakes",
            swiftSettings: swiftSettings
        ),
        .target(
            // The one broker harness of the Swift tests (MQTT, Registration, Integration): a mosquitto on
            // a free loopback port (MosquittoBroker), the free-port helper, child processes, sandboxes and
            // the login probe.
            name: "BrokerTestSupport",
            dependencies: [
                "MQTT", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            path: "Tests/Support/BrokerTestSupport",
            swiftSettings: swiftSettings
        ),
        .target(
            // A raw TCP HTTP client for attack tests of the admin API (any Host, half a request, nothing).
            name: "HTTPTestSupport",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            path: "Tests/Support/HTTPTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "GatewayCoreTests", dependencies: ["GatewayCore"], swiftSettings: swiftSettings),
        .testTarget(name: "ReportingTests", dependencies: ["Reporting", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(
            // The device edge without a broker: topic grammar, inboxes, the ingress's rules.
            name: "DeviceLinkTests",
            dependencies: [
                "DeviceLink", "GatewayCore", "Outbox", "MQTT", "BrokerTestSupport", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            // The dialogs against the device edge's protocols (an inbox, recorded replies): no broker.
            name: "DialogTests",
            dependencies: [
                "Dialog", "DeviceLink", "GatewayCore", "MLLink", "MLFake", "Outbox", "Users", "BrokerTestSupport",
                "Audio", "Wyoming",  // MicrophoneSegmenterTests, WakeWordListenerTests
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "OutboxTests", dependencies: ["Outbox", "SQLite", "GatewayCore"], swiftSettings: swiftSettings),
        .testTarget(
            // The forwarder's rules against a scripted UpstreamLink and a real outbox, no broker.
            name: "UpstreamTests",
            dependencies: [
                "Upstream", "Outbox", "MQTT", "GatewayCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ShadowTests",
            dependencies: [
                "Shadow", "GatewayCore", "SQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "SQLiteTests", dependencies: ["SQLite"], swiftSettings: swiftSettings),
        .testTarget(
            // Cloud topics; the cloud-to-device loop over a real outbox and command store.
            name: "CloudToDeviceTests",
            dependencies: ["CloudToDevice", "Commands", "DeviceLink", "GatewayCore", "Outbox", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            // The command queue over a real SQLite file in a temporary directory, time passed in.
            name: "CommandsTests",
            dependencies: ["Commands", "GatewayCore", "SQLite", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SystemdTests",
            dependencies: ["Systemd", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MQTTTests",
            dependencies: ["MQTT", "BrokerTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "AudioTests", dependencies: ["Audio"], swiftSettings: swiftSettings),
        .testTarget(
            name: "RegistrationTests",
            dependencies: [
                "Registration", "DeviceLink", "REST", "GatewayCore", "MQTT", "ServiceFakes", "BrokerTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AdminTests",
            dependencies: [
                "Admin", "GatewayCore", "Outbox", "MLLink", "Registration", "Reporting", "BuildInfo", "HTTPTestSupport", "BrokerTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UsersTests",
            dependencies: ["Users", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            // The Wyoming client: framing (every decoder error), and each call against the reference
            // package's servers (Tests/Wyoming/servers.py in scripts/setup's venv), hostile ones included.
            name: "WyomingTests",
            dependencies: [
                "Wyoming", "BrokerTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MLLinkTests",
            dependencies: [
                "MLLink", "GatewayCore", "BrokerTestSupport", "Audio", "Wyoming",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            // The executable's configuration checks in-process (check-config's warnings, errors naming
            // their environment variable, file reasons); the CLI itself is tested in IntegrationTests.
            name: "EdgeGatewayTests",
            dependencies: ["edge-gateway"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "GatewayCore", "MQTT", "MLLink", "MLFake", "ServiceFakes", "Audio", "HTTPTestSupport", "BrokerTestSupport",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
