// The pages. Each view is `{ title, render(ctx) -> Node, update?(ctx), decision?(ctx, d) }`:
// `render` draws it from the API, `update` follows live events in place, `decision` takes a
// new access decision. Charts are drawn here as SVG by hand.

import { api } from './api.js';
import { nowMs, now as clockNow, fmtTime, fmtClock } from './clock.js';
import { h, s, clear, sortable, downloadCsv } from './dom.js';
import { t, reason, locale, STRINGS } from './i18n.js';
import { drawFloor, update as updatePlan, doorState, fitLabels, occClass } from './plan.js';
import { alarmList, signalSwitch } from './alarms.js';

// Times are shown on the site's clock (clock.js).

export function ago(secs) {
  if (secs == null) return t('devices.never');
  const d = Math.max(0, Math.round(nowMs() / 1000 - secs));
  if (d < 60) return t('ago.s', { n: d });
  if (d < 3600) return t('ago.m', { n: Math.floor(d / 60) });
  if (d < 86400) return t('ago.h', { n: Math.floor(d / 3600) });
  return t('ago.d', { n: Math.floor(d / 86400) });
}

function roomName(ctx, id) {
  const r = ctx.site.rooms.find((x) => x.id === id);
  return r ? r.name : id || '';
}

export function doorName(ctx, id) {
  const d = ctx.site.doors.find((x) => x.id === id);
  return d ? d.name : id || '';
}

function canOperate(ctx) { return ctx.me.role === 'operator' || ctx.me.role === 'admin'; }

// ---------------------------------------------------------------- floor plan

export const planView = {
  title: 'nav.plan',
  render(ctx, floor) {
    const floors = ctx.site.floors.filter((f) => ctx.site.rooms.some((r) => r.floor === f.id && r.shape.length >= 3));
    const current = floors.find((f) => f.id === floor) || floors.find((f) => f.level === 0) || floors[0];
    this.floor = current && current.id;
    const tabs = h('div', { class: 'tabs', role: 'group', 'aria-label': t('plan.floors') },
      floors.map((f) => h('button', {
        type: 'button', 'aria-pressed': String(f.id === this.floor), 'data-floor': f.id,
        onclick: () => ctx.go(`plan/${f.id}`),
      }, f.name)));
    this.svg = current ? drawFloor(ctx.site, current.id, ctx.live, (id) => ctx.go(`room/${id}`)) : h('p', {}, '—');
    const legend = h('div', { class: 'legend' },
      h('span', {}, `${t('plan.legend')}:`),
      [['empty', 0], ['low', 1], ['mid', 2], ['high', 3], ['full', 4]].map(([k, c]) => h('span', {}, h('span', { class: `swatch occ${c}` }), t(`plan.legend.${k}`))),
      h('span', { class: 'muted' },
        s('svg', { viewBox: '0 0 3 1', width: 36, height: 12, 'aria-hidden': 'true' },
          ['closed', 'open', 'alarm'].map((c, i) => s('circle', { class: `door ${c}`, cx: 0.5 + i, cy: 0.5, r: 0.4 }))),
        ' ', t('plan.legend.door')),
      h('span', { class: 'muted' }, h('span', { class: 'swatch alarmed' }), t('plan.legend.alarm')),
      h('span', { class: 'muted' }, h('span', { class: 'swatch dark' }), t('plan.legend.dark')));
    // A phone shows the floor as a list of its rooms (a plan that small cannot be read).
    this.list = h('ul', { class: 'room-list', id: 'room-list' });
    this.floorId = current && current.id;
    this.fillList(ctx);
    this.banner = h('p', { class: 'mode-banner', id: 'plan-mode', role: 'status' });
    this.fillBanner(ctx);
    return h('section', { class: 'plan' }, h('h1', {}, t('plan.title')), this.banner, tabs, this.svg, this.list, legend);
  },
  mounted() { if (this.svg && this.svg.tagName === 'svg') fitLabels(this.svg); },
  fillBanner(ctx) {
    const m = ctx.live.mode;
    this.banner.hidden = m === 'normal';
    this.banner.className = `mode-banner ${m}`;
    this.banner.textContent = m === 'normal' ? '' : t(`plan.mode.${m}`);
  },
  fillList(ctx) {
    const rooms = ctx.site.rooms.filter((r) => r.floor === this.floorId);
    const live = new Map(ctx.live.rooms.map((r) => [r.room, r]));
    const alarmed = new Set(ctx.live.alarms.filter((a) => a.door).map((a) => (ctx.site.doors.find((d) => d.id === a.door) || {}).into));
    clear(this.list).append(...rooms.map((r) => {
      const now = live.get(r.id) || { count: 0 };
      return h('li', { 'data-room': r.id, class: alarmed.has(r.id) ? 'alarmed' : undefined },
        h('a', { href: `#/room/${encodeURIComponent(r.id)}` },
          h('span', { class: `swatch ${occClass(now.count, r.capacity)}` }),
          h('span', { class: 'name' }, r.name),
          h('span', { class: 'n' }, r.capacity ? t('room.people.cap', { n: now.count, cap: r.capacity }) : String(now.count)),
          alarmed.has(r.id) ? h('span', { class: 'pill bad' }, t('door.alarm')) : null));
    }));
  },
  update(ctx) {
    if (this.svg && this.svg.tagName === 'svg') { updatePlan(this.svg, ctx.site, ctx.live); fitLabels(this.svg); }
    if (this.list) this.fillList(ctx);
    if (this.banner) this.fillBanner(ctx);
  },
};

// ---------------------------------------------------------------- room

