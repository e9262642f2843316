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
        var hub: Hub

        enum CodingKeys: String, CodingKey {
            case hubId, readiness, outboxDepth, outboxBytes, mlEndpoints, history, recent
            case now, traffic, outbox, links, devices, disk, problems
            case wake
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
            try container.encode(hub.now, forKey: .now)
            try container.encode(hub.traffic, forKey: .traffic)
            try container.encode(hub.outbox, forKey: .outbox)
            try container.encode(hub.links, forKey: .links)
            try container.encode(hub.devices, forKey: .devices)
            try container.encode(hub.disk, forKey: .disk)
            try container.encode(hub.problems, forKey: .problems)
            try container.encodeIfPresent(hub.wake, forKey: .wake)
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
        body { font: 14px/1.4 system-ui, sans-serif; margin: 1.2em; color: #1d2330; background: #f6f7f9; }
        h1 { font-size: 1.3em; margin: 0 0 .6em; } h2 { font-size: 1.05em; margin: 0 0 .5em; }
        .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: .8em; }
        section { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: .8em 1em; }
        section.wide { grid-column: 1 / -1; } @media (min-width: 1000px) { section.span2 { grid-column: span 2; } }
        .big { font-size: 1.8em; font-weight: 600; } .muted { color: #7a8394; } .small { font-size: .85em; }
        .up { color: #11804a; font-weight: 600; } .down { color: #c0392b; font-weight: 600; } .warn { color: #b9770e; font-weight: 600; }
        table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: .2em .5em; border-bottom: 1px solid #eef0f3; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        .breaker-closed { color: #11804a; } .breaker-open { color: #c0392b; } .breaker-half-open { color: #b9770e; }
        .level-warning { color: #b9770e; font-weight: 600; } .level-error, .level-critical { color: #c0392b; font-weight: 600; }
        #problems td { vertical-align: top; } #problems .details { color: #7a8394; font-size: .85em; word-break: break-all; }
        ul#recent { list-style: none; padding: 0; margin: 0; } ul#recent li { padding: .3em 0; border-bottom: 1px solid #eef0f3; }
        .type-error { color: #c0392b; }
        svg#chart { width: 100%; height: auto; display: block; }
        svg text { font: 11px system-ui, sans-serif; fill: #5a6374; }
        .rates { display: flex; gap: 2em; align-items: baseline; } .in { color: #2d6cdf; } .out { color: #11804a; }
        #device-table th { cursor: pointer; user-select: none; white-space: nowrap; } #device-table th.sorted-asc::after { content: " ▲"; }
        #device-table th.sorted-desc::after { content: " ▼"; }
        #device-filter { padding: .3em .5em; width: 16em; border: 1px solid #c8ced8; border-radius: 4px; }
        .reasons { margin: .2em 0 0; padding-left: 1.2em; } .err { color: #c0392b; font-size: .9em; }
        #notice { display: none; background: #fdf1e7; border: 1px solid #e8b48a; border-radius: 6px; padding: .6em 1em; margin: 0 0 1em; }
        </style></head>
        <body>
        <h1>edge-gateway <span class="muted">hub</span> <span id="hub">…</span>
          <span class="muted small">· live: <span id="live">connecting…</span> <span id="live-seq"></span></span></h1>
        <p id="notice"></p>
        <div class="grid">
        <section class="span2"><h2>Traffic</h2>
        <div class="rates"><div><span id="rate-in" class="big in">…</span> <span class="muted">events/s in</span></div>
        <div><span id="rate-out" class="big out">…</span> <span class="muted">events/s out</span></div></div>
        <svg id="chart" viewBox="0 0 800 185" role="img" aria-label="events per second in and out, last hour">
        <g id="axes"></g>
        <polyline id="line-in" fill="none" stroke="#2d6cdf" stroke-width="2" points=""/>
        <polyline id="line-out" fill="none" stroke="#11804a" stroke-width="2" stroke-dasharray="5 3" points=""/>
        </svg>
        <p class="muted small"><span class="in">━ in</span> (events taken from devices) · <span class="out">╍ out</span> (forwarded upstream) · up to the last hour</p>
        </section>
        <section><h2>Totals <span class="muted small">since start</span></h2>
        <table><tbody>
        <tr><td>stored</td><td class="num" id="total-stored">…</td></tr>
        <tr><td>forwarded</td><td class="num" id="total-forwarded">…</td></tr>
        <tr><td>duplicate</td><td class="num" id="total-duplicate">…</td></tr>
        <tr><td>rejected</td><td class="num" id="total-rejected">…</td></tr>
        </tbody></table>
        <p class="small">Rejected by reason:</p>
        <ul class="reasons small" id="rejected-reasons"><li class="muted">none</li></ul>
        <p class="small">Dropped by reason <span class="muted">(since the store was created)</span>: <span id="total-dropped">…</span></p>
        <ul class="reasons small" id="dropped-reasons"><li class="muted">none</li></ul>
        </section>
        <section class="span2"><h2>Links</h2>
        <table id="links"><thead><tr><th>link</th><th>address</th><th>state</th><th>since</th></tr></thead><tbody>
        <tr id="link-device"><td>device broker</td><td class="address">…</td><td class="state">…</td><td class="since"></td></tr>
        <tr><td colspan="4" class="err" id="link-device-error"></td></tr>
        <tr id="link-upstream"><td>upstream</td><td class="address">…</td><td class="state">…</td><td class="since"></td></tr>
        <tr><td colspan="4" class="err" id="link-upstream-error"></td></tr>
        <tr id="link-wake" hidden><td>wake word</td><td class="address">…</td><td class="state">…</td><td class="since"></td></tr>
        <tr><td colspan="4" class="err" id="link-wake-error"></td></tr>
        <tr id="wake-detections" hidden><td colspan="4" class="small"></td></tr>
        </tbody></table>
        <h2 style="margin-top:.8em">ML endpoints</h2>
        <table><thead><tr><th>endpoint</th><th>breaker</th><th>health</th><th class="num">in flight</th></tr></thead>
        <tbody id="endpoints"></tbody></table>
        </section>
        <section><h2>Outbox</h2>
        <p><span id="depth" class="big">…</span> events waiting, <span id="bytes">…</span></p>
        <p>oldest waiting: <span id="oldest">…</span></p>
        <p>written to disk: <span id="disk-day" class="big">…</span> <span class="muted">per day</span><br>
        <span class="muted small" id="disk-total"></span></p>
        </section>
        <section class="wide"><h2>Recent warnings and errors <span class="muted small">(the journal has them all)</span></h2>
        <table><tbody id="problems"><tr><td class="muted">none since start</td></tr></tbody></table>
        </section>
        <section class="wide"><h2>Devices <span class="muted small" id="device-count"></span></h2>
        <p><input id="device-filter" type="search" placeholder="filter by id" aria-label="filter devices by id"> <span class="muted small" id="device-more"></span></p>
        <table id="device-table"><thead><tr>
        <th data-key="deviceId">device</th><th data-key="online">online</th><th data-key="lastSeenMs">last seen</th>
        <th data-key="events" class="num">events</th><th data-key="rejected" class="num">rejects</th>
        <th data-key="pendingCommands" class="num" title="cloud commands not finished yet">commands</th>
        </tr></thead><tbody id="device-rows"></tbody></table>
        </section>
        <section class="wide"><h2>Recent dialogs</h2>
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
        const SVG = 'http://www.w3.org/2000/svg', HOUR = 3600e3, MAX_ROWS = 200;
        // Counter samples {ts, received, forwarded}: the rates are their differences.
        let samples = [];
        const devices = {byId: new Map(), list: [], onlineSeconds: 300, sort: 'lastSeenMs', desc: true};
        function text(id, value, cls) { const e = document.getElementById(id); e.textContent = value; if (cls !== undefined) e.className = cls; }
        function esc(s) { return String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c])); }
        function notice(message) { const e = document.getElementById('notice'); e.textContent = message; e.style.display = 'block'; }
        function count(n) { return Number(n).toLocaleString('en-US'); }
        function bytes(n) {
          const units = ['bytes', 'KiB', 'MiB', 'GiB']; let i = 0; n = Number(n);
          while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
          return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
        }
        function duration(seconds) {
          seconds = Math.max(0, Math.round(seconds));
          if (seconds < 90) return seconds + ' s';
          if (seconds < 5400) return Math.round(seconds / 60) + ' min';
          if (seconds < 172800) return (seconds / 3600).toFixed(1) + ' h';
          return Math.round(seconds / 86400) + ' d';
        }
        function clock(ms) { return new Date(ms).toLocaleTimeString('en-GB', {hour12: false}); }
        function rate(value) { return value < 10 ? value.toFixed(1) : Math.round(value).toString(); }
        function addSample(ts, traffic) {
          if (!traffic) return;
          samples.push({ts, received: traffic.received, forwarded: traffic.forwarded});
          samples = samples.filter(s => s.ts >= ts - HOUR).sort((a, b) => a.ts - b.ts);
        }
        // Events per second between consecutive samples (a counter that went back is a restart: skipped).
        function rates(key) {
          const out = [];
          for (let i = 1; i < samples.length; i++) {
            const dt = (samples[i].ts - samples[i - 1].ts) / 1000, dv = samples[i][key] - samples[i - 1][key];
            if (dt > 0 && dv >= 0) out.push({ts: samples[i].ts, v: dv / dt});
          }
          return out;
        }
        // The current rate: over the last 10 s of samples (or the last two samples when they are further apart).
        function current(key) {
          if (samples.length < 2) return null;
          const last = samples[samples.length - 1];
          let first = samples[samples.length - 2];
          for (const s of samples) { if (s.ts >= last.ts - 10e3 && s.ts < last.ts) { first = s; break; } }
          const dt = (last.ts - first.ts) / 1000, dv = last[key] - first[key];
          return dt > 0 && dv >= 0 ? dv / dt : null;
        }
        function niceCeil(v) {
          if (v <= 1) return 1;
          const p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
          return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
        }
        function svg(name, attrs, content) {
          const e = document.createElementNS(SVG, name);
          for (const k in attrs) e.setAttribute(k, attrs[k]);
          if (content !== undefined) e.textContent = content;
          return e;
        }
        // Plot area: x 52..790, y 10..145; y axis in events/s, x axis in clock time.
        function draw() {
          const left = 52, right = 790, top = 10, bottom = 145;
          const ins = rates('received'), outs = rates('forwarded');
          const now = samples.length ? samples[samples.length - 1].ts : Date.now();
          const first = samples.length ? samples[0].ts : now;
          const from = Math.min(first, now - 60e3), span = Math.max(1, now - from);
          const top_ = niceCeil(Math.max(0, ...ins.map(p => p.v), ...outs.map(p => p.v)));
          const x = ts => left + (ts - from) / span * (right - left), y = v => bottom - v / top_ * (bottom - top);
          const axes = document.getElementById('axes');
          axes.replaceChildren();
          for (const v of [0, top_ / 2, top_]) {
            axes.append(svg('line', {x1: left, x2: right, y1: y(v), y2: y(v), stroke: v === 0 ? '#5a6374' : '#e4e7ec'}));
            axes.append(svg('text', {x: left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'y-tick'}, top_ >= 2 ? String(Math.round(v)) : v.toFixed(1)));
          }
          axes.append(svg('line', {x1: left, x2: left, y1: top, y2: bottom, stroke: '#5a6374'}));
          axes.append(svg('text', {x: 12, y: (top + bottom) / 2, transform: 'rotate(-90 12 ' + (top + bottom) / 2 + ')', 'text-anchor': 'middle', class: 'y-label'}, 'events/s'));
          for (let i = 0; i <= 4; i++) {
            const ts = from + span * i / 4;
            axes.append(svg('line', {x1: x(ts), x2: x(ts), y1: bottom, y2: bottom + 4, stroke: '#5a6374'}));
            axes.append(svg('text', {x: x(ts), y: bottom + 17, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', class: 'x-tick'}, clock(ts)));
          }
          axes.append(svg('text', {x: right, y: bottom + 32, 'text-anchor': 'end', class: 'x-label'}, 'local time'));
          const line = points => points.map(p => x(p.ts).toFixed(1) + ',' + y(p.v).toFixed(1)).join(' ');
          document.getElementById('line-in').setAttribute('points', line(ins));
          document.getElementById('line-out').setAttribute('points', line(outs));
          const rin = current('received'), rout = current('forwarded');
          text('rate-in', rin === null ? '–' : rate(rin));
          text('rate-out', rout === null ? '–' : rate(rout));
        }
        function reasons(id, byReason) {
          const list = document.getElementById(id), entries = Object.entries(byReason || {}).filter(e => e[1] > 0).sort((a, b) => b[1] - a[1]);
          list.innerHTML = entries.length === 0 ? '<li class="muted">none</li>'
            : entries.map(e => '<li><span class="reason">' + esc(e[0]) + '</span>: <b>' + count(e[1]) + '</b></li>').join('');
        }
        function traffic(t) {
          if (!t) return;
          text('total-stored', count(t.stored)); text('total-forwarded', count(t.forwarded));
          text('total-duplicate', count(t.duplicate)); text('total-rejected', count(t.rejected));
          reasons('rejected-reasons', t.rejectedByReason);
          if (t.droppedByReason) {
            reasons('dropped-reasons', t.droppedByReason);
            text('total-dropped', count(Object.values(t.droppedByReason).reduce((a, b) => a + b, 0)));
          }
        }
        function outbox(o, depth, size) {
          text('depth', depth); text('bytes', bytes(size));
          if (o) text('oldest', o.oldestAgeSeconds === null || o.oldestAgeSeconds === undefined ? 'nothing waiting' : duration(o.oldestAgeSeconds) + ' ago');
        }
        function link(id, l, now) {
          const row = document.getElementById(id);
          // Several upstream addresses (upstream.hosts): the one in use, of how many, and the failovers so far.
          row.querySelector('.address').textContent = (l.address || '–')
            + (l.addresses && l.addresses.length > 1 ? ' (of ' + l.addresses.length + ': ' + l.addresses.join(', ') + ')' : '')
            + (l.failovers ? ' · ' + count(l.failovers) + (l.failovers === 1 ? ' failover' : ' failovers') : '');
          const state = row.querySelector('.state');
          state.textContent = l.state;
          state.className = 'state ' + (l.state === 'down' ? 'down' : l.state === 'connected' && id === 'link-device' ? 'warn' : 'up');
          row.querySelector('.since').textContent = l.sinceMs ? clock(l.sinceMs) + ' (' + duration((now - l.sinceMs) / 1000) + ')' : '–';
          text(id + '-error', l.lastError ? (l.state === 'down' ? 'error: ' : 'last error: ') + l.lastError : '');
        }
        function disk(d) {
          if (!d) return;
          text('disk-day', d.writtenPerDayBytes === null || d.writtenPerDayBytes === undefined ? 'measuring…' : bytes(d.writtenPerDayBytes));
          text('disk-total', d.writtenBytes === null || d.writtenBytes === undefined ? 'the kernel does not count the daemon’s writes'
            : bytes(d.writtenBytes) + ' since start, by the store (rate of the last hour)');
        }
        function problems(list) {
          if (!list) return;
          document.getElementById('problems').innerHTML = list.length === 0 ? '<tr><td class="muted">none since start</td></tr>'
            : list.map(p => '<tr><td>' + clock(p.ts) + '</td><td class="level-' + esc(p.level) + '">' + esc(p.level) + (p.count > 1 ? ' ×' + count(p.count) : '')
              + '</td><td>' + esc(p.message) + '<div class="details">' + esc(p.logger) + (p.details ? ' · ' + esc(p.details) : '') + '</div></td></tr>').join('');
        }
        function links(l, now) {
          if (!l) return;
          link('link-device', l.deviceBroker, now);
          link('link-upstream', l.upstream, now);
        }
        function wake(w, now) {
          // The hub microphone's wake-word server (audio.wake.endpoint): absent without one.
          if (!w) return;
          document.getElementById('link-wake').hidden = false;
          link('link-wake', w, now);
          const row = document.getElementById('wake-detections');
          row.hidden = false;
          row.firstElementChild.textContent = 'wake words heard (' + w.mode + ' mode): ' + count(w.detections)
            + (w.lastName ? ', last “' + w.lastName + '” at ' + clock(w.lastMs) + ' (' + duration((now - w.lastMs) / 1000) + ' ago)' : '')
            + (w.state === 'down' && w.mode === 'wake' ? ' — the server is down: only push-to-talk opens a dialog' : '');
        }
        function endpoints(list) {
          const body = document.getElementById('endpoints');
          body.innerHTML = list.length === 0
            ? '<tr><td colspan="4" class="muted">no ML endpoints configured (ml.endpoints)</td></tr>'
            : list.map(e => '<tr><td>' + esc(e.endpoint) + (e.wyoming ? '<div class="details">' + esc(e.wyoming.services.join(', ') || 'nothing offered')
                + (e.wyoming.programs.length ? ' · ' + esc(e.wyoming.programs.join(', ')) : '') + (e.wyoming.languages.length ? ' · ' + esc(e.wyoming.languages.slice(0, 8).join(' ')) : '')
                + (e.wyoming.streamsTranscripts ? ' · streams' : '') + '</div>' : '') + '</td><td class="breaker-' + esc(e.breaker) + '">' + esc(e.breaker)
                + '</td><td>' + esc(e.health || '–') + '</td><td class="num">' + esc(e.outstanding) + '</td></tr>').join('');
        }
        function renderDevices() {
          const filter = document.getElementById('device-filter').value.trim().toLowerCase();
          const key = devices.sort, sign = devices.desc ? -1 : 1;
          const value = d => key === 'online' ? (d.online ? 1 : 0) : key === 'deviceId' ? d.deviceId : (d[key] || 0);
          const matches = devices.list.filter(d => d.deviceId.toLowerCase().includes(filter));
          matches.sort((a, b) => { const va = value(a), vb = value(b); return (va < vb ? -1 : va > vb ? 1 : a.deviceId < b.deviceId ? -1 : 1) * sign; });
          const now = devices.now || Date.now();
          document.getElementById('device-rows').innerHTML = matches.length === 0
            ? '<tr><td colspan="6" class="muted">' + (devices.list.length === 0 ? 'no device heard from since start' : 'no device matches the filter') + '</td></tr>'
            : matches.slice(0, MAX_ROWS).map(d => '<tr><td>' + esc(d.deviceId) + '</td><td class="' + (d.online ? 'up' : 'muted') + '">' + (d.online ? 'online' : 'offline')
              + '</td><td>' + (d.lastSeenMs ? clock(d.lastSeenMs) + ' (' + duration((now - d.lastSeenMs) / 1000) + ' ago)' : '–')
              + '</td><td class="num">' + count(d.events) + '</td><td class="num">' + count(d.rejected)
              + '</td><td class="num">' + (d.pendingCommands === null || d.pendingCommands === undefined ? '–' : count(d.pendingCommands)) + '</td></tr>').join('');
          text('device-more', matches.length > MAX_ROWS ? 'showing ' + MAX_ROWS + ' of ' + count(matches.length) + ' matches: ' + count(matches.length - MAX_ROWS) + ' more (narrow the filter)'
            : filter ? count(matches.length) + ' match' + (matches.length === 1 ? '' : 'es') : '');
          for (const th of document.querySelectorAll('#device-table th')) {
            th.className = (['events', 'rejected', 'pendingCommands'].includes(th.dataset.key) ? 'num ' : '') + (th.dataset.key === key ? (devices.desc ? 'sorted-desc' : 'sorted-asc') : '');
          }
        }
        function deviceList(d, now) {
          if (!d) return;
          // The first status (and /api/status) lists every device; later /live messages only what changed.
          if (d.list) devices.byId = new Map(d.list.map(e => [e.deviceId, e]));
          for (const e of d.changed || []) devices.byId.set(e.deviceId, e);
          for (const id of d.removed || []) devices.byId.delete(id);
          devices.list = Array.from(devices.byId.values()); devices.onlineSeconds = d.onlineSeconds; devices.now = now;
          text('device-count', count(d.total) + ' seen since start, ' + count(d.online) + ' online (sent within ' + duration(d.onlineSeconds) + ')');
          renderDevices();
        }
        document.getElementById('device-filter').addEventListener('input', renderDevices);
        for (const th of document.querySelectorAll('#device-table th')) {
          th.addEventListener('click', () => {
            if (devices.sort === th.dataset.key) devices.desc = !devices.desc;
            else { devices.sort = th.dataset.key; devices.desc = th.dataset.key !== 'deviceId'; }
            renderDevices();
          });
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
        function hub(s, ts) {
          traffic(s.traffic); outbox(s.outbox, s.outboxDepth, s.outboxBytes);
          links(s.links, s.now || ts); wake(s.wake, s.now || ts); deviceList(s.devices, s.now || ts); disk(s.disk); problems(s.problems);
          if (s.mlEndpoints) endpoints(s.mlEndpoints);
          addSample(s.now || ts, s.traffic); draw();
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
          samples = s.history.map(h => ({ts: h.ts, received: h.received, forwarded: h.forwarded}));
          hub(s, s.now);
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
              hub(m, m.ts);
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
