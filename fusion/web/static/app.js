// The full operator map (MapLibre GL JS, vendored ES module; no online tiles, fonts or glyphs).
// MapLibre draws what changes seldom (basemap, jurisdictions, sensors); the tracks and alert
// markers, which change every second, are drawn on a canvas over it (overlay.js says why).
import * as maplibregl from '/static/vendor/maplibre/maplibre-gl.mjs';
import {connectFeed, circle, severityColour} from '/static/feed.js';
import {KIND_STYLE, jurisdictionColours, renderLegend} from '/static/symbols.js';
import {prepare, prepareAlerts, trackOverlay} from '/static/overlay.js';

const EMPTY = {type: 'FeatureCollection', features: []};
const fc = (features) => ({type: 'FeatureCollection', features});
let map = null;
let mapReady = false;
let pending = null;
let overlay = null;
let lastState = null;

function hasWebGL() {
  const canvas = document.createElement('canvas');
  return Boolean(canvas.getContext('webgl2') || canvas.getContext('webgl'));
}

function createMap() {
  map = new maplibregl.Map({
    container: 'map', attributionControl: false, center: [0, 0], zoom: 1,
    // a flat map: the track overlay maps the world to the screen as an affine map (no pitch)
    maxPitch: 0, fadeDuration: 0,
    style: {version: 8, sources: {}, layers: [{id: 'background', type: 'background', paint: {'background-color': '#e8ece6'}}]},
  });
  map.addControl(new maplibregl.NavigationControl({showCompass: true}));
  map.addControl(new maplibregl.ScaleControl({unit: 'metric'}));
  map.on('load', () => {
    for (const id of ['jurisdictions', 'coverage', 'sensors']) {
      map.addSource(id, {type: 'geojson', data: EMPTY});
    }
    map.addLayer({id: 'jurisdiction-fill', type: 'fill', source: 'jurisdictions',
                  paint: {'fill-color': ['get', 'colour'], 'fill-opacity': ['get', 'opacity']}});
    map.addLayer({id: 'jurisdiction-line', type: 'line', source: 'jurisdictions',
                  paint: {'line-color': ['get', 'colour'], 'line-width': ['match', ['get', 'kind'], 'country', 2, 1.2]}});
    map.addLayer({id: 'coverage', type: 'line', source: 'coverage', paint: {'line-color': '#555', 'line-dasharray': [1, 2], 'line-width': 1}});
    map.addLayer({id: 'sensors', type: 'circle', source: 'sensors',
                  paint: {'circle-radius': 4, 'circle-color': '#111', 'circle-stroke-color': '#fff', 'circle-stroke-width': 1}});
    overlay = trackOverlay(map);
    mapReady = true;
    if (pending) { pending(); pending = null; } else if (lastState) view.tracks(lastState);
  });
}

const view = {
  site(state) {
    renderLegend(document.getElementById('legend'), state.jurisdictions);
    const draw = () => {
      if (state.basemap && !map.getSource('basemap')) {  // a local raster PMTiles file, under everything
        maplibregl.addProtocol('pmtiles', new window.pmtiles.Protocol().tile);
        map.addSource('basemap', {type: 'raster', url: `pmtiles://${location.origin}${state.basemap.url}`, tileSize: 256});
        map.addLayer({id: 'basemap', type: 'raster', source: 'basemap'}, 'jurisdiction-fill');
      }
      const colours = jurisdictionColours(state.jurisdictions);
      const features = state.jurisdictions.features.map((f) => ({...f, properties: {...f.properties,
        colour: colours[f.properties.id], opacity: KIND_STYLE[f.properties.kind].opacity}}));
      map.getSource('jurisdictions').setData(fc(features));
      map.getSource('sensors').setData(fc(state.sensors.filter((s) => s.lat !== undefined).map((s) => ({
        type: 'Feature', properties: {id: s.id, kind: s.kind}, geometry: {type: 'Point', coordinates: [s.lon, s.lat]}}))));
      map.getSource('coverage').setData(fc(state.sensors.filter((s) => s.range_m).map((s) => ({
        type: 'Feature', properties: {id: s.id}, geometry: {type: 'LineString', coordinates: circle([s.lon, s.lat], s.range_m)}}))));
      const bounds = new maplibregl.LngLatBounds();
      for (const f of state.jurisdictions.features) {
        const polys = f.geometry.type === 'Polygon' ? [f.geometry.coordinates] : f.geometry.coordinates;
        for (const poly of polys) for (const p of poly[0]) bounds.extend(p);
      }
      map.fitBounds(bounds, {padding: 20, duration: 0});
      view.alerts(state);
      view.tracks(state);
    };
    if (map && mapReady) draw(); else pending = draw;
  },
  tracks(state) {
    lastState = state;
    if (!map || !mapReady) return undefined;
    const started = performance.now();
    const prepared = prepare(state.tracks, state.trails, state.ellipseScale);
    const built = performance.now();
    overlay.show(prepared);
    return {build_ms: built - started, draw_ms: performance.now() - built};
  },
  alerts(state) {
    if (!map || !mapReady) return;
    overlay.showAlerts(prepareAlerts(state.alerts.values(), severityColour));
  },
  flyTo(lonlat) { if (map) map.flyTo({center: lonlat, zoom: Math.max(map.getZoom(), 14)}); },
};

if (hasWebGL()) {
  try { createMap(); } catch (error) { console.error(error); document.getElementById('nogl').hidden = false; }
} else {
  document.getElementById('nogl').hidden = false;
}
// read-only, for tests: whether the map drew its style, where it looks, how many frames MapLibre drew
let renders = 0;
if (map) map.on('render', () => { renders += 1; });
// ?profile=1 (benchmarks/web_latency.py --page-cost): the main-thread ms MapLibre spends drawing frames
const paint = {ms: 0, frames: 0};
if (map && new URLSearchParams(location.search).get('profile')) {
  const render = map._render;
  map._render = function timed(...args) {
    const started = performance.now();
    try { return render.apply(this, args); } finally { paint.ms += performance.now() - started; paint.frames += 1; }
  };
}
window.borderfusionMap = Object.freeze({
  get loaded() { return mapReady; },
  get renders() { return renders; },
  get paint() { return {...paint}; },  // {ms, frames}: zeros without ?profile=1
  // what the track overlay drew last: {symbols, labels, ellipses, alerts} (those on screen only)
  get overlay() { return overlay ? overlay.drawn : null; },
  get center() { return map ? [map.getCenter().lng, map.getCenter().lat] : null; },
  get zoom() { return map ? map.getZoom() : null; },
  get bearing() { return map ? map.getBearing() : null; },
  get moving() { return map ? map.isMoving() : false; },
  // where the map puts [lon, lat] on the screen, in CSS px from the map's top left
  project(lon, lat) { const p = map.project([lon, lat]); return [p.x, p.y]; },
});
connectFeed(view);
