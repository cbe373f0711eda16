// The floor plan: one SVG per floor, drawn from the rooms' shapes in the site file (metres),
// each room coloured by its head count against its capacity, its doors as dots (closed,
// open, alarm). `update` recolours in place, so live events do not redraw the plan.

import { s } from './dom.js';
import { t } from './i18n.js';

// Occupancy class 0..4 from count and capacity.
export function occClass(count, capacity) {
  if (!count) return 'occ0';
  if (!capacity) return 'occ2';
  const r = count / capacity;
  if (r <= 0.5) return 'occ1';
  if (r <= 0.8) return 'occ2';
  if (r < 0.95) return 'occ3';
  return 'occ4';
}

function bounds(rooms) {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const r of rooms) for (const [x, y] of r.shape) {
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
  }
  if (!isFinite(x0)) return [0, 0, 10, 10];
  return [x0, y0, x1, y1];
}

function centre(shape) {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [x, y] of shape) { x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y); }
  return { x: (x0 + x1) / 2, y: (y0 + y1) / 2, w: x1 - x0, h: y1 - y0, x0, y0, x1, y1 };
}

function doorState(d, alarmed) {
  if (!d) return alarmed ? 'alarm' : 'unknown';
  if (d.alarm || alarmed) return 'alarm';
  return d.contact === 'open' ? 'open' : d.contact === 'closed' ? 'closed' : 'unknown';
}

// Draws a floor. `site` is /api/v1/site, `live` the live view; `onRoom(id)` opens a room.
export function drawFloor(site, floorId, live, onRoom) {
  const rooms = site.rooms.filter((r) => r.floor === floorId && r.shape.length >= 3);
  const [x0, y0, x1, y1] = bounds(rooms);
  const pad = 1;
  const w = x1 - x0 + 2 * pad;
  const hgt = y1 - y0 + 2 * pad;
  // The site file's y runs north; the screen's runs down: flip it.
  const svg = s('svg', {
    viewBox: `${x0 - pad} ${-(y1 + pad)} ${w} ${hgt}`,
    role: 'group',
    'aria-label': t('plan.title'),
  });
  const liveRooms = new Map(live.rooms.map((r) => [r.room, r]));
  const liveDoors = new Map(live.doors.map((d) => [d.door, d]));
  for (const r of rooms) {
    const now = liveRooms.get(r.id) || { count: 0 };
    const pts = r.shape.map(([x, y]) => `${x},${-y}`).join(' ');
    const c = centre(r.shape);
    const g = s('g', { class: 'room-group', 'data-room': r.id });
    const poly = s('polygon', {
      points: pts,
      class: `room ${occClass(now.count, r.capacity)}${now.dark ? ' dark' : ''}`,
      tabindex: 0,
      role: 'button',
      'data-room': r.id,
      'aria-label': now.dark ? `${t('room.aria', { name: r.name, n: now.count })}, ${t('plan.legend.dark')}` : t('room.aria', { name: r.name, n: now.count }),
      onclick: () => onRoom(r.id),
      onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); onRoom(r.id); } },
    });
    poly.append(s('title', {}, r.name));
    g.append(poly);
    // An alarm's outline: red on a white halo, which stands out on every fill.
    g.append(s('polygon', { points: pts, class: 'alarm-halo' }), s('polygon', { points: pts, class: 'alarm-line' }));
    // Text sized to fit the room's width (about 0.55 em a character).
    const size = Math.max(0.5, Math.min(1, c.w / (r.name.length * 0.6), c.h / 4));
    // A name too long for its room is cut; the whole name is in its title and label.
    const fits = Math.max(3, Math.floor(c.w / (size * 0.6)));
    const label = r.name.length > fits ? `${r.name.slice(0, fits - 1)}…` : r.name;
    g.append(s('text', { class: 'label', x: c.x, y: -c.y - size * 0.9, 'text-anchor': 'middle', 'font-size': size, 'data-label': r.id, 'data-full': r.name }, label));
    g.append(s('text', {
      class: 'count', x: c.x, y: -c.y + size * 0.9, 'text-anchor': 'middle', 'font-size': size * 1.4, 'data-count': r.id,
    }, r.capacity ? t('room.people.cap', { n: now.count, cap: r.capacity }) : String(now.count)));
    svg.append(g);
  }
  // Doors on top of the rooms, at their places on the walls.
  const at = doorPlaces(site, floorId);
  const alarmed = alarmedDoors(live);
  for (const d of site.doors) {
    const p = at.get(d.id);
    if (!p) continue;
    const st = doorState(liveDoors.get(d.id), alarmed.get(d.id));
    const g = s('g', { class: 'door-group', 'data-door-group': d.id });
    g.append(s('circle', { class: `door-halo ${ringClass(alarmed.get(d.id))}`, r: 1.1, cx: p.x, cy: -p.y, 'data-halo': d.id }));
    g.append(s('circle', { class: `door-ring ${ringClass(alarmed.get(d.id))}`, r: 1.1, cx: p.x, cy: -p.y, 'data-ring': d.id }));
    const dot = s('circle', { class: `door ${st}`, r: 0.45, cx: p.x, cy: -p.y, 'data-door': d.id });
    dot.append(s('title', {}, `${d.name}: ${t(`door.${st}`)}`));
    g.append(dot);
    svg.append(g);
  }
  markRooms(svg, site, alarmed);
  return svg;
}