function timelineChart(day) {
  const W = 720; const H = 200; const L = 34; const B = 22; const T = 8;
  const start = day.day_start; const end = start + 86400;
  const x = (ts) => L + ((ts - start) / (end - start)) * (W - L - 24);
  const max = Math.max(1, ...day.timeline.map((p) => p.peak), day.now.capacity || 0);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': t('room.timeline') });
  for (const b of day.bookings) {
    if (b.status !== 'confirmed') continue;
    svg.append(s('rect', {
      class: b.no_show ? 'noshow' : 'booked', x: x(Math.max(b.start, start)), y: T,
      width: Math.max(1, x(Math.min(b.end, end)) - x(Math.max(b.start, start))), height: H - T - B,
    }, s('title', {}, `${b.title || b.key}${b.no_show ? ` — ${t('room.noshow')}` : ''}`)));
  }
  svg.append(s('line', { class: 'axis', x1: L, y1: H - B, x2: x(end), y2: H - B }));
  svg.append(s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
  for (let hr = 0; hr <= 24; hr += 3) {
    svg.append(s('text', { x: x(start + hr * 3600), y: H - 6, 'text-anchor': 'middle' }, `${String(hr).padStart(2, '0')}:00`));
  }
  for (const v of [0, Math.round(max / 2), max]) {
    svg.append(s('text', { x: L - 4, y: y(v) + 3, 'text-anchor': 'end' }, String(v)));
  }
  if (day.timeline.length) {
    let d = `M ${x(day.timeline[0].start)} ${y(0)}`;
    for (const p of day.timeline) {
      d += ` L ${x(p.start)} ${y(p.mean)} L ${x(p.start + p.span_s)} ${y(p.mean)}`;
    }
    d += ` L ${x(day.timeline[day.timeline.length - 1].start + day.timeline[day.timeline.length - 1].span_s)} ${y(0)} Z`;
    svg.append(s('path', { class: 'area', d }));
  }
  // Now, from the live count.
  const nowTs = nowMs() / 1000;
  if (nowTs < end) {
    svg.append(s('circle', { cx: x(nowTs), cy: y(day.now.count), r: 4, fill: '#1d4ed8' },
      s('title', {}, `${t('room.now')}: ${day.now.count}`)));
  }
  return svg;
}

function nowCard(ctx, roomId) {
  const now = ctx.live.rooms.find((r) => r.room === roomId) || { count: 0, basis: 'none', confidence: 0 };
  const room = ctx.site.rooms.find((r) => r.id === roomId) || {};
  return h('div', { class: 'card', id: 'room-now' },
    h('h2', {}, t('room.now')),
    h('p', {}, h('span', { class: 'big', id: 'room-count', 'data-count': roomId }, String(now.count)), ' ',
      room.capacity ? h('span', { class: 'muted' }, `/ ${room.capacity}`) : null),
    h('p', {}, `${t('room.basis')}: ${t(`basis.${now.basis}`)} · ${t('room.confidence')}: ${Math.round((now.confidence || 0) * 100)}%`),
    now.co2_ppm != null ? h('p', {}, `${t('room.co2')}: ${now.co2_ppm} ppm`) : null);
}

export const roomView = {
  title: 'room.title',
  async render(ctx, id) {
    this.id = id;
    const day = await api(`/api/v1/rooms/${encodeURIComponent(id)}`);
    const bookings = day.bookings.length
      ? h('ul', {}, day.bookings.map((b) => h('li', {},
        `${fmtClock(b.start)}–${fmtClock(b.end)} `, h('strong', {}, b.title || b.key), ' ',
        b.no_show ? h('span', { class: 'pill bad' }, t('room.noshow')) : null,
        b.status === 'cancelled' ? h('span', { class: 'pill grey' }, t('room.cancelled')) : null)))
      : h('p', { class: 'muted' }, t('room.bookings.none'));
    this.doorsBox = h('div', { class: 'card' });
    this.fillDoors(ctx);
    return h('section', {},
      h('p', {}, h('a', { href: '#/plan' }, `← ${t('room.back')}`)),
      h('h1', {}, roomName(ctx, id) || day.name),
      h('div', { class: 'grid' }, nowCard(ctx, id), this.doorsBox),
      h('div', { class: 'card' }, h('h2', {}, t('room.timeline')),
        timelineChart(day), day.timeline.length ? null : h('p', { class: 'muted' }, t('room.timeline.empty'))),
      h('div', { class: 'card' }, h('h2', {}, t('room.bookings')), bookings),
      h('div', { class: 'card' }, h('h2', {}, t('room.devices')), deviceTable(ctx, day.devices)));
  },
  fillDoors(ctx) {
    const doors = ctx.site.doors.filter((d) => d.into === this.id || d.from === this.id);
    const live = new Map(ctx.live.doors.map((d) => [d.door, d]));
    clear(this.doorsBox).append(h('h2', {}, t('room.doors')),
      h('ul', {}, doors.map((d) => h('li', {}, `${d.name}: `, doorPill(live.get(d.id))))));
  },
  update(ctx) {
    const old = document.getElementById('room-now');
    if (old) old.replaceWith(nowCard(ctx, this.id));
    if (this.doorsBox) this.fillDoors(ctx);
  },
};

// ---------------------------------------------------------------- doors and alarms

function doorPill(d) {
  const st = doorState(d);
  const cls = st === 'alarm' ? 'bad' : st === 'open' ? 'warn' : st === 'closed' ? 'ok' : 'grey';
  const parts = [t(`door.${st}`)];
  if (d && d.locked === true) parts.push(t('door.locked'));
  if (d && d.locked === false) parts.push(t('door.unlocked'));
  if (d && d.released) parts.push(t('door.released'));
  if (d && d.locked_down) parts.push(t('door.locked_down'));
  if (d && d.device && !d.online) parts.push(t('door.offline'));
  return h('span', { class: `pill ${cls}` }, parts.join(' · '));
}

// "4 h 10 m" in the dashboard's language.
export function hoursMinutes(secs) {
  const m = Math.max(0, Math.floor(secs / 60));
  return m >= 60 ? t('hm', { h: Math.floor(m / 60), m: m % 60 }) : t('m', { m });
}

// A node's power as staff read it: mains, or the battery's voltage and time left; shed.
function powerText(p) {
  if (!p) return '—';
  const parts = [p.mains ? t('power.mains') : t('power.battery')];
  if (p.battery_mv != null) parts.push(`${(p.battery_mv / 1000).toFixed(2)} ${t('power.volts')}`);
  if (!p.mains && p.left_s != null) parts.push(t('power.left.short', { left: hoursMinutes(p.left_s) }));
  if (p.shed) parts.push(t('power.shed.short'));
  return parts.join(' · ');
}

// Where a device is, by the doors and rooms it serves, with its id for the technician.
export function deviceWhere(ctx, id) {
  const d = ctx.live.devices.find((x) => x.device === id);
  const places = d ? [...d.doors.map((x) => doorName(ctx, x)), ...d.rooms.map((x) => roomName(ctx, x))] : [];
  return places.length ? `${places.join(', ')} (${id})` : id;
}

export function alarmText(ctx, a) {
  const where = a.door ? doorName(ctx, a.door) : a.device ? deviceWhere(ctx, a.device) : a.feed || '';
  // A site-wide alarm (mains lost everywhere, the gateway's clock) names no place.
  return where ? `${t(`alarm.${a.alarm}`)} — ${where}` : t(`alarm.${a.alarm}`);
}

export const doorsView = {
  title: 'nav.doors',
  reset() { this.q = ''; },
  render(ctx) {
    this.box = h('div', {});
    this.fill(ctx);
    return h('section', {}, h('h1', {}, t('nav.doors')), this.box);
  },
  // The alarms follow the building even while staff type in the doors' search.
  fillAlarms(ctx) {
    if (this.alarms) this.alarms.replaceWith(this.alarms = alarmList(ctx, (a) => alarmText(ctx, a), ago, canOperate(ctx)));
  },
  fill(ctx) {
    const alarms = (this.alarms = alarmList(ctx, (a) => alarmText(ctx, a), ago, canOperate(ctx)));
    const modeBox = canOperate(ctx) ? h('div', { class: 'row' },
      h('label', { for: 'mode-select' }, `${t('mode.set')}:`),
      h('select', { id: 'mode-select', onchange: async (e) => {
        const mode = e.target.value;
        if (!window.confirm(t('mode.confirm', { mode: t(`mode.${mode}`) }))) { e.target.value = ctx.live.mode; return; }
        try { await api('/api/v1/mode', { method: 'PUT', body: { mode } }); } catch (err) { ctx.error(err); }
      } }, ['normal', 'lockdown', 'emergency', 'shelter'].map((m) => h('option', { value: m, selected: m === ctx.live.mode }, t(`mode.${m}`))))) : null;
    // Staff look for a door by its name or its room's: the rows that do not match are hidden.
    const q = (this.q || '').trim().toLowerCase();
    const shown = ctx.site.doors.filter((d) => !q || d.name.toLowerCase().includes(q)
      || roomName(ctx, d.into).toLowerCase().includes(q));
    const cols = canOperate(ctx) ? 5 : 4;
    const row = (d) => {
      const live = ctx.live.doors.find((x) => x.door === d.id);
      const locked = !!(live && live.locked_down);
      return h('tr', { 'data-door': d.id, class: locked ? 'locked-down' : undefined },
        h('td', {}, d.name, d.security_hole
          ? [' ', h('span', { class: 'pill hole', 'data-hole': d.id, title: t('doors.hole.why') }, t('doors.hole'))]
          : null),
        h('td', {}, roomName(ctx, d.into)),
        h('td', {}, doorPill(live)),
        h('td', { class: 'hide-narrow' }, (live && live.device) || '—'),
        canOperate(ctx) ? h('td', {}, h('div', { class: 'actions' }, h('button', {
          type: 'button', class: 'action', disabled: !(live && live.device), 'data-unlock': d.id,
          'aria-label': t('doors.unlock.aria', { door: d.name }),
          onclick: async () => {
            // A door opened from afar lets in whoever stands at it: asked first, naming it.
            if (!window.confirm(t('doors.unlock.confirm', { door: d.name, room: roomName(ctx, d.into) }))) return;
            try {
              await api(`/api/v1/doors/${encodeURIComponent(d.id)}/unlock`, { method: 'POST', body: {} });
              ctx.toast(t('doors.unlock.done', { door: d.name }));
            } catch (err) { ctx.toast(t('doors.unlock.failed', { door: d.name, why: err.message })); }
          },
        }, t('doors.unlock')),
        // One door locked down (staff and security only), or released from that: asked first.
        h('button', {
          type: 'button', class: locked ? 'secondary' : 'danger', 'data-lockdown': d.id,
          'aria-label': t(locked ? 'doors.release.aria' : 'doors.lockdown.aria', { door: d.name }),
          onclick: async () => {
            if (!window.confirm(t(locked ? 'doors.release.confirm' : 'doors.lockdown.confirm', { door: d.name, room: roomName(ctx, d.into) }))) return;
            try {
              await api(`/api/v1/doors/${encodeURIComponent(d.id)}/lockdown`, { method: 'PUT', body: { locked: !locked } });
              ctx.toast(t(locked ? 'doors.release.done' : 'doors.lockdown.done', { door: d.name }));
            } catch (err) { ctx.error(err); }
          },
        }, t(locked ? 'doors.release' : 'doors.lockdown')))) : null);
    };
    // Grouped by the floor each door leads into, top floor first.
    const floorOf = (d) => (ctx.site.rooms.find((r) => r.id === d.into) || {}).floor;
    const rows = [...ctx.site.floors].sort((a, b) => b.level - a.level).flatMap((f) => {
      const here = shown.filter((d) => floorOf(d) === f.id);
      return here.length ? [h('tr', { class: 'floor-row' }, h('th', { colspan: cols, scope: 'rowgroup' }, f.name)), ...here.map(row)] : [];
    });
    const unplaced = shown.filter((d) => !ctx.site.floors.some((f) => f.id === floorOf(d)));
    rows.push(...unplaced.map(row));
    const search = h('input', { type: 'search', id: 'doors-q', value: this.q || '', autocomplete: 'off',
      placeholder: t('doors.search'), 'aria-label': t('doors.search') });
    search.addEventListener('input', () => {
      this.q = search.value;
      this.fill(ctx);
      const again = document.getElementById('doors-q');
      if (again) { again.focus(); again.setSelectionRange(again.value.length, again.value.length); }
    });
    clear(this.box).append(
      h('div', { class: 'card' }, h('h2', {}, t('alarms.title')), alarms, h('div', { class: 'row' }, signalSwitch()), modeBox),
      h('div', { class: 'card scroll' }, h('h2', {}, t('doors.title')),
        h('div', { class: 'toolbar' }, search, h('span', { class: 'muted', id: 'doors-count' }, t('doors.count', { n: shown.length, all: ctx.site.doors.length }))),
        h('table', { id: 'doors-table' },
          h('thead', {}, h('tr', {}, h('th', {}, t('doors.door')), h('th', {}, t('doors.room')), h('th', {}, t('doors.state')),
            h('th', { class: 'hide-narrow' }, t('doors.device')), canOperate(ctx) ? h('th', {}, '') : null)),
          h('tbody', {}, rows))));
  },
  update(ctx) {
    // Not while staff are choosing a mode or typing a search.
    if (document.activeElement && ['mode-select', 'doors-q', 'alarm-signal'].includes(document.activeElement.id)) {
      this.fillAlarms(ctx);
      return;
    }
    this.fill(ctx);
  },
};

// ---------------------------------------------------------------- access log

const KINDS = ['decision', 'alarm', 'change', 'mode', 'no_show'];

function logRow(ctx, e, fresh) {
  let what;
  if (e.kind === 'decision') {
    what = [h('span', { class: `pill ${e.allowed ? 'ok' : 'bad'}` }, e.allowed ? t('log.granted') : t('log.refused')), ' ',
      h('span', { class: 'reason', 'data-reason': e.reason }, reason(e.reason)),
      e.offline ? [' ', h('span', { class: 'pill grey' }, t('log.offline'))] : null];
  } else if (e.kind === 'alarm') {
    what = [h('span', { class: `pill ${e.raised ? 'bad' : 'ok'}` }, e.raised ? t('alarm.raised') : t('alarm.cleared')), ' ', t(`alarm.${e.alarm}`)];
  } else if (e.kind === 'mode') {
    what = `${t('mode.label')}: ${t(`mode.${e.details}`)}`;
  } else if (e.kind === 'no_show' && e.start) {
    // The booking as staff know it: its title and time (its organiser is in "who").
    what = t('log.noshow', { title: e.title || e.details, start: fmtTime(e.start), end: fmtClock(Date.parse(e.end) / 1000) });
  } else {
    // A change's words are as the gateway wrote them, with what staff typed (a note, a reason)
    // in whatever language they typed it.
    what = h('span', { class: 'free-text' }, e.details || '');
  }
  const who = e.member_name ? `${e.member_name} (${e.member})` : e.member || (e.kind === 'decision' ? e.card || '' : e.actor);
  return h('tr', { class: fresh ? 'fresh' : undefined, 'data-kind': e.kind },
    h('td', {}, fmtTime(e.at)),
    h('td', {}, t(`kind.${e.kind}`)),
    h('td', {}, e.door ? doorName(ctx, e.door) : e.room ? roomName(ctx, e.room) : ''),
    h('td', {}, who),
    h('td', {}, what));
}

export const logView = {
  title: 'nav.log',
  // A new sign-in starts from no filter (the one before may have been someone else's).
  reset() { this.filters = {}; },
  render(ctx) {
    this.filters = this.filters || {};
    const f = this.filters;
    const field = (name, label, control) => h('label', {}, h('span', {}, label), control);
    const sel = (name, options) => h('select', { name, id: `log-${name}` },
      h('option', { value: '' }, t('log.any')), options.map(([v, l]) => h('option', { value: v, selected: f[name] === v }, l)));
    this.form = h('form', { class: 'filters card', id: 'log-filters', onsubmit: (e) => { e.preventDefault(); this.apply(ctx); } },
      field('member', t('log.member'), h('input', { name: 'member', id: 'log-member', value: f.member || '' })),
      field('door', t('log.door'), sel('door', ctx.site.doors.map((d) => [d.id, d.name]))),
      field('room', t('log.room'), sel('room', ctx.site.rooms.map((r) => [r.id, r.name]))),
      field('reason', t('log.reason'), sel('reason', [['allow', t('log.allowed')], ['deny', t('log.denied')],
        ...REASONS.map((c) => [c, reason(c)])])),
      field('kind', t('log.kind'), sel('kind', KINDS.map((k) => [k, t(`kind.${k}`)]))),
      h('label', { class: 'wide' }, h('span', {}, t('log.from')), h('input', { name: 'from', id: 'log-from', type: 'datetime-local', value: f.from || '' })),
      h('label', { class: 'wide' }, h('span', {}, t('log.until')), h('input', { name: 'until', id: 'log-until', type: 'datetime-local', value: f.until || '' })),
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'primary', id: 'log-search' }, t('log.search')),
        h('button', { type: 'button', class: 'link', onclick: () => { this.filters = {}; ctx.rerender(); } }, t('log.reset'))));
    this.csv = h('a', { id: 'log-csv', class: 'primary', href: this.csvHref(), download: '' }, t('log.csv'));
    this.body = h('tbody', {});
    this.more = h('button', { type: 'button', class: 'action', id: 'log-more', hidden: true, onclick: () => this.load(ctx, true) }, t('log.more'));
    this.empty = h('p', { class: 'muted', hidden: true }, t('log.empty'));
    this.load(ctx, false);
    return h('section', {}, h('h1', {}, t('log.title')), this.form,
      h('div', { class: 'row' }, this.csv, h('span', { class: 'muted' }, t('log.live'))),
      h('div', { class: 'card scroll' }, h('table', { id: 'log-table' },
        h('thead', {}, h('tr', {}, h('th', {}, t('log.at')), h('th', {}, t('log.kind')), h('th', {}, t('log.door')),
          h('th', {}, t('log.who')), h('th', {}, t('log.what')))), this.body), this.empty, this.more));
  },
  query(extra = {}) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(this.filters)) {
      if (!v) continue;
      // datetime-local has no zone: sent as "YYYY-MM-DD HH:MM", which the gateway reads on
      // the site's clock.
      p.set(k, (k === 'from' || k === 'until') ? v.replace('T', ' ') : v);
    }
    for (const [k, v] of Object.entries(extra)) if (v) p.set(k, v);
    return p.toString();
  },
  csvHref() { return `/api/v1/audit.csv?${this.query()}`; },
  apply(ctx) {
    const data = new FormData(this.form);
    this.filters = Object.fromEntries([...data.entries()].filter(([, v]) => v));
    this.csv.href = this.csvHref();
    this.load(ctx, false);
  },
  async load(ctx, more) {
    if (!more) { this.next = null; clear(this.body); }
    try {
      const page = await api(`/api/v1/audit?${this.query({ limit: '100', before: more ? this.next : '' })}`);
      for (const e of page.entries) this.body.append(logRow(ctx, e, false));
      this.next = page.next;
      this.more.hidden = !page.next;
      this.empty.hidden = this.body.children.length > 0;
    } catch (err) { ctx.error(err); }
  },
  // A new decision goes on top when it passes the filters in use.
  decision(ctx, d) {
    const f = this.filters || {};
    if (f.from || f.until || (f.kind && f.kind !== 'decision')) return;
    if (f.door && f.door !== d.door) return;
    if (f.room && f.room !== d.room) return;
    if (f.member) {
      // Part of the member's id or name, in any case (the server also takes an exact id alone).
      const m = f.member.trim().toLowerCase();
      if (!((d.member || '').includes(m) || (d.member_name || '').toLowerCase().includes(m))) return;
    }
    if (f.reason && !(f.reason === d.reason || (f.reason === 'allow' && d.allowed) || (f.reason === 'deny' && !d.allowed))) return;
    const e = { ...d, kind: 'decision', actor: `door:${d.door}`, offline: false };
    this.body.prepend(logRow(ctx, e, true));
    this.empty.hidden = true;
    while (this.body.children.length > 500) this.body.lastChild.remove();
  },
};

