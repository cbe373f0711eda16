// Who is inside: the people to account for, by floor and room. Each person is named where
// their last allowed tap took them (the server reads the log); beside each room stands its live
// head count, and where it counted more people than taps named, the rest are shown as counted,
// not named. In shelter and emergency modes the header links here from every page.
//
// The list follows the building: it is read again on every decision and every few seconds,
// and exports as CSV (the page's own rows, in the page's language) or prints.

import { api } from './api.js';
import { h, clear, downloadCsv } from './dom.js';
import { t } from './i18n.js';
import { fmtClock, fmtTime } from './clock.js';

const REFRESH_MS = 10000;


export const insideView = {
  title: 'nav.inside',
  reset() { this.q = ''; clearInterval(this.timer); },
  async render(ctx) {
    this.q = this.q || '';
    this.box = h('div', { id: 'inside-list' });
    this.summary = h('p', { class: 'big-line', id: 'inside-summary', role: 'status' });
    const search = h('input', {
      type: 'search', id: 'inside-q', value: this.q, autocomplete: 'off',
      placeholder: t('inside.search'), 'aria-label': t('inside.search'),
    });
    search.addEventListener('input', () => { this.q = search.value.trim().toLowerCase(); this.draw(ctx); });
    this.csv = h('button', { type: 'button', class: 'secondary', id: 'inside-csv', onclick: () => this.download(ctx) }, t('inside.csv'));
    const print = h('button', { type: 'button', class: 'secondary', onclick: () => window.print() }, t('inside.print'));
    await this.load(ctx);
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (!document.body.contains(this.box)) { clearInterval(this.timer); return; }
      this.load(ctx).catch(() => { /* the stale bar says so */ });
    }, REFRESH_MS);
    return h('section', { class: 'inside' }, h('h1', {}, t('inside.title')), this.summary,
      h('p', { class: 'muted' }, t('inside.how')),
      h('div', { class: 'toolbar' }, search, this.csv, print), this.box);
  },

  async load(ctx) {
    const mine = (this.seq = (this.seq || 0) + 1);
    const data = await api('/api/v1/inside');
    if (mine !== this.seq) return;
    this.data = data;
    this.draw(ctx);
  },

  // Rooms by floor (top floor first, as the building reads from a stair), each with its people.
  rows(ctx) {
    const q = this.q;
    const rooms = new Map(ctx.site.rooms.map((r) => [r.id, r]));
    const floors = [...ctx.site.floors].sort((a, b) => b.level - a.level);
    const out = [];
    for (const f of floors) {
      const here = this.data.rooms.filter((r) => (rooms.get(r.room) || {}).floor === f.id);
      const shown = here.map((r) => {
        const room = rooms.get(r.room);
        const people = r.people.filter((p) => !q || p.name.toLowerCase().includes(q)
          || p.member.includes(q) || room.name.toLowerCase().includes(q));
        return { r, room, people, match: !q || people.length || room.name.toLowerCase().includes(q) };
      }).filter((x) => x.match);
      if (shown.length) out.push({ floor: f, rooms: shown });
    }
    return out;
  },

  draw(ctx) {
    if (!this.data) return;
    const d = this.data;
    this.summary.textContent = t('inside.summary', { n: d.at_least, named: d.named, counted: d.counted, time: fmtClock(d.at) });
    const doorName = (id) => (ctx.site.doors.find((x) => x.id === id) || { name: id }).name;
    const floors = this.rows(ctx);
    clear(this.box);
    if (d.partial) this.box.append(h('p', { class: 'notice' }, t('inside.partial')));
    if (!floors.length) { this.box.append(h('p', { class: 'muted' }, t(this.q ? 'inside.nomatch' : 'inside.empty'))); return; }
    for (const { floor, rooms } of floors) {
      const n = rooms.reduce((a, x) => a + Math.max(x.r.people.length, x.r.count), 0);
      this.box.append(h('h2', {}, `${floor.name} — ${t('inside.people', { n })}`));
      for (const { r, room, people } of rooms) {
        const notes = [];
        if (r.unnamed) notes.push(h('span', { class: 'pill warn' }, t('inside.unnamed', { n: r.unnamed, basis: t(`basis.${r.basis}`) })));
        if (r.fewer_counted) notes.push(h('span', { class: 'pill grey' }, t('inside.fewer', { n: r.count })));
        const shelter = ctx.live.shelter === r.room;
        this.box.append(h('div', { class: `card room-inside${shelter ? ' shelter-room' : ''}`, 'data-room': r.room },
          h('h3', {}, h('a', { href: `#/room/${encodeURIComponent(r.room)}` }, room.name), ' ',
            h('span', { class: 'muted' }, t('inside.room.count', { n: Math.max(r.people.length, r.count) }))),
          notes.length ? h('p', {}, notes) : null,
          people.length ? h('table', { class: 'inside-table' },
            h('thead', {}, h('tr', {}, h('th', {}, t('inside.name')), h('th', {}, t('inside.since')), h('th', { class: 'hide-narrow' }, t('inside.door')))),
            h('tbody', {}, people.map((p) => h('tr', { 'data-member': p.member },
              h('td', {}, p.name), h('td', {}, fmtClock(p.since)), h('td', { class: 'hide-narrow' }, doorName(p.door))))))
            : null));
      }
    }
  },

  download(ctx) {
    if (!this.data) return;
    const lines = [[t('inside.floor'), t('inside.room'), t('inside.name'), t('inside.member'), t('inside.since'), t('inside.door'), t('inside.note')]];
    const doorName = (id) => (ctx.site.doors.find((x) => x.id === id) || { name: id }).name;
    for (const { floor, rooms } of this.rows(ctx)) {
      for (const { r, room, people } of rooms) {
        for (const p of people) lines.push([floor.name, room.name, p.name, p.member, fmtTime(p.since * 1000), doorName(p.door), '']);
        if (r.unnamed) lines.push([floor.name, room.name, '', '', '', '', t('inside.unnamed', { n: r.unnamed, basis: t(`basis.${r.basis}`) })]);
      }
    }
    downloadCsv(`inside-${new Date(this.data.at * 1000).toISOString().slice(0, 16).replace(':', '')}.csv`, lines);
  },

  // A decision may move someone: read again, at most every five seconds (each reading scans
  // the day's log on the gateway).
  decision(ctx) {
    if (this.soon) return;
    this.soon = setTimeout(() => { this.soon = null; this.load(ctx).catch(() => {}); }, 5000);
  },
};
