// The feed shared by the MapLibre page (/) and the Leaflet page (/lite): one WebSocket to the
// node, the state it builds, the alert list, the status line and the replay controls.
//
// Test hook (read-only, documented in docs/interface.md): window.borderfusion
//   .tracks   copies of the tracks of the newest snapshot this browser received
//   .alerts   copies of the alerts this browser holds (the newest ALERTS_HELD), newest first, each with its ack state
//   .status   the node's newest status, plus {connected, view, snapshot_t, snapshot_produced (node's
//             wall clock when it handed the snapshot over), snapshot_sent (map server's wall clock when it made
//             the frame for this view), snapshot_received, snapshot_drawn, frames}
//   .replay   the replay state (null outside replay mode)
//   .ready    true once the first 'hello' frame has arrived
//   .costs    the page's main-thread milliseconds for each of the newest COSTS_HELD snapshots:
//             {t, tracks, parse_ms (JSON.parse of the frame), state_ms (tracks and trails), view_ms (the
//             map's share: preparing and drawing them), ...the view's own parts (e.g. build_ms, draw_ms)}

const TRAIL_POINTS = 20;
const TRAIL_FORGET_S = 120;
// A busy border raises hundreds of alerts a second: the page keeps the newest ALERTS_HELD (the node
// keeps them all), lists the newest ALERTS_LISTED, and redraws the list and the markers at once
// for a lone alert but at most once per ALERTS_RENDER_MS in a flood (once per alert is quadratic,
// and each marker update repaints the whole map: tens of ms per frame in software WebGL).
const ALERTS_HELD = 1000;
const ALERTS_LISTED = 200;
const ALERTS_RENDER_MS = 1000;
const COSTS_HELD = 120;
const SEVERITY_COLOUR = {high: '#c0392b', medium: '#e67e22', low: '#2e86c1'};

export function severityColour(severity) { return SEVERITY_COLOUR[severity] || '#7f8c8d'; }