// Standing alarms by door: 'open' (nobody has taken it) or 'taken'. A device's alarm counts at
// the doors it serves.
function alarmedDoors(live) {
  const out = new Map();
  const devices = new Map((live.devices || []).map((d) => [d.device, d]));
  for (const a of live.alarms || []) {
    const doors = a.door ? [a.door] : a.device && devices.get(a.device) ? devices.get(a.device).doors : [];
    for (const d of doors) if (out.get(d) !== 'open') out.set(d, a.ack ? 'taken' : 'open');
  }
  return out;
}

function ringClass(alarm) { return alarm === 'open' ? 'on' : alarm === 'taken' ? 'taken' : 'off'; }

// A room with a door under an alarm is outlined on the plan.
function markRooms(svg, site, alarmed) {
  const rooms = new Map();
  for (const [door, state] of alarmed) {
    const d = site.doors.find((x) => x.id === door);
    if (d && rooms.get(d.into) !== 'open') rooms.set(d.into, state);
  }
  for (const g of svg.querySelectorAll('g.room-group')) {
    const st = rooms.get(g.dataset.room);
    g.classList.toggle('alarmed', st === 'open');
    g.classList.toggle('alarm-taken', st === 'taken');
  }
}

// ---------------------------------------------------------------- where doors are

const EPS = 0.05;

function edges(shape) {
  return shape.map((p, i) => [p, shape[(i + 1) % shape.length]]);
}

// The stretch two walls share, if they lie on one line and overlap: [[x, y], [x, y]].
function shared([a, b], [c, d]) {
  const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
  const len = Math.hypot(dx, dy);
  if (len < EPS) return null;
  const cross = (p) => Math.abs(dx * (p[1] - a[1]) - dy * (p[0] - a[0])) / len;
  if (cross(c) > EPS || cross(d) > EPS) return null;
  const along = (p) => ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len;
  const [t0, t1] = [Math.max(0, Math.min(along(c), along(d))), Math.min(len, Math.max(along(c), along(d)))];
  if (t1 - t0 < EPS * 4) return null;
  const pt = (v) => [a[0] + (dx * v) / len, a[1] + (dy * v) / len];
  return [pt(t0), pt(t1)];
}

function longestShared(r1, r2) {
  let best = null;
  for (const e1 of edges(r1.shape)) {
    for (const e2 of edges(r2.shape)) {
      const seg = shared(e1, e2);
      if (seg && (!best || Math.hypot(seg[1][0] - seg[0][0], seg[1][1] - seg[0][1]) > Math.hypot(best[1][0] - best[0][0], best[1][1] - best[0][1]))) best = seg;
    }
  }
  return best;
}

// A wall of the room no other room on its floor shares: the outside.
function outerWall(room, others) {
  let best = null;
  for (const e of edges(room.shape)) {
    const len = Math.hypot(e[1][0] - e[0][0], e[1][1] - e[0][1]);
    const inner = others.some((o) => o !== room && edges(o.shape).some((f) => shared(e, f)));
    if (!inner && (!best || len > best.len)) best = { seg: e, len };
  }
  return best && best.seg;
}

// The point of the room's outline nearest to `p`.
function nearestOnOutline(room, p) {
  let best = null;
  for (const [a, b] of edges(room.shape)) {
    const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
    const l2 = dx * dx + dy * dy || 1;
    const u = Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / l2));
    const q = [a[0] + u * dx, a[1] + u * dy];
    const dist = Math.hypot(q[0] - p[0], q[1] - p[1]);
    if (!best || dist < best.dist) best = { q, dist };
  }
  return best && best.q;
}

function mid(shape) {
  const xs = shape.map((p) => p[0]); const ys = shape.map((p) => p[1]);
  return [(Math.min(...xs) + Math.max(...xs)) / 2, (Math.min(...ys) + Math.max(...ys)) / 2];
}

