// The tracks of the MapLibre page, drawn on a 2-D canvas laid over the map.
//
// Why not MapLibre layers: each snapshot handed to a GeoJSON source costs the map four frames
// (one when the worker has parsed the data, one when its tiles are cut, one to place the symbols,
// one for the second source), and without a GPU each frame costs ~50–100 ms of CPU in the software
// WebGL renderer however little changed: 2,000 tracks a second then took ~0.7 of a core per browser.
// Here a snapshot is one pass over plain arrays and one canvas: the map draws no frame at all.
// The alert markers are drawn here too: in a flood they change every second, as the tracks do.
//
// Geometry: positions are kept as Web Mercator "world" coordinates (x east, y south, the whole
// world 0…1); with no pitch the map's screen is an affine image of the world plane,
//   screen = p₀ + s · R(−β) · (w − c),   s = 512 · 2^zoom px per world unit, β the map's bearing,
// c the world point at the map's centre and p₀ where MapLibre draws it. A length of L metres at
// latitude φ spans L / (C · cos φ) world units (C the equator's length), so an uncertainty
// ellipse stays an ellipse, drawn by the canvas itself (no vertex ring to build).
import {ahead} from '/static/feed.js';
import {CLASS_STYLE, drawSymbol} from '/static/symbols.js';

const WORLD_PX = 512;  // MapLibre's tile size: world px at zoom 0
const EQUATOR_M = 40075016.686;
const SYMBOL_PX = 18;
// an ellipse smaller than the symbol says nothing: drawn only when its semi-major axis spans ≥ 6 px
const ELLIPSE_MIN_PX = 6;
// ids from this zoom on (as the labels layer was): 2,000 ids at the site's zoom would be a smear
export const LABEL_MIN_ZOOM = 13.5;
const CULL_MARGIN_PX = 24;

export function worldX(lon) { return (lon + 180) / 360; }
export function worldY(lat) {
  const s = Math.sin(lat * Math.PI / 180);
  return 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
}

// A snapshot as the overlay draws it: flat arrays of world coordinates, made once per snapshot.
export function prepare(tracks, trails, ellipseScale) {
  const n = tracks.length;
  const x = new Float64Array(n), y = new Float64Array(n), tipX = new Float64Array(n), tipY = new Float64Array(n);
  const major = new Float64Array(n), minor = new Float64Array(n), bearing = new Float64Array(n);
  const trailStart = new Int32Array(n + 1);
  let points = 0;
  for (let i = 0; i < n; i++) {
    const trail = trails.get(tracks[i].track_id);
    trailStart[i] = points;
    points += trail && trail.points.length > 1 ? trail.points.length : 0;
  }
  trailStart[n] = points;
  const trailXY = new Float64Array(2 * points);
  for (let i = 0; i < n; i++) {
    const t = tracks[i];
    x[i] = worldX(t.lon); y[i] = worldY(t.lat);
    const [tipLon, tipLat] = ahead(t, 60);
    tipX[i] = worldX(tipLon); tipY[i] = worldY(tipLat);
    const perMetre = ellipseScale / (EQUATOR_M * Math.cos(t.lat * Math.PI / 180));
    major[i] = t.ellipse_m[0] * perMetre; minor[i] = t.ellipse_m[1] * perMetre;
    bearing[i] = t.ellipse_m[2] * Math.PI / 180;
    if (trailStart[i + 1] > trailStart[i]) {
      let k = 2 * trailStart[i];
      for (const [lon, lat] of trails.get(t.track_id).points) { trailXY[k++] = worldX(lon); trailXY[k++] = worldY(lat); }
    }
  }
  return {n, tracks, x, y, tipX, tipY, major, minor, bearing, trailStart, trailXY};
}

// The alerts the page holds as the overlay draws them: world coordinates and a colour each.
export function prepareAlerts(alerts, colourOf) {
  const list = [...alerts], n = list.length;
  const x = new Float64Array(n), y = new Float64Array(n), colour = new Array(n);
  list.forEach((a, i) => { x[i] = worldX(a.lon); y[i] = worldY(a.lat); colour[i] = colourOf(a.severity); });
  return {n, x, y, colour};
}

