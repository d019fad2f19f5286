// The lite operator map on Leaflet (no WebGL needed): canvas-drawn vectors, same feed and panel.
import {connectFeed, circle, ellipse, ahead, severityColour} from '/static/feed.js';
import {CLASS_STYLE, KIND_STYLE, jurisdictionColours, renderLegend, symbolDataUrl} from '/static/symbols.js';

const L = window.L;
const map = L.map('map', {preferCanvas: true, attributionControl: false, zoomSnap: 0.25});
L.control.scale({imperial: false}).addTo(map);
const latlngs = (ring) => ring.map(([lon, lat]) => [lat, lon]);
const layers = {site: L.layerGroup().addTo(map), trails: L.layerGroup().addTo(map), tracks: L.layerGroup().addTo(map),
                alerts: L.layerGroup().addTo(map)};
const icons = {};
let lastState = null;
let basemap = null;
function icon(cls, coasting) {
  const key = `${cls}-${coasting}`;
  icons[key] = icons[key] || L.icon({iconUrl: symbolDataUrl(cls, 16, coasting ? 0.4 : 1), iconSize: [16, 16], iconAnchor: [8, 8]});
  return icons[key];
}
const ICONS_UP_TO = 300;  // class-shape icons and id labels are DOM nodes: for small scenes; beyond, canvas circles
// the vectors of all tracks are a few multi-lines on the canvas renderer, updated in place (no layer per track)
const canvas = L.canvas({padding: 0.2});
const vectors = {
  trails: L.polyline([], {renderer: canvas, color: '#333', weight: 1.2, opacity: 0.6, interactive: false}),
  ellipses: L.polyline([], {renderer: canvas, color: '#444', weight: 1, interactive: false}),
  coasting: L.polyline([], {renderer: canvas, color: '#444', weight: 1, dashArray: '3 3', interactive: false}),
  headings: L.polyline([], {renderer: canvas, color: '#222', weight: 1.5, interactive: false}),
};
for (const layer of Object.values(vectors)) layer.addTo(layers.trails);

const view = {
  site(state) {
    renderLegend(document.getElementById('legend'), state.jurisdictions);
    layers.site.clearLayers();
    if (state.basemap && !basemap) {  // a local raster PMTiles file, under everything
      basemap = window.pmtiles.leafletRasterLayer(new window.pmtiles.PMTiles(`${location.origin}${state.basemap.url}`),
                                                  {maxNativeZoom: state.basemap.max_zoom, minNativeZoom: state.basemap.min_zoom});
      basemap.addTo(map).bringToBack();
    }
    const colours = jurisdictionColours(state.jurisdictions);
    const geo = L.geoJSON(state.jurisdictions, {style: (f) => ({
      color: colours[f.properties.id], weight: f.properties.kind === 'country' ? 2 : 1.2,
      fillOpacity: KIND_STYLE[f.properties.kind].opacity, dashArray: KIND_STYLE[f.properties.kind].dash})});
    geo.addTo(layers.site);
    for (const s of state.sensors) {
      if (s.lat === undefined) continue;
      if (s.range_m) L.polyline(latlngs(circle([s.lon, s.lat], s.range_m)), {color: '#555', weight: 1, dashArray: '2 4'}).addTo(layers.site);
      L.circleMarker([s.lat, s.lon], {radius: 4, color: '#fff', weight: 1, fillColor: '#111', fillOpacity: 1})
        .bindTooltip(s.id).addTo(layers.site);
    }
    map.fitBounds(geo.getBounds(), {padding: [10, 10]});
  },
  tracks(state) {
    lastState = state;
    layers.tracks.clearLayers();
    const small = state.tracks.length <= ICONS_UP_TO;
    const rings = {trails: [], ellipses: [], coasting: [], headings: []};
    // an ellipse smaller than the symbol says nothing: drawn only when its semi-major axis spans ≥ 6 px
    const metresPerPixel = 40075016.7 * Math.cos(map.getCenter().lat * Math.PI / 180) / (256 * 2 ** map.getZoom());
    for (const t of state.tracks) {
      const coasting = t.status === 'coasting';
      if (small) {
        L.marker([t.lat, t.lon], {icon: icon(t.class, coasting), keyboard: false})
          .bindTooltip(t.track_id, {permanent: true, direction: 'right', className: 'track-label', offset: [6, 0]})
          .addTo(layers.tracks);
      } else {
        L.circleMarker([t.lat, t.lon], {renderer: canvas, radius: 4, weight: 1, color: '#fff', fillColor: CLASS_STYLE[t.class].colour,
                                        fillOpacity: coasting ? 0.4 : 1}).bindTooltip(t.track_id).addTo(layers.tracks);
      }
      if (t.ellipse_m[0] * state.ellipseScale >= 6 * metresPerPixel) {
        rings[coasting ? 'coasting' : 'ellipses'].push(latlngs(ellipse([t.lon, t.lat], t.ellipse_m, state.ellipseScale)));
      }
      rings.headings.push(latlngs([[t.lon, t.lat], ahead(t, 60)]));
      const trail = state.trails.get(t.track_id);
      if (trail && trail.points.length > 1) rings.trails.push(latlngs(trail.points));
    }
    for (const [name, layer] of Object.entries(vectors)) layer.setLatLngs(rings[name]);
  },
  alerts(state) {
    layers.alerts.clearLayers();
    for (const a of state.alerts.values()) {
      L.circleMarker([a.lat, a.lon], {radius: 6, color: '#000', weight: 1, fillColor: severityColour(a.severity), fillOpacity: 0.8})
        .bindTooltip(`${a.type} ${a.track_id}`).addTo(layers.alerts);
    }
  },
  flyTo(lonlat) { map.flyTo([lonlat[1], lonlat[0]], Math.max(map.getZoom(), 15)); },
};

map.setView([0, 0], 2);
map.on('zoomend', () => { if (lastState) view.tracks(lastState); });
// read-only, for tests: where the map looks
window.borderfusionMap = Object.freeze({
  get loaded() { return true; },
  get center() { const c = map.getCenter(); return [c.lng, c.lat]; },
});
connectFeed(view);
