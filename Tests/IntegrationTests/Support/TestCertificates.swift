import BrokerTestSupport
import Foundation

/// A throw-away CA and a server certificate for 127.0.0.1 / localhost signed by it, made with `openssl`.
struct TestCertificates: Sendable {
    static let openssl = "/usr/bin/openssl"

    let caFile: URL
    let certFile: URL
    let keyFile: URL

    static func make(in directory: URL) async throws -> TestCertificates {
        let ca = directory.appendingPathComponent("ca.crt")
        let caKey = directory.appendingPathComponent("ca.key")
        let cert = directory.appendingPathComponent("server.crt")
        let key = directory.appendingPathComponent("server.key")
        let request = directory.appendingPathComponent("server.csr")
        let extensions = directory.appendingPathComponent("server.ext")
        try """
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature, keyEncipherment
            extendedKeyUsage = serverAuth
            subjectAltName = IP:127.0.0.1, DNS:localhost

            """.write(to: extensions, atomically: true, encoding: .utf8)

        try await Tool.run(openssl, [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", caKey.path, "-out", ca.path, "-days", "2", "-subj", "/CN=edge-gateway test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ], in: directory)
        try await Tool.run(openssl, [
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key.path, "-out", request.path, "-subj", "/CN=localhost",
        ], in: directory)
        try await Tool.run(openssl, [
            "x509", "-req", "-in", request.path, "-CA", ca.path, "-CAkey", caKey.path, "-CAcreateserial",
            "-out", cert.path, "-days", "2", "-extfile", extensions.path,
        ], in: directory)
        return TestCertificates(caFile: ca, certFile: cert, keyFile: key)
    }
}