// The world → screen map of the map's current view (see the header); MapLibre places the centre.
export function screenTransform(map) {
  const center = map.getCenter();
  const p = map.project(center);
  const scale = WORLD_PX * 2 ** map.getZoom();
  const beta = map.getBearing() * Math.PI / 180;
  return {ox: p.x, oy: p.y, cx: worldX(center.lng), cy: worldY(center.lat), scale, beta, zoom: map.getZoom(),
          a: scale * Math.cos(beta), b: scale * Math.sin(beta)};
}

const sprites = new Map();
function sprite(cls, coasting) {
  const key = `${CLASS_STYLE[cls] ? cls : 'unknown'}:${coasting}`;
  if (!sprites.has(key)) {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = SYMBOL_PX;
    drawSymbol(canvas.getContext('2d'), cls, SYMBOL_PX / 2, SYMBOL_PX / 2, 7, coasting ? 0.4 : 1);
    sprites.set(key, canvas);
  }
  return sprites.get(key);
}

// x' = x cos β + y sin β, y' = −x sin β + y cos β (y points south on the world and on the screen)
function screenOf({a, b, ox, oy, cx, cy}) {
  return {x: (wx, wy) => ox + a * (wx - cx) + b * (wy - cy), y: (wx, wy) => oy - b * (wx - cx) + a * (wy - cy)};
}

function strokeTrails(ctx, snap, to) {
  ctx.beginPath();
  for (let i = 0; i < snap.n; i++) {
    for (let k = snap.trailStart[i]; k < snap.trailStart[i + 1]; k++) {
      const wx = snap.trailXY[2 * k], wy = snap.trailXY[2 * k + 1];
      if (k === snap.trailStart[i]) ctx.moveTo(to.x(wx, wy), to.y(wx, wy)); else ctx.lineTo(to.x(wx, wy), to.y(wx, wy));
    }
  }
  ctx.strokeStyle = 'rgba(51, 51, 51, 0.6)'; ctx.lineWidth = 1.2; ctx.stroke();
}

function strokeHeadings(ctx, snap, to, at) {
  ctx.beginPath();
  for (let i = 0; i < snap.n; i++) {
    ctx.moveTo(at.x[i], at.y[i]); ctx.lineTo(to.x(snap.tipX[i], snap.tipY[i]), to.y(snap.tipX[i], snap.tipY[i]));
  }
  ctx.strokeStyle = '#222'; ctx.lineWidth = 1.5; ctx.stroke();
}

// Solid for tracks with detections, dashed for coasting ones; returns how many it drew.
function strokeEllipses(ctx, snap, view, at, onScreen) {
  let count = 0;
  for (const coasting of [false, true]) {
    ctx.beginPath();
    for (let i = 0; i < snap.n; i++) {
      const rx = snap.major[i] * view.scale;
      if ((snap.tracks[i].status === 'coasting') !== coasting || rx < ELLIPSE_MIN_PX || !onScreen(at.x[i], at.y[i], rx)) continue;
      // the major axis on bearing o is, on the screen, o − β clockwise from up: the canvas's x axis turned o − β − 90°
      const rotation = snap.bearing[i] - view.beta - Math.PI / 2;
      ctx.moveTo(at.x[i] + rx * Math.cos(rotation), at.y[i] + rx * Math.sin(rotation));
      ctx.ellipse(at.x[i], at.y[i], rx, Math.max(snap.minor[i] * view.scale, 0.5), rotation, 0, 2 * Math.PI);
      count += 1;
    }
    ctx.setLineDash(coasting ? [2, 2] : []);
    ctx.strokeStyle = '#444'; ctx.lineWidth = 1; ctx.stroke();
  }
  ctx.setLineDash([]);
  return count;
}

// As the map's alerts layer was: 6 px circles, 80 % opaque, coloured by severity, black rim; one
// path per colour. Returns how many it drew.
function fillAlerts(ctx, alerts, to, onScreen) {
  const byColour = new Map();
  for (let i = 0; i < alerts.n; i++) {
    const px = to.x(alerts.x[i], alerts.y[i]), py = to.y(alerts.x[i], alerts.y[i]);
    if (!onScreen(px, py, CULL_MARGIN_PX)) continue;
    if (!byColour.has(alerts.colour[i])) byColour.set(alerts.colour[i], []);
    byColour.get(alerts.colour[i]).push(px, py);
  }
  let count = 0;
  for (const [colour, points] of byColour) {
    ctx.beginPath();
    for (let k = 0; k < points.length; k += 2) { ctx.moveTo(points[k] + 6, points[k + 1]); ctx.arc(points[k], points[k + 1], 6, 0, 2 * Math.PI); }
    ctx.globalAlpha = 0.8; ctx.fillStyle = colour; ctx.fill();
    ctx.globalAlpha = 1; ctx.lineWidth = 1; ctx.strokeStyle = '#000'; ctx.stroke();
    count += points.length / 2;
  }
  return count;
}

