// The full operator map (MapLibre GL JS, vendored ES module; no online tiles, fonts or glyphs:
// text such as track ids is drawn into images on the fly).
import * as maplibregl from '/static/vendor/maplibre/maplibre-gl.mjs';
import {connectFeed, circle, ellipse, ahead, severityColour} from '/static/feed.js';
import {CLASS_STYLE, KIND_STYLE, drawSymbol, jurisdictionColours, renderLegend} from '/static/symbols.js';

const EMPTY = {type: 'FeatureCollection', features: []};
const fc = (features) => ({type: 'FeatureCollection', features});
let map = null;
let mapReady = false;
let pending = null;
let lastState = {tracks: [], trails: new Map(), ellipseScale: 2.4477};

function hasWebGL() {
  const canvas = document.createElement('canvas');
  return Boolean(canvas.getContext('webgl2') || canvas.getContext('webgl'));
}

function imageOf(width, height, draw) {
  const canvas = document.createElement('canvas');
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext('2d');
  draw(ctx);
  return ctx.getImageData(0, 0, width, height);
}

function createMap() {
  map = new maplibregl.Map({
    container: 'map', attributionControl: false, center: [0, 0], zoom: 1,
    // no fade-in of symbols: with a fade every snapshot would repaint the map for 300 ms (~18
    // frames) instead of once, and without a GPU each frame of 2,000 symbols costs tens of ms
    fadeDuration: 0,
    style: {version: 8, sources: {}, layers: [{id: 'background', type: 'background', paint: {'background-color': '#e8ece6'}}]},
  });
  map.addControl(new maplibregl.NavigationControl({showCompass: true}));
  map.addControl(new maplibregl.ScaleControl({unit: 'metric'}));
  // no glyphs offline: a track's id label is an image drawn when the map first needs it
  map.setMissingStyleImageResolver((id) => {
    if (!id.startsWith('label:') || map.hasImage(id)) return;
    const text = id.slice(6);
    map.addImage(id, imageOf(8 + 7 * text.length, 16, (ctx) => {
      ctx.font = '11px sans-serif'; ctx.lineWidth = 3; ctx.strokeStyle = '#fff'; ctx.fillStyle = '#111';
      ctx.strokeText(text, 3, 12); ctx.fillText(text, 3, 12);
    }));
  });
  map.on('load', () => {
    for (const cls of Object.keys(CLASS_STYLE)) {
      map.addImage(`class-${cls}`, imageOf(18, 18, (ctx) => drawSymbol(ctx, cls, 9, 9, 7)));
    }
    for (const id of ['jurisdictions', 'coverage', 'sensors', 'lines', 'tracks', 'alerts']) {
      map.addSource(id, {type: 'geojson', data: EMPTY});
    }
    map.addLayer({id: 'jurisdiction-fill', type: 'fill', source: 'jurisdictions',
                  paint: {'fill-color': ['get', 'colour'], 'fill-opacity': ['get', 'opacity']}});
    map.addLayer({id: 'jurisdiction-line', type: 'line', source: 'jurisdictions',
                  paint: {'line-color': ['get', 'colour'], 'line-width': ['match', ['get', 'kind'], 'country', 2, 1.2]}});
    map.addLayer({id: 'coverage', type: 'line', source: 'coverage', paint: {'line-color': '#555', 'line-dasharray': [1, 2], 'line-width': 1}});
    map.addLayer({id: 'sensors', type: 'circle', source: 'sensors',
                  paint: {'circle-radius': 4, 'circle-color': '#111', 'circle-stroke-color': '#fff', 'circle-stroke-width': 1}});
    // trails, ellipses and heading lines share one source (one transfer to the worker per snapshot)
    map.addLayer({id: 'trails', type: 'line', source: 'lines', filter: ['==', ['get', 'kind'], 'trail'],
                  paint: {'line-color': '#333', 'line-width': 1.2, 'line-opacity': 0.6}});
    map.addLayer({id: 'ellipses', type: 'line', source: 'lines', filter: ['==', ['get', 'kind'], 'ellipse'],
                  paint: {'line-color': '#444', 'line-width': 1}});
    map.addLayer({id: 'ellipses-coasting', type: 'line', source: 'lines', filter: ['==', ['get', 'kind'], 'ellipse-coasting'],
                  paint: {'line-color': '#444', 'line-width': 1, 'line-dasharray': [2, 2]}});
    map.addLayer({id: 'headings', type: 'line', source: 'lines', filter: ['==', ['get', 'kind'], 'heading'],
                  paint: {'line-color': '#222', 'line-width': 1.5}});
    map.addLayer({id: 'alerts', type: 'circle', source: 'alerts',
                  paint: {'circle-radius': 6, 'circle-color': ['get', 'colour'], 'circle-opacity': 0.8,
                          'circle-stroke-color': '#000', 'circle-stroke-width': 1}});
    map.addLayer({id: 'tracks', type: 'symbol', source: 'tracks',
                  layout: {'icon-image': ['concat', 'class-', ['get', 'class']], 'icon-allow-overlap': true},
                  paint: {'icon-opacity': ['case', ['get', 'coasting'], 0.4, 1]}});
    map.addLayer({id: 'track-labels', type: 'symbol', source: 'tracks', minzoom: 13.5,
                  layout: {'icon-image': ['concat', 'label:', ['get', 'track_id']], 'icon-anchor': 'left', 'icon-offset': [9, 0]}});
    map.on('zoomend', () => view.tracks(lastState));
    mapReady = true;
    if (pending) { pending(); pending = null; }
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
    if (!map || !mapReady) return;
    const points = [], lines = [];
    // an ellipse smaller than the symbol says nothing: drawn only when its semi-major axis spans ≥ 6 px
    const metresPerPixel = 40075016.7 * Math.cos(map.getCenter().lat * Math.PI / 180) / (512 * 2 ** map.getZoom());
    const line = (kind, coordinates) => ({type: 'Feature', properties: {kind}, geometry: {type: 'LineString', coordinates}});
    for (const t of state.tracks) {
      const coasting = t.status === 'coasting';
      points.push({type: 'Feature', properties: {track_id: t.track_id, class: t.class, coasting},
                   geometry: {type: 'Point', coordinates: [t.lon, t.lat]}});
      if (t.ellipse_m[0] * state.ellipseScale >= 6 * metresPerPixel) {
        lines.push(line(coasting ? 'ellipse-coasting' : 'ellipse', ellipse([t.lon, t.lat], t.ellipse_m, state.ellipseScale)));
      }
      lines.push(line('heading', [[t.lon, t.lat], ahead(t, 60)]));
      const trail = state.trails.get(t.track_id);
      if (trail && trail.points.length > 1) lines.push(line('trail', trail.points));
    }
    map.getSource('tracks').setData(fc(points));
    map.getSource('lines').setData(fc(lines));
  },
  alerts(state) {
    if (!map || !mapReady) return;
    map.getSource('alerts').setData(fc([...state.alerts.values()].map((a) => ({
      type: 'Feature', properties: {alert_id: a.alert_id, colour: severityColour(a.severity)},
      geometry: {type: 'Point', coordinates: [a.lon, a.lat]}}))));
  },
  flyTo(lonlat) { if (map) map.flyTo({center: lonlat, zoom: Math.max(map.getZoom(), 14)}); },
};

if (hasWebGL()) {
  try { createMap(); } catch (error) { console.error(error); document.getElementById('nogl').hidden = false; }
} else {
  document.getElementById('nogl').hidden = false;
}
// read-only, for tests: whether the map drew its style, where it looks, how many frames it drew
let renders = 0;
if (map) map.on('render', () => { renders += 1; });
window.borderfusionMap = Object.freeze({
  get loaded() { return mapReady; },
  get renders() { return renders; },
  get center() { return map ? [map.getCenter().lng, map.getCenter().lat] : null; },
});
connectFeed(view);