export function connectFeed(view) {
  const params = new URLSearchParams(location.search);
  const state = {
    ready: false, connected: false, view: null, operator: null, site: null, jurisdictions: null, sensors: [],
    tracks: [], alerts: new Map(), acks: new Map(), status: null, replay: null, controls: false,
    costs: [], parseMs: 0,
    snapshotT: null, snapshotProduced: null, snapshotSent: null, snapshotReceived: null, snapshotDrawn: null, frames: 0, trails: new Map(),
    ellipseScale: 2.4477, error: null, basemap: null,
  };
  const copy = (x) => JSON.parse(JSON.stringify(x));
  const alertsNewestFirst = () => [...state.alerts.values()].sort((a, b) => b.t - a.t || (b.alert_id < a.alert_id ? -1 : 1));
  window.borderfusion = Object.freeze({
    get ready() { return state.ready; },
    get tracks() { return copy(state.tracks); },
    get alerts() { return alertsNewestFirst().map((a) => ({...copy(a), ack: copy(state.acks.get(a.alert_id) || null)})); },
    get status() {
      return {...copy(state.status || {}), connected: state.connected, view: state.view, snapshot_t: state.snapshotT,
              snapshot_produced: state.snapshotProduced, snapshot_sent: state.snapshotSent, snapshot_received: state.snapshotReceived,
              snapshot_drawn: state.snapshotDrawn, frames: state.frames};
    },
    get replay() { return copy(state.replay); },
    get costs() { return copy(state.costs); },
  });

  let socket = null;
  function send(message) { if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message)); }

  function takeSnapshot(frame) {
    const started = performance.now();
    state.tracks = frame.tracks;
    state.snapshotT = frame.t;
    state.snapshotProduced = frame.produced;
    state.snapshotSent = frame.sent;
    state.snapshotReceived = Date.now() / 1000;
    const seen = new Set();
    for (const track of frame.tracks) {
      seen.add(track.track_id);
      const trail = state.trails.get(track.track_id) || {points: [], last: 0};
      trail.points.push([track.lon, track.lat]);
      if (trail.points.length > TRAIL_POINTS) trail.points.shift();
      trail.last = frame.t;
      state.trails.set(track.track_id, trail);
    }
    for (const [id, trail] of state.trails) if (!seen.has(id) && frame.t - trail.last > TRAIL_FORGET_S) state.trails.delete(id);
    const viewStarted = performance.now();
    const viewCosts = view.tracks(state) || {};
    const done = performance.now();
    state.snapshotDrawn = Date.now() / 1000;
    const round = (ms) => Math.round(ms * 100) / 100;
    state.costs.push({t: frame.t, tracks: frame.tracks.length, parse_ms: round(state.parseMs),
                      state_ms: round(viewStarted - started), view_ms: round(done - viewStarted),
                      ...Object.fromEntries(Object.entries(viewCosts).map(([key, ms]) => [key, round(ms)]))});
    if (state.costs.length > COSTS_HELD) state.costs.shift();
  }

  function handle(frame) {
    state.frames += 1;
    switch (frame.type) {
      case 'batch': state.frames -= 1; for (const f of frame.frames) handle(f); break;
      case 'hello':
        state.ready = true; state.view = frame.view; state.operator = frame.operator; state.site = frame.site;
        state.jurisdictions = frame.jurisdictions; state.sensors = frame.sensors; state.status = frame.status;
        state.replay = frame.replay; state.controls = frame.controls; state.basemap = frame.basemap; state.ellipseScale = frame.ellipse_sigma_scale;
        state.alerts = new Map(frame.alerts.map((a) => [a.alert_id, a]));
        forgetOldAlerts();
        state.acks = new Map(frame.acks.map((a) => [a.alert_id, a]));
        view.site(state);
        if (frame.snapshot) takeSnapshot(frame.snapshot);
        renderAlerts(); renderStatus(); renderReplay();
        break;
      case 'snapshot':
        takeSnapshot(frame); renderStatus();
        // flow control: ask for the next snapshot once this one is painted (after the next frame)
        requestAnimationFrame(() => setTimeout(() => send({type: 'drawn', t: frame.t}), 0));
        break;
      case 'alert':
        state.alerts.set(frame.alert.alert_id, frame.alert);
        forgetOldAlerts();
        scheduleAlerts();
        break;
      case 'ack': state.acks.set(frame.ack.alert_id, frame.ack); scheduleAlerts(); break;
      case 'status': state.status = frame.status; renderStatus(); break;
      case 'replay': state.replay = frame.replay; renderReplay(); break;
      case 'reset': state.alerts.clear(); state.tracks = []; state.trails.clear(); renderAlerts(); view.tracks(state); view.alerts(state); break;
      case 'error': state.error = frame.error; renderStatus(); break;
    }
  }

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = new URLSearchParams();
    if (params.get('token')) query.set('token', params.get('token'));
    if (params.get('operator')) query.set('operator', params.get('operator'));
    socket = new WebSocket(`${scheme}//${location.host}/ws?${query}`);
    socket.onopen = () => { state.connected = true; renderStatus(); };
    socket.onmessage = (event) => {
      const started = performance.now();
      const frame = JSON.parse(event.data);
      state.parseMs = performance.now() - started;
      handle(frame);
    };
    socket.onclose = () => { state.connected = false; renderStatus(); setTimeout(connect, 2000); };
  }

  // -- alert list -------------------------------------------------------------------------
  // the oldest arrived first (the Map keeps arrival order)
  function forgetOldAlerts() {
    while (state.alerts.size > ALERTS_HELD) state.alerts.delete(state.alerts.keys().next().value);
  }
  let alertsDue = null, alertsDrawn = -Infinity;
  function scheduleAlerts() {
    if (alertsDue !== null) return;
    const wait = Math.max(0, alertsDrawn + ALERTS_RENDER_MS - performance.now());
    alertsDue = setTimeout(() => { alertsDue = null; alertsDrawn = performance.now(); renderAlerts(); view.alerts(state); }, wait);
  }
  const list = document.getElementById('alerts');
  function renderAlerts() {
    list.replaceChildren();
    const newest = alertsNewestFirst();
    for (const alert of newest.slice(0, ALERTS_LISTED)) {
      const ack = state.acks.get(alert.alert_id);
      const item = document.createElement('li');
      item.className = `alert ${alert.severity}${ack ? ' ' + ack.state : ''}`;
      item.dataset.alertId = alert.alert_id;
      item.style.borderLeftColor = severityColour(alert.severity);
      const where = alert.from_jurisdiction && alert.to_jurisdiction
        ? `${alert.from_jurisdiction} → ${alert.to_jurisdiction}` : alert.jurisdiction;
      const head = document.createElement('div');
      head.className = 'alert-head';
      head.textContent = `${alert.type.replace('_', ' ')} · ${alert.severity} · ${(alert.time || '').slice(11, 19)}Z`;
      const body = document.createElement('div');
      body.className = 'alert-body';
      body.textContent = `${alert.track_id} · ${where}`;
      item.append(head, body);
      if (ack) {
        const note = document.createElement('div');
        note.className = 'alert-ack';
        note.textContent = `${ack.state} by ${ack.operator}`;
        item.append(note);
      } else {
        for (const [label, ackState] of [['Ack', 'acknowledged'], ['Dismiss', 'dismissed']]) {
          const button = document.createElement('button');
          button.textContent = label;
          button.className = `ack-${ackState}`;
          button.onclick = (event) => { event.stopPropagation(); send({type: 'ack', alert_id: alert.alert_id, state: ackState}); };
          item.append(button);
        }
      }
      item.onclick = () => {
        const track = state.tracks.find((t) => t.track_id === alert.track_id);
        view.flyTo(track ? [track.lon, track.lat] : [alert.lon, alert.lat]);
      };
      list.append(item);
    }
    if (newest.length > ALERTS_LISTED) {
      const more = document.createElement('li');
      more.className = 'alert-more';
      more.textContent = `… ${newest.length - ALERTS_LISTED} older alerts`;
      list.append(more);
    }
  }

  // -- status line ------------------------------------------------------------------------
  const statusBox = document.getElementById('status');
  function renderStatus() {
    const s = state.status || {};
    const c = s.counters || {};
    const age = state.snapshotReceived && state.snapshotProduced ? (state.snapshotReceived - state.snapshotProduced).toFixed(2) : '–';
    statusBox.replaceChildren();
    const rows = [
      ['feed', state.connected ? 'connected' : 'disconnected'], ['view', state.view === '*' ? 'all agencies' : state.view],
      ['node', `${s.node_id || '?'} ${s.state || ''}`], ['lag', s.lag_s !== undefined ? `${s.lag_s} s` : '–'],
      ['shed', c.shed !== undefined ? c.shed : 0], ['received', c.received ?? '–'], ['alerts', c.alerts ?? '–'],
      ['tracks', state.tracks.length], ['delay', `${age} s`],
    ];
    if (state.error) rows.push(['error', state.error]);
    for (const [key, value] of rows) {
      const span = document.createElement('span');
      span.className = `status-${key}`;
      span.textContent = `${key}: ${value}`;
      statusBox.append(span);
    }
    statusBox.classList.toggle('offline', !state.connected || s.state === 'offline');
  }

  // -- replay controls --------------------------------------------------------------------
  const controls = document.getElementById('replay');
  function renderReplay() {
    if (!state.controls || !state.replay) { controls.hidden = true; return; }
    controls.hidden = false;
    const r = state.replay;
    const slider = document.getElementById('replay-time');
    slider.min = r.t_start; slider.max = r.t_end; slider.step = 1;
    if (document.activeElement !== slider) slider.value = r.t;
    document.getElementById('replay-play').textContent = r.playing ? 'Pause' : 'Play';
    document.getElementById('replay-clock').textContent = `${new Date(r.t * 1000).toISOString().slice(11, 19)}Z ×${r.speed}`;
    document.getElementById('replay-speed').value = String(r.speed);
  }
  if (controls) {
    document.getElementById('replay-play').onclick = () => send({type: 'control', action: state.replay && state.replay.playing ? 'pause' : 'play'});
    document.getElementById('replay-speed').onchange = (e) => send({type: 'control', action: 'speed', value: Number(e.target.value)});
    document.getElementById('replay-time').onchange = (e) => send({type: 'control', action: 'seek', value: Number(e.target.value)});
  }

  connect();
  return state;
}