// Class symbols (faded when coasting) and, zoomed in, ids; returns how many of each it drew.
function drawSymbols(ctx, snap, at, labels, onScreen) {
  const count = {symbols: 0, labels: 0};
  if (labels) { ctx.font = '11px sans-serif'; ctx.lineWidth = 3; ctx.strokeStyle = '#fff'; ctx.fillStyle = '#111'; }
  for (let i = 0; i < snap.n; i++) {
    if (!onScreen(at.x[i], at.y[i], CULL_MARGIN_PX)) continue;
    const t = snap.tracks[i];
    ctx.drawImage(sprite(t.class, t.status === 'coasting'), Math.round(at.x[i]) - SYMBOL_PX / 2, Math.round(at.y[i]) - SYMBOL_PX / 2);
    count.symbols += 1;
    if (labels) {
      ctx.strokeText(t.track_id, at.x[i] + 12, at.y[i] + 4); ctx.fillText(t.track_id, at.x[i] + 12, at.y[i] + 4);
      count.labels += 1;
    }
  }
  return count;
}

// Draw a prepared snapshot and the alerts, bottom to top: trails, headings, ellipses, alert
// markers, symbols, ids; returns what it drew (the page's test hook reports it).
export function draw(ctx, width, height, snap, alerts, view) {
  ctx.clearRect(0, 0, width, height);
  snap = snap || {n: 0};
  const to = screenOf(view);
  const onScreen = (px, py, margin) => px > -margin && py > -margin && px < width + margin && py < height + margin;
  const at = {x: new Float64Array(snap.n), y: new Float64Array(snap.n)};
  for (let i = 0; i < snap.n; i++) { at.x[i] = to.x(snap.x[i], snap.y[i]); at.y[i] = to.y(snap.x[i], snap.y[i]); }
  ctx.lineJoin = 'round';
  strokeTrails(ctx, snap, to);
  strokeHeadings(ctx, snap, to, at);
  const ellipses = strokeEllipses(ctx, snap, view, at, onScreen);
  const alertCount = alerts ? fillAlerts(ctx, alerts, to, onScreen) : 0;
  return {...drawSymbols(ctx, snap, at, view.zoom >= LABEL_MIN_ZOOM, onScreen), ellipses, alerts: alertCount};
}

// A canvas over `map` (under its controls, letting the mouse through) that draws the newest
// prepared snapshot at once, and again in each frame MapLibre draws after the view moved (in the
// same frame, so symbols never trail the map while it pans).
export function trackOverlay(map) {
  const canvas = document.createElement('canvas');
  canvas.className = 'track-overlay';
  map.getCanvasContainer().append(canvas);
  const ctx = canvas.getContext('2d');
  let snap = null, alerts = null, moved = false;
  let drawn = {symbols: 0, labels: 0, ellipses: 0, alerts: 0};
  function resize() {
    const gl = map.getCanvas(), ratio = window.devicePixelRatio || 1;
    canvas.style.width = gl.style.width; canvas.style.height = gl.style.height;
    canvas.width = Math.round(gl.clientWidth * ratio); canvas.height = Math.round(gl.clientHeight * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  }
  function redraw() {
    moved = false;
    drawn = draw(ctx, canvas.width / (window.devicePixelRatio || 1), canvas.height / (window.devicePixelRatio || 1),
                 snap, alerts, screenTransform(map));
  }
  resize();
  map.on('resize', () => { resize(); moved = true; });
  map.on('move', () => { moved = true; });
  map.on('render', () => { if (moved) redraw(); });
  return {
    show(prepared) { snap = prepared; redraw(); },
    showAlerts(prepared) { alerts = prepared; redraw(); },
    get drawn() { return {...drawn}; },
  };
}
