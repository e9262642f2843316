import Foundation
import Hummingbird
import NIOCore

/// The status page at `/`: one static HTML document with its style and script inline (no build
/// step, no external assets) that loads the hub's data from `/api/status` and is kept current by
/// the `/live` WebSocket (status every few seconds, dialogs as they are answered).
enum StatusPage {
    /// What `/api/status` answers: everything the page shows, in one request.
    struct Snapshot: Encodable {
        var hubID: String
        var readiness: AdminSources.Readiness
        var depth: (count: Int64, bytes: Int64)
        var endpoints: [EndpointSummary]
        var history: [DepthHistory.Sample]
        var recent: [RecentDialogs.Entry]

        enum CodingKeys: String, CodingKey {
            case hubId, readiness, outboxDepth, outboxBytes, mlEndpoints, history, recent
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(hubID, forKey: .hubId)
            try container.encode(readiness, forKey: .readiness)
            try container.encode(depth.count, forKey: .outboxDepth)
            try container.encode(depth.bytes, forKey: .outboxBytes)
            try container.encode(endpoints, forKey: .mlEndpoints)
            try container.encode(history, forKey: .history)
            try container.encode(recent, forKey: .recent)
        }
    }

    /// Only this document's inline style and script, and requests to its own origin (the
    /// WebSocket included); no frames, forms or plugins.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    /// The page: the same for everyone and without any of the hub's data, so it needs no token.
    /// Its script takes the token from the URL fragment (`/#access_token=<token>`, which the
    /// browser never sends), keeps it in the tab's `sessionStorage` and removes it from the
    /// address bar, loads `/api/status` with `Authorization: Bearer` and follows `/live` (the one
    /// route that takes `?access_token=`). Without `admin.token` no token is needed.
    static let document = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <link rel="icon" href="data:,">
        <title>edge-gateway</title>
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
        #notice { display: none; background: #fdf1e7; border: 1px solid #e8b48a; border-radius: 6px; padding: .6em 1em; margin: 0 0 1em; }
        </style></head>
        <body>
        <h1>edge-gateway <span class="muted">hub</span> <span id="hub">…</span></h1>
        <p id="notice"></p>
        <div class="grid">
        <section><h2>Links</h2>
        <p>Device broker: <span id="devices" class="muted">…</span></p>
        <p>Upstream: <span id="upstream" class="muted">…</span></p>
        <p class="muted">Live: <span id="live">connecting…</span> <span id="live-seq"></span></p>
        </section>
        <section><h2>Outbox</h2>
        <p><span id="depth" class="big">…</span> events waiting, <span id="bytes">…</span> bytes</p>
        <svg id="chart" viewBox="0 0 600 120" preserveAspectRatio="none" aria-label="outbox depth, last hour"><polyline id="line" fill="none" stroke="#2d6cdf" stroke-width="2" points=""/></svg>
        <p class="muted">up to the last hour</p>
        </section>
        <section><h2>ML endpoints</h2>
        <table><thead><tr><th>endpoint</th><th>breaker</th><th>health</th><th>in flight</th></tr></thead>
        <tbody id="endpoints"></tbody></table>
        </section>
        <section><h2>Recent dialogs</h2>
        <ul id="recent"><li class="muted" id="no-dialogs">none yet</li></ul>
        </section>
        </div>
        <script>
        'use strict';
        // The token travels in the fragment, which the browser does not send; it stays in this tab only.
        const fragment = new URLSearchParams(location.hash.slice(1));
        let token = fragment.get('access_token');
        if (token !== null) {
          sessionStorage.setItem('edge-gateway.token', token);
          history.replaceState(null, '', location.pathname + location.search);
        } else {
          token = sessionStorage.getItem('edge-gateway.token');
        }
        const samples = [];
        function draw() {
          // The last hour, or since the first sample when the daemon has run for less.
          const now = Date.now(), points = samples.filter(p => p.ts >= now - 3600e3);
          const from = points.length ? Math.min(points[0].ts, now - 60e3) : now - 3600e3, span = Math.max(1, now - from);
          const max = Math.max(1, ...points.map(p => p.depth));
          document.getElementById('line').setAttribute('points',
            points.map(p => ((p.ts - from) / span * 600).toFixed(1) + ',' + (115 - p.depth / max * 110).toFixed(1)).join(' '));
        }
        function text(id, value, cls) { const e = document.getElementById(id); e.textContent = value; if (cls) e.className = cls; }
        function esc(s) { return String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c])); }
        function notice(message) { const e = document.getElementById('notice'); e.textContent = message; e.style.display = 'block'; }
        function links(deviceSubscribed, upstreamConnected) {
          text('upstream', upstreamConnected ? 'connected' : 'disconnected', upstreamConnected ? 'up' : 'down');
          text('devices', deviceSubscribed ? 'subscribed' : 'not subscribed', deviceSubscribed ? 'up' : 'down');
        }
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
        async function load() {
          const response = await fetch('/api/status', {headers: token ? {Authorization: 'Bearer ' + token} : {}, cache: 'no-store'});
          if (response.status === 401) {
            notice('This hub needs its admin token: open ' + location.origin + '/#access_token=<admin.token>');
            text('live', 'no token', 'down');
            return false;
          }
          if (!response.ok) throw new Error('/api/status answered ' + response.status);
          const s = await response.json();
          text('hub', s.hubId); document.title = 'edge-gateway · ' + s.hubId;
          links(s.readiness.deviceSubscribed, s.readiness.upstreamConnected);
          text('depth', s.outboxDepth); text('bytes', s.outboxBytes);
          samples.push(...s.history); draw();
          endpoints(s.mlEndpoints);
          // Newest first in the answer; dialog() puts each on top.
          for (const e of s.recent.slice().reverse()) {
            let payload = {};
            try { payload = JSON.parse(e.payload); } catch (_) {}
            dialog({ts: e.ts, deviceId: e.deviceId, type: e.type, payload});
          }
          return true;
        }
        function connect() {
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
              links(m.deviceSubscribed, m.upstreamConnected);
              samples.push({ts: m.ts, depth: m.outboxDepth}); draw();
              if (m.mlEndpoints) endpoints(m.mlEndpoints);
            } else if (m.type === 'dialog_response' || m.type === 'error') {
              dialog(m);
            }
          };
        }
        load().then(ok => { if (ok) connect(); }, error => { notice('Could not load the status: ' + error.message); });
        </script>
        </body></html>
        """
}
