import Foundation
import Hummingbird
import NIOCore

/// The status page at `/`: rendered on the server from the same data as the JSON API, one HTML
/// document with its style and script inline (no build step, no external assets), kept current by
/// the `/live` WebSocket (status every few seconds, dialogs as they are answered).
enum StatusPage {
    struct Snapshot {
        var hubID: String
        var readiness: AdminSources.Readiness
        var depth: (count: Int64, bytes: Int64)
        var endpoints: [EndpointSummary]
        var history: [DepthHistory.Sample]
        var recent: [RecentDialogs.Entry]
    }

    static func render(_ snapshot: Snapshot) -> String {
        let ready = snapshot.readiness
        let endpoints =
            snapshot.endpoints.isEmpty
            ? "<tr><td colspan=\"4\" class=\"muted\">no ML endpoints configured (ml.endpoints)</td></tr>"
            : snapshot.endpoints.map { endpoint in
                "<tr><td>\(escape(endpoint.endpoint))</td><td class=\"breaker-\(escape(endpoint.breaker))\">\(escape(endpoint.breaker))</td>"
                    + "<td>\(escape(endpoint.health ?? "–"))</td><td>\(endpoint.outstanding)</td></tr>"
            }.joined(separator: "\n")
        let recent = snapshot.recent.map(renderDialog).joined(separator: "\n")
        let history = (try? String(decoding: JSONEncoder().encode(snapshot.history), as: UTF8.self)) ?? "[]"
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <link rel="icon" href="data:,">
            <title>edge-gateway · \(escape(snapshot.hubID))</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2330; background: #f6f7f9; }
            h1 { font-size: 1.3em; margin: 0 0 .8em; } h2 { font-size: 1.05em; margin: 0 0 .5em; }
            .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 1em; }
            section { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 1em; }
            .big { font-size: 2em; font-weight: 600; } .muted { color: #7a8394; }
            .up { color: #11804a; font-weight: 600; } .down { color: #c0392b; font-weight: 600; }
            table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: .25em .5em; border-bottom: 1px solid #eef0f3; }
            .breaker-closed { color: #11804a; } .breaker-open { color: #c0392b; } .breaker-half-open { color: #b9770e; }
            ul#recent { list-style: none; padding: 0; margin: 0; } ul#recent li { padding: .35em 0; border-bottom: 1px solid #eef0f3; }
            .type-error { color: #c0392b; } svg { width: 100%; height: 120px; background: #fbfcfd; }
            </style></head>
            <body>
            <h1>edge-gateway <span class="muted">hub</span> <span id="hub">\(escape(snapshot.hubID))</span></h1>
            <div class="grid">
            <section><h2>Links</h2>
            <p>Device broker: <span id="devices" class="\(ready.deviceSubscribed ? "up" : "down")">\(ready.deviceSubscribed ? "subscribed" : "not subscribed")</span></p>
            <p>Upstream: <span id="upstream" class="\(ready.upstreamConnected ? "up" : "down")">\(ready.upstreamConnected ? "connected" : "disconnected")</span></p>
            <p class="muted">Live: <span id="live">connecting…</span> <span id="live-seq"></span></p>
            </section>
            <section><h2>Outbox</h2>
            <p><span id="depth" class="big">\(snapshot.depth.count)</span> events waiting, <span id="bytes">\(snapshot.depth.bytes)</span> bytes</p>
            <svg id="chart" viewBox="0 0 600 120" preserveAspectRatio="none" aria-label="outbox depth, last hour"><polyline id="line" fill="none" stroke="#2d6cdf" stroke-width="2" points=""/></svg>
            <p class="muted">up to the last hour</p>
            </section>
            <section><h2>ML endpoints</h2>
            <table><thead><tr><th>endpoint</th><th>breaker</th><th>health</th><th>in flight</th></tr></thead>
            <tbody id="endpoints">\(endpoints)</tbody></table>
            </section>
            <section><h2>Recent dialogs</h2>
            <ul id="recent">\(recent.isEmpty ? "<li class=\"muted\" id=\"no-dialogs\">none yet</li>" : recent)</ul>
            </section>
            </div>
            <script>
            const history = \(history);
            function draw() {
              // The last hour, or since the first sample when the daemon has run for less.
              const now = Date.now(), points = history.filter(p => p.ts >= now - 3600e3);
              const from = points.length ? Math.min(points[0].ts, now - 60e3) : now - 3600e3, span = Math.max(1, now - from);
              const max = Math.max(1, ...points.map(p => p.depth));
              document.getElementById('line').setAttribute('points',
                points.map(p => ((p.ts - from) / span * 600).toFixed(1) + ',' + (115 - p.depth / max * 110).toFixed(1)).join(' '));
            }
            function text(id, value, cls) { const e = document.getElementById(id); e.textContent = value; if (cls) e.className = cls; }
            function esc(s) { return String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c])); }
            function endpoints(list) {
              const body = document.getElementById('endpoints');
              body.innerHTML = list.length === 0
                ? '<tr><td colspan="4" class="muted">no ML endpoints configured (ml.endpoints)</td></tr>'
                : list.map(e => '<tr><td>' + esc(e.endpoint) + '</td><td class="breaker-' + esc(e.breaker) + '">' + esc(e.breaker)
                    + '</td><td>' + esc(e.health || '–') + '</td><td>' + esc(e.outstanding) + '</td></tr>').join('');
            }
            function dialog(m) {
              const p = m.payload || {}, li = document.createElement('li');
              const when = new Date(m.ts).toLocaleTimeString();
              li.className = 'type-' + (m.type === 'error' ? 'error' : 'dialog');
              li.innerHTML = m.type === 'error'
                ? '<b>' + esc(m.deviceId) + '</b> ' + when + ' — error ' + esc(p.code) + ': ' + esc(p.message)
                : '<b>' + esc(m.deviceId) + '</b> ' + when + ' — “' + esc(p.transcript) + '” → ' + esc(p.intent) + ' (' + esc(p.replyText) + ')';
              const list = document.getElementById('recent'), none = document.getElementById('no-dialogs');
              if (none) none.remove();
              list.prepend(li);
              while (list.children.length > 20) list.lastChild.remove();
            }
            function connect() {
              const token = new URLSearchParams(location.search).get('access_token');
              const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/live?device=*' + (token ? '&access_token=' + encodeURIComponent(token) : '');
              const ws = new WebSocket(url);
              ws.onopen = () => text('live', 'connected', 'up');
              ws.onclose = () => { text('live', 'disconnected — retrying', 'down'); setTimeout(connect, 3000); };
              ws.onmessage = event => {
                if (typeof event.data !== 'string') return;
                const m = JSON.parse(event.data);
                text('live-seq', '#' + m.seq);
                if (m.type === 'status') {
                  text('depth', m.outboxDepth); text('bytes', m.outboxBytes);
                  text('upstream', m.upstreamConnected ? 'connected' : 'disconnected', m.upstreamConnected ? 'up' : 'down');
                  text('devices', m.deviceSubscribed ? 'subscribed' : 'not subscribed', m.deviceSubscribed ? 'up' : 'down');
                  history.push({ts: m.ts, depth: m.outboxDepth}); draw();
                  if (m.mlEndpoints) endpoints(m.mlEndpoints);
                } else if (m.type === 'dialog_response' || m.type === 'error') {
                  dialog(m);
                }
              };
            }
            draw(); connect();
            </script>
            </body></html>
            """
    }

    static func renderDialog(_ entry: RecentDialogs.Entry) -> String {
        let payload = (try? JSONSerialization.jsonObject(with: Data(entry.payload.utf8))) as? [String: Any] ?? [:]
        func field(_ key: String) -> String { escape(payload[key].map { "\($0)" } ?? "") }
        let time = Date(timeIntervalSince1970: Double(entry.ts) / 1000).formatted(date: .omitted, time: .standard)
        let device = escape(entry.deviceId)
        if entry.type == "error" {
            return "<li class=\"type-error\"><b>\(device)</b> \(time) — error \(field("code")): \(field("message"))</li>"
        }
        return "<li class=\"type-dialog\"><b>\(device)</b> \(time) — “\(field("transcript"))” → \(field("intent")) (\(field("replyText")))</li>"
    }

    /// HTML text and attribute escaping.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
