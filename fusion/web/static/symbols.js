// Class symbols and legend shared by both pages: one shape and colour per class.
export const CLASS_STYLE = {
  person: {colour: '#8e44ad', shape: 'circle'}, vehicle: {colour: '#d35400', shape: 'square'},
  animal: {colour: '#27ae60', shape: 'diamond'}, uav: {colour: '#2c3e50', shape: 'triangle'},
  unknown: {colour: '#7f8c8d', shape: 'ring'},
};
export const KIND_STYLE = {country: {opacity: 0.14, dash: null}, sector: {opacity: 0.18, dash: '6 4'},
                           zone: {opacity: 0.35, dash: null}};
const COUNTRY_COLOURS = ['#1f77b4', '#2ca02c', '#9467bd', '#8c564b', '#17becf'];
const KIND_COLOURS = {sector: '#6c3483', zone: '#c0392b'};

// A colour per jurisdiction: countries from a palette, sectors purple, zones red.
export function jurisdictionColours(geojson) {
  const out = {};
  let i = 0;
  for (const f of geojson.features) {
    const p = f.properties;
    out[p.id] = p.kind === 'country' ? COUNTRY_COLOURS[i++ % COUNTRY_COLOURS.length] : KIND_COLOURS[p.kind];
  }
  return out;
}

// Draw a class symbol into a 2-D canvas context centred at (x, y), radius r.
export function drawSymbol(ctx, cls, x, y, r, alpha = 1) {
  const style = CLASS_STYLE[cls] || CLASS_STYLE.unknown;
  ctx.save();
  ctx.globalAlpha = alpha;
  ctx.fillStyle = style.colour;
  ctx.strokeStyle = '#fff';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  if (style.shape === 'square') ctx.rect(x - r * 0.85, y - r * 0.85, r * 1.7, r * 1.7);
  else if (style.shape === 'diamond') { ctx.moveTo(x, y - r); ctx.lineTo(x + r, y); ctx.lineTo(x, y + r); ctx.lineTo(x - r, y); ctx.closePath(); }
  else if (style.shape === 'triangle') { ctx.moveTo(x, y - r); ctx.lineTo(x + r, y + r * 0.8); ctx.lineTo(x - r, y + r * 0.8); ctx.closePath(); }
  else ctx.arc(x, y, r, 0, 2 * Math.PI);
  ctx.fill();
  ctx.stroke();
  if (style.shape === 'ring') { ctx.beginPath(); ctx.fillStyle = '#fff'; ctx.arc(x, y, r * 0.4, 0, 2 * Math.PI); ctx.fill(); }
  ctx.restore();
}

export function symbolDataUrl(cls, size = 14, alpha = 1) {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = size;
  drawSymbol(canvas.getContext('2d'), cls, size / 2, size / 2, size / 2 - 2, alpha);
  return canvas.toDataURL();
}

export function renderLegend(box, geojson) {
  const colours = jurisdictionColours(geojson);
  box.replaceChildren();
  // built from elements, never from HTML text: jurisdiction names come from a file
  const add = (swatch, text) => {
    const span = document.createElement('span');
    span.append(swatch, document.createTextNode(` ${text}`));
    box.append(span);
  };
  const image = (url) => { const img = document.createElement('img'); img.src = url; img.width = img.height = 12; return img; };
  const box_ = (style) => { const i = document.createElement('i'); Object.assign(i.style, style); return i; };
  for (const cls of Object.keys(CLASS_STYLE)) add(image(symbolDataUrl(cls)), cls);
  add(image(symbolDataUrl('person', 14, 0.4)), 'coasting (faded, dashed ellipse)');
  add(box_({border: '1px solid #444', borderRadius: '50%', background: 'none'}), '95 % ellipse');
  add(box_({height: '2px', background: '#333'}), 'heading (60 s) / trail');
  for (const f of geojson.features) {
    const p = f.properties;
    add(box_({background: colours[p.id], opacity: '0.6'}), `${p.name} (${p.kind}, ${p.agency})`);
  }
  add(box_({border: '1px dotted #555', borderRadius: '50%'}), 'sensor coverage');
  add(box_({background: '#c0392b', borderRadius: '50%'}), 'alert (colour: severity)');
}