// Reason codes for the filter, in the order of the documentation.
const REASONS = Object.keys(STRINGS.en).filter((k) => k.startsWith('reason.')).map((k) => k.slice('reason.'.length));

// ---------------------------------------------------------------- utilisation

function heatMap(room) {
  const CW = 26; const CH = 20; const L = 34; const T = 16;
  const max = Math.max(0.01, ...room.heat_map.flat().filter((v) => v != null));
  const svg = s('svg', { viewBox: `0 0 ${L + 24 * CW + 4} ${T + 7 * CH + 30}`, class: 'chart heat', role: 'img', 'aria-label': t('usage.heat.for', { room: room.name }) });
  for (let hr = 0; hr < 24; hr += 2) svg.append(s('text', { x: L + hr * CW + CW / 2, y: T - 4, 'text-anchor': 'middle' }, String(hr)));
  room.heat_map.forEach((row, d) => {
    svg.append(s('text', { x: L - 4, y: T + d * CH + CH * 0.7, 'text-anchor': 'end' }, t(`day.${d}`)));
    row.forEach((v, hr) => {
      const a = v == null ? 0 : 0.1 + 0.9 * (v / max);
      const cell = s('rect', {
        x: L + hr * CW, y: T + d * CH, width: CW - 1, height: CH - 1,
        fill: v == null ? '#f1f5f9' : `rgba(29, 78, 216, ${a.toFixed(2)})`,
      });
      cell.append(s('title', {}, `${t(`day.${d}`)} ${hr}:00 — ${v == null ? '—' : v.toFixed(1)}`));
      svg.append(cell);
    });
  });
  // The scale: what the lightest and the darkest cells mean, in people on average.
  const y = T + 7 * CH + 8;
  svg.append(s('text', { x: L, y: y + 10, 'text-anchor': 'start' }, t('usage.heat.scale')));
  const x0 = L + 7 * CW;
  for (let i = 0; i <= 4; i++) {
    svg.append(s('rect', { x: x0 + i * CW, y, width: CW - 1, height: 12, fill: `rgba(29, 78, 216, ${(0.1 + 0.9 * (i / 4)).toFixed(2)})` }));
  }
  svg.append(s('text', { x: x0 - 4, y: y + 10, 'text-anchor': 'end' }, '0'));
  svg.append(s('text', { x: x0 + 5 * CW + 4, y: y + 10, 'text-anchor': 'start', id: 'heat-max' }, max.toFixed(1)));
  return svg;
}