// -- geometry helpers shared by both pages ------------------------------------------------
const EARTH_M = 6371008.8;

// A point `distance_m` from [lon, lat] on `bearing_deg` (local flat-earth: fine for km).
export function offset([lon, lat], distance_m, bearing_deg) {
  const b = bearing_deg * Math.PI / 180;
  const dLat = distance_m * Math.cos(b) / EARTH_M * 180 / Math.PI;
  const dLon = distance_m * Math.sin(b) / (EARTH_M * Math.cos(lat * Math.PI / 180)) * 180 / Math.PI;
  return [lon + dLon, lat + dLat];
}

export function circle(center, radius_m, n = 48) {
  const ring = [];
  for (let i = 0; i <= n; i++) ring.push(offset(center, radius_m, 360 * i / n));
  return ring;
}

// The uncertainty ellipse (semi-axes a ≥ b in metres, major axis on bearing o) at `scale` σ.
export function ellipse(center, [a, b, o], scale, n = 24) {
  const ring = [];
  const rot = o * Math.PI / 180;
  for (let i = 0; i <= n; i++) {
    const u = 2 * Math.PI * i / n;
    const along = a * scale * Math.cos(u), across = b * scale * Math.sin(u);
    const east = along * Math.sin(rot) + across * Math.cos(rot);
    const north = along * Math.cos(rot) - across * Math.sin(rot);
    ring.push(offset(center, Math.hypot(east, north), Math.atan2(east, north) * 180 / Math.PI));
  }
  return ring;
}

// Where the track will be in `seconds` at its speed and heading: the heading line's tip.
export function ahead(track, seconds) {
  return offset([track.lon, track.lat], Math.max(track.speed_mps * seconds, 30), track.heading_deg);
}