// Where each door of the floor stands, in metres: the site file's `at` where it gives one;
// otherwise on the wall its two rooms share (several doors in one wall spread along it), on
// an outside wall for a door from the street, or on the room's outline nearest the room it
// comes from when the two share no wall (a stair on another floor).
export function doorPlaces(site, floorId) {
  const rooms = new Map(site.rooms.filter((r) => r.shape.length >= 3).map((r) => [r.id, r]));
  const onFloor = [...rooms.values()].filter((r) => r.floor === floorId);
  const groups = new Map();
  const out = new Map();
  for (const d of site.doors) {
    const into = rooms.get(d.into);
    if (!into || into.floor !== floorId) continue;
    if (d.at) { out.set(d.id, { x: d.at[0], y: d.at[1] }); continue; }
    const from = d.from && rooms.get(d.from);
    let seg = null;
    if (from && from.floor === floorId) seg = longestShared(into, from);
    else if (!d.from) seg = outerWall(into, onFloor);
    if (seg) {
      // The same wall whichever way its two rooms run along it: its ends in order.
      const ends = seg.map((p) => p.map((v) => v.toFixed(2)).join(',')).sort();
      if (ends[0] !== seg[0].map((v) => v.toFixed(2)).join(',')) seg = [seg[1], seg[0]];
      const key = ends.join('|');
      if (!groups.has(key)) groups.set(key, { seg, doors: [] });
      groups.get(key).doors.push(d.id);
    } else {
      const [x, y] = nearestOnOutline(into, from ? mid(from.shape) : mid(into.shape)) || mid(into.shape);
      out.set(d.id, { x, y });
    }
  }
  for (const { seg, doors } of groups.values()) {
    doors.forEach((id, i) => {
      const u = (i + 1) / (doors.length + 1);
      out.set(id, { x: seg[0][0] + u * (seg[1][0] - seg[0][0]), y: seg[0][1] + u * (seg[1][1] - seg[0][1]) });
    });
  }
  return out;
}

// ---------------------------------------------------------------- labels

// Each room's name and count, measured as drawn: a label wider or taller than its room is made
// smaller, then cut (its whole name stays in the room's title and label for screen readers).
export function fitLabels(svg) {
  for (const g of svg.querySelectorAll('g.room-group')) {
    const poly = g.querySelector('polygon');
    const box = poly.getBBox();
    const [w, hgt] = [box.width * 0.9, box.height * 0.9];
    const label = g.querySelector('text.label');
    const count = g.querySelector('text.count');
    if (!label || !count) continue;
    const full = label.dataset.full || label.textContent;
    label.dataset.full = full;
    label.textContent = full;
    // From the size first worked out each time: a count grown shorter lets its label grow back.
    if (!label.dataset.size) label.dataset.size = label.getAttribute('font-size');
    let size = parseFloat(label.dataset.size);
    label.setAttribute('font-size', size);
    count.setAttribute('font-size', size * 1.4);
    const fits = () => {
      const a = label.getBBox(); const b = count.getBBox();
      return a.width <= w && b.width <= w && a.height + b.height <= hgt * 0.95;
    };
    for (let i = 0; i < 12 && !fits() && size > 0.5; i += 1) {
      size *= 0.85;
      label.setAttribute('font-size', size);
      count.setAttribute('font-size', size * 1.4);
    }
    let text = full;
    while (!fits() && text.length > 2) {
      text = text.slice(0, -1);
      label.textContent = `${text.trimEnd()}…`;
    }
    if (!fits()) { label.textContent = ''; }
    // Name just above the middle, count just below, by their measured boxes.
    const cy = box.y + box.height / 2;
    const gap = Math.min(size * 0.1, (hgt - label.getBBox().height - count.getBBox().height) / 2);
    const place = (el, edge) => {
      const y0 = Number(el.getAttribute('y'));
      const b = el.getBBox();
      el.setAttribute('y', y0 + (edge === 'bottom' ? cy - gap / 2 - (b.y + b.height) : cy + gap / 2 - b.y));
    };
    place(label, 'bottom');
    place(count, 'top');
  }
}


// Recolours rooms and doors from the live view, in place.
export function update(svg, site, live) {
  const byId = new Map(site.rooms.map((r) => [r.id, r]));
  for (const now of live.rooms) {
    const poly = svg.querySelector(`polygon[data-room="${CSS.escape(now.room)}"]`);
    if (!poly) continue;
    const r = byId.get(now.room);
    poly.setAttribute('class', `room ${occClass(now.count, r && r.capacity)}`);
    poly.setAttribute('aria-label', t('room.aria', { name: r ? r.name : now.room, n: now.count }));
    const text = svg.querySelector(`text[data-count="${CSS.escape(now.room)}"]`);
    if (text) text.textContent = r && r.capacity ? t('room.people.cap', { n: now.count, cap: r.capacity }) : String(now.count);
  }
  const alarmed = alarmedDoors(live);
  for (const d of live.doors) {
    const dot = svg.querySelector(`circle[data-door="${CSS.escape(d.door)}"]`);
    if (!dot) continue;
    const ring = svg.querySelector(`circle[data-ring="${CSS.escape(d.door)}"]`);
    if (ring) ring.setAttribute('class', `door-ring ${ringClass(alarmed.get(d.door))}`);
    const halo = svg.querySelector(`circle[data-halo="${CSS.escape(d.door)}"]`);
    if (halo) halo.setAttribute('class', `door-halo ${ringClass(alarmed.get(d.door))}`);
    const st = doorState(d, alarmed.get(d.door));
    dot.setAttribute('class', `door ${st}`);
    const title = dot.querySelector('title');
    const name = (site.doors.find((x) => x.id === d.door) || { name: d.door }).name;
    if (title) title.textContent = `${name}: ${t(`door.${st}`)}`;
  }
  markRooms(svg, site, alarmed);
}

export { doorState };