function bookedBars(rooms) {
  const shown = rooms.filter((r) => r.booked_hours > 0);
  // The names' column as wide as the longest name (10 px text, about 6 px a letter).
  const W = 720; const RH = 22;
  const L = Math.min(320, Math.max(120, 8 + 6 * Math.max(0, ...shown.map((r) => r.name.length))));
  const max = Math.max(1, ...shown.map((r) => r.booked_hours));
  const svg = s('svg', { viewBox: `0 0 ${W} ${Math.max(1, shown.length) * RH * 2 + 24}`, class: 'chart', role: 'img', 'aria-label': t('usage.bva') });
  shown.forEach((r, i) => {
    const y = i * RH * 2 + 4;
    const bw = (v) => ((W - L - 60) * v) / max;
    svg.append(s('text', { x: L - 6, y: y + RH * 0.9, 'text-anchor': 'end' }, r.name));
    svg.append(s('rect', { class: 'bar booked', x: L, y, width: bw(r.booked_hours), height: RH * 0.8 }, s('title', {}, `${t('usage.bva.booked')}: ${r.booked_hours} ${t('unit.h')}`)));
    svg.append(s('rect', { class: 'bar actual', x: L, y: y + RH * 0.85, width: bw(r.occupied_while_booked_hours), height: RH * 0.8 }, s('title', {}, `${t('usage.bva.actual')}: ${r.occupied_while_booked_hours} ${t('unit.h')}`)));
    svg.append(s('text', { x: L + bw(r.booked_hours) + 4, y: y + RH * 0.7 }, `${r.booked_hours} ${t('unit.h')}`));
    svg.append(s('text', { x: L + bw(r.occupied_while_booked_hours) + 4, y: y + RH * 1.55 }, `${Math.round(r.use_of_booked * 100)}%`));
  });
  const ly = shown.length * RH * 2 + 14;
  svg.append(s('rect', { class: 'bar booked', x: L, y: ly, width: 10, height: 10 }));
  svg.append(s('text', { x: L + 14, y: ly + 9 }, t('usage.bva.booked')));
  svg.append(s('rect', { class: 'bar actual', x: L + 140, y: ly, width: 10, height: 10 }));
  svg.append(s('text', { x: L + 154, y: ly + 9 }, t('usage.bva.actual')));
  return svg;
}

