public enum GatewayVersion { public static let version = "0.14.0"; public static let commit = "unknown" }
