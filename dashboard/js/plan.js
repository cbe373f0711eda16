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

function doorState(d) {
  if (!d) return 'unknown';
  if (d.alarm) return 'alarm';
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
      class: `room ${occClass(now.count, r.capacity)}`,
      tabindex: 0,
      role: 'button',
      'data-room': r.id,
      'aria-label': t('room.aria', { name: r.name, n: now.count }),
      onclick: () => onRoom(r.id),
      onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); onRoom(r.id); } },
    });
    poly.append(s('title', {}, r.name));
    g.append(poly);
    // Text sized to fit the room's width (about 0.55 em a character).
    const size = Math.max(0.35, Math.min(1, c.w / (r.name.length * 0.6), c.h / 4));
    // A name too long for its room is cut; the whole name is in its title and label.
    const fits = Math.max(3, Math.floor(c.w / (size * 0.6)));
    const label = r.name.length > fits ? `${r.name.slice(0, fits - 1)}…` : r.name;
    g.append(s('text', { class: 'label', x: c.x, y: -c.y - size * 0.9, 'text-anchor': 'middle', 'font-size': size }, label));
    g.append(s('text', {
      class: 'count', x: c.x, y: -c.y + size * 0.9, 'text-anchor': 'middle', 'font-size': size * 1.4, 'data-count': r.id,
    }, r.capacity ? t('room.people.cap', { n: now.count, cap: r.capacity }) : String(now.count)));
    // Doors into the room: a row of dots along its lower edge.
    const doors = site.doors.filter((d) => d.into === r.id);
    const gap = Math.min(1, c.w / (doors.length + 1));
    doors.forEach((d, i) => {
      const st = doorState(liveDoors.get(d.id));
      const dot = s('circle', {
        class: `door ${st}`, r: Math.min(0.35, gap / 2.5), cx: c.x0 + gap * (i + 1), cy: -c.y0 - 0.5, 'data-door': d.id,
      });
      dot.append(s('title', {}, `${d.name}: ${t(`door.${st === 'alarm' ? 'alarm' : st}`)}`));
      g.append(dot);
    });
    svg.append(g);
  }
  return svg;
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
  for (const d of live.doors) {
    const dot = svg.querySelector(`circle[data-door="${CSS.escape(d.door)}"]`);
    if (!dot) continue;
    const st = doorState(d);
    dot.setAttribute('class', `door ${st}`);
    const title = dot.querySelector('title');
    const name = (site.doors.find((x) => x.id === d.door) || { name: d.door }).name;
    if (title) title.textContent = `${name}: ${t(`door.${st}`)}`;
  }
}

export { doorState };