// The building and each floor over a day (five-minute steps) or a week (hourly): a line each,
// the building's the thickest, gaps where nothing was watched, now marked on today's.
const FLOOR_COLOURS = ['#b45309', '#047857', '#7c3aed', '#be123c', '#0e7490', '#4d7c0f'];

function ymd(date, zone) {
  return new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(date);
}

// A calendar date `n` days from `day` (YYYY-MM-DD), by the calendar, not by 24-hour steps.
function addDays(day, n) {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

function trendChart(ctx, trend, week) {
  const W = 720; const H = 230; const L = 36; const B = 24; const T = 10; const R = 22;
  const x = (ts) => L + ((ts - trend.from) / (trend.until - trend.from)) * (W - L - R);
  const max = Math.max(1, ...trend.steps.map((p) => p.building || 0));
  const y = (v) => T + (1 - v / max) * (H - T - B);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart trend', role: 'img', 'aria-label': t(week ? 'usage.trend.week' : 'usage.trend.day') });
  svg.append(s('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
  svg.append(s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
  for (const v of [0, Math.round(max / 2), Math.round(max)]) {
    svg.append(s('text', { x: L - 4, y: y(v) + 3, 'text-anchor': 'end' }, String(v)));
    svg.append(s('line', { class: 'grid', x1: L, y1: y(v), x2: W - R, y2: y(v) }));
  }
  if (week) {
    for (let d = 0; d < 7; d++) {
      const ts = trend.from + d * 86400;
      svg.append(s('line', { class: 'grid', x1: x(ts), y1: T, x2: x(ts), y2: H - B }));
      const name = new Date((ts + 43200) * 1000).toLocaleDateString(locale(), { weekday: 'short', timeZone: ctx.site.timezone });
      svg.append(s('text', { x: x(ts + 43200), y: H - 6, 'text-anchor': 'middle' }, name));
    }
  } else {
    for (let hr = 0; hr <= 24; hr += 3) {
      svg.append(s('text', { x: x(trend.from + hr * 3600), y: H - 6, 'text-anchor': 'middle' }, `${String(hr).padStart(2, '0')}:00`));
    }
  }
  const line = (values, cls, colour, label) => {
    let d = '';
    let pen = false;
    trend.steps.forEach((p, i) => {
      const v = values(p, i);
      if (v == null) { pen = false; return; }
      const [x0, x1, yy] = [x(p.start), x(p.start + trend.step_s), y(v)];
      d += `${pen ? 'L' : 'M'} ${x0.toFixed(1)} ${yy.toFixed(1)} L ${x1.toFixed(1)} ${yy.toFixed(1)} `;
      pen = true;
    });
    if (d) svg.append(s('path', { class: cls, d, stroke: colour }, s('title', {}, label)));
  };
  const floors = trend.floors.map((id, i) => ({ i, f: ctx.site.floors.find((x) => x.id === id) })).filter((x) => x.f)
    .sort((a, b) => a.f.level - b.f.level);
  floors.forEach(({ i, f }, k) => line((p) => p.floors[i], 'floor-line', FLOOR_COLOURS[k % FLOOR_COLOURS.length], f.name));
  line((p) => p.building, 'building-line', '#14213d', t('usage.trend.building'));
  const nowTs = nowMs() / 1000;
  if (nowTs > trend.from && nowTs < trend.until) {
    svg.append(s('line', { class: 'now', x1: x(nowTs), y1: T, x2: x(nowTs), y2: H - B }, s('title', {}, t('room.now'))));
  }
  const legend = h('div', { class: 'legend' },
    h('span', {}, h('span', { class: 'swatch line-building' }), t('usage.trend.building')),
    floors.map(({ f }, k) => h('span', {}, h('span', { class: `swatch line-${k % FLOOR_COLOURS.length}` }), f.name)));
  return [svg, legend];
}

const trendCard = {
  async fill(ctx, box) {
    this.week = !!this.week;
    const zone = ctx.site.timezone;
    const today = ymd(clockNow(), zone);
    const from = this.week ? addDays(today, -6) : today;
    const until = addDays(today, 1);
    const q = `from=${from}&until=${until}`;
    const trend = await api(`/api/v1/occupancy?${q}`);
    const peak = trend.steps.reduce((best, p) => (p.building != null && (!best || p.building > best.building) ? p : best), null);
    const when = (ts) => new Date(ts * 1000).toLocaleString(locale(), this.week
      ? { weekday: 'short', hour: '2-digit', minute: '2-digit', timeZone: zone }
      : { hour: '2-digit', minute: '2-digit', timeZone: zone });
    const tabs = h('div', { class: 'tabs', role: 'group', 'aria-label': t('usage.trend.span') },
      [[false, 'usage.trend.today'], [true, 'usage.trend.7d']].map(([wk, k]) => h('button', {
        type: 'button', 'aria-pressed': String(wk === this.week), 'data-trend': wk ? 'week' : 'day',
        onclick: () => { this.week = wk; this.fill(ctx, box).catch((e) => ctx.error(e)); },
      }, t(k))));
    const csv = h('button', {
      type: 'button', class: 'secondary', id: 'trend-csv',
      onclick: () => {
        const names = trend.floors.map((id) => (ctx.site.floors.find((f) => f.id === id) || { name: id }).name);
        downloadCsv(`building-${from}${this.week ? `-${until}` : ''}.csv`, [
          [t('usage.trend.at'), t('usage.trend.building'), ...names],
          ...trend.steps.map((p) => [new Date(p.start * 1000).toLocaleString('sv-SE', { timeZone: zone }), p.building ?? '', ...p.floors.map((v) => v ?? '')]),
        ]);
      },
    }, t('usage.csv'));
    clear(box).append(h('h2', {}, t(this.week ? 'usage.trend.week' : 'usage.trend.day')),
      h('div', { class: 'toolbar' }, tabs, csv),
      peak ? h('p', { id: 'trend-peak' }, t('usage.trend.peak', { n: Math.round(peak.building), time: when(peak.start) })) : h('p', { class: 'muted' }, t('usage.nodata')),
      ...trendChart(ctx, trend, this.week));
  },
};

export const usageView = {
  title: 'nav.usage',
  async render(ctx) {
    this.days = this.days || 28;
    const until = clockNow();
    const from = new Date(until.getTime() - this.days * 86400000);
    const report = await api(`/api/v1/utilisation?from=${encodeURIComponent(from.toISOString())}&until=${encodeURIComponent(until.toISOString())}`);
    // Each room by its name in the language shown (the report names them as the site file does).
    const rooms = report.rooms.filter((r) => r.observed_hours > 0 || r.booked_hours > 0 || r.nights_booked > 0)
      .map((r) => ({ ...r, name: roomName(ctx, r.room) }));
    // The heat map opens on the busiest room (most hours occupied), not the first in the list.
    const busiest = rooms.reduce((best, r) => (!best || r.occupied_hours > best.occupied_hours ? r : best), null);
    this.selected = this.selected && rooms.some((r) => r.room === this.selected) ? this.selected : (busiest && busiest.room);
    const periods = h('div', { class: 'tabs', role: 'group', 'aria-label': t('usage.period') },
      [7, 28, 90].map((d) => h('button', { type: 'button', 'aria-pressed': String(d === this.days), onclick: () => { this.days = d; ctx.rerender(); } }, t(`usage.days${d}`))));
    const heatBox = h('div', { class: 'card', id: 'heat' });
    const showHeat = (id) => {
      this.selected = id;
      const r = rooms.find((x) => x.room === id);
      clear(heatBox).append(h('h2', {}, r ? t('usage.heat.for', { room: r.name }) : t('usage.heat')), r ? heatMap(r) : '');
    };
    const table = sortable(h('table', { id: 'usage-table' },
      h('thead', {}, h('tr', {}, ['usage.room', 'usage.peak', 'usage.mean', 'usage.occupied', 'usage.booked', 'usage.used'].map((k) => h('th', {}, t(k))))),
      h('tbody', {}, rooms.map((r) => h('tr', {},
        h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => showHeat(r.room) }, r.name),
          // Hours without power by the outage schedules are left out of every figure.
          r.dark_hours > 0 ? h('div', { class: 'muted' }, t('usage.dark', { h: r.dark_hours.toFixed(1) })) : ''),
        h('td', {}, r.capacity ? `${r.peak} / ${r.capacity}` : String(r.peak)),
        h('td', {}, r.mean.toFixed(1)),
        h('td', {}, r.occupied_hours.toFixed(1)),
        // A hostel room is booked by the night: its nights, and the share someone slept there.
        h('td', {}, r.nights_booked > 0 && r.booked_hours === 0 ? t('usage.nights', { n: r.nights_booked }) : r.booked_hours.toFixed(1)),
        h('td', {}, r.nights_booked > 0 && r.booked_hours === 0
          ? `${Math.round((r.nights_used / r.nights_booked) * 100)}%`
          : r.booked_hours > 0 ? `${Math.round(r.use_of_booked * 100)}%` : '—'))))), locale());
    const trendBox = h('div', { class: 'card', id: 'trend' });
    await trendCard.fill(ctx, trendBox);
    const tableCsv = h('button', {
      type: 'button', class: 'secondary', id: 'usage-csv',
      onclick: () => downloadCsv(`utilisation-${ymd(from, ctx.site.timezone)}-${ymd(until, ctx.site.timezone)}.csv`, [
        ['room', 'name', 'capacity', 'peak', 'mean', 'occupied_hours', 'observed_hours', 'bookings', 'booked_hours', 'occupied_while_booked_hours', 'use_of_booked', 'nights_booked', 'nights_used', 'dark_hours'],
        ...rooms.map((r) => [r.room, r.name, r.capacity ?? '', r.peak, r.mean, r.occupied_hours, r.observed_hours, r.bookings, r.booked_hours, r.occupied_while_booked_hours, r.use_of_booked, r.nights_booked, r.nights_used, r.dark_hours]),
      ]),
    }, t('usage.csv'));
    const section = h('section', {}, h('h1', {}, t('usage.title')), trendBox, periods,
      rooms.length ? [heatBox, h('div', { class: 'card scroll' }, h('div', { class: 'toolbar' }, tableCsv), table),
        h('div', { class: 'card' }, h('h2', {}, t('usage.bva')), bookedBars(rooms))]
        : h('p', { class: 'muted' }, t('usage.nodata')));
    if (this.selected) showHeat(this.selected);
    return section;
  },
};

// ---------------------------------------------------------------- devices

function deviceTable(ctx, devices) {
  return h('div', { class: 'scroll' }, h('table', { class: 'devices' },
    h('thead', {}, h('tr', {}, ['devices.device', 'devices.kind', 'devices.where', 'devices.state', 'devices.seen', 'devices.power', 'devices.battery', 'devices.firmware']
      .map((k, i) => h('th', { class: i >= 6 ? 'hide-narrow' : undefined }, t(k))))),
    h('tbody', {}, devices.map((d) => h('tr', { 'data-device': d.device },
      h('td', {}, d.device),
      h('td', {}, t(`kind.${d.kind}`)),
      h('td', {}, [...d.doors.map((x) => doorName(ctx, x)), ...d.rooms.map((x) => roomName(ctx, x))].join(', ')),
      // Never heard from is not the same as gone quiet: a device not yet installed or powered.
      h('td', {}, d.online ? h('span', { class: 'pill ok' }, t('devices.online'))
        : d.last_seen == null ? h('span', { class: 'pill grey' }, t('devices.unheard'))
          : h('span', { class: 'pill bad' }, t('devices.offline'))),
      h('td', {}, ago(d.last_seen)),
      h('td', { class: d.power && !d.power.mains ? 'warn-text' : undefined }, powerText(d.power)),
      h('td', { class: 'hide-narrow' }, d.battery == null ? '—' : `${d.battery}%`),
      h('td', { class: 'hide-narrow' }, d.firmware || '—'))))));
}

export const devicesView = {
  title: 'nav.devices',
  render(ctx) {
    this.box = h('div', {});
    this.fill(ctx);
    return h('section', {}, h('h1', {}, t('devices.title')), this.box);
  },
  fill(ctx) {
    const on = ctx.live.devices.filter((d) => d.online).length;
    const csv = h('button', {
      type: 'button', class: 'secondary', id: 'devices-csv',
      onclick: () => downloadCsv('devices.csv', [
        ['device', 'kind', 'doors', 'rooms', 'online', 'last_seen', 'mains', 'battery_mv', 'left_s', 'shed', 'battery', 'firmware'],
        ...ctx.live.devices.map((d) => [d.device, d.kind, d.doors.join(' '), d.rooms.join(' '), d.online ? 'yes' : 'no',
          d.last_seen == null ? '' : new Date(d.last_seen * 1000).toISOString(),
          d.power ? (d.power.mains ? 'yes' : 'no') : '', d.power?.battery_mv ?? '', d.power?.left_s ?? '', d.power?.shed ? 'yes' : '',
          d.battery ?? '', d.firmware || '']),
      ]),
    }, t('usage.csv'));
    clear(this.box).append(h('div', { class: 'toolbar' }, csv), h('p', {}, t('devices.summary', { on, all: ctx.live.devices.length })),
      h('div', { class: 'card' }, deviceTable(ctx, ctx.live.devices)));
  },
  update(ctx) { this.fill(ctx); },
};
