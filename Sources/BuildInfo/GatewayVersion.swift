/// The daemon's version, in the one place that states it: `edge-gateway --version`, the log line at
/// start, `GET /api` and the `gateway_build_info{version,commit}` gauge all read it from here.
public enum GatewayVersion {
    /// The release this source tree builds (semantic versioning).
    public static let version = "0.14.0"
    /// The git commit the binary was built from (short hash), or "unknown" when it was built outside
    /// a git checkout: written at build time by the `BuildCommit` plugin (Plugins/BuildCommit).
    public static var commit: String { buildCommit }
}
