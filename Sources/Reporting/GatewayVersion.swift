/// The daemon's version, in the one place that states it: `edge-gateway --version`, the log line at
/// start, `/api` and the `gateway_build_info{version,commit}` gauge all read it from here.
public enum GatewayVersion {
    /// The release this source tree builds (semantic versioning).
    public static let version = "0.14.0"
    /// The git commit the binary was built from, or "unknown": SwiftPM has no simple way to pass a
    /// string in at build time, so a packaging step that knows the commit writes it here.
    public static let commit: String = "unknown"
}
