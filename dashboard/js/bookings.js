// The day's bookings, every source's, on the site's clock: by room or all, with title,
// organiser, time, status and no-shows; operators book a room at the desk and cancel a booking
// (after a confirmation). The server enforces the roles and what may be booked, and logs who.

import { now } from './clock.js';
import { api, change } from './api.js';
import { h, clear, sortable, downloadCsv } from './dom.js';
import { t, locale } from './i18n.js';

const canOperate = (ctx) => ctx.me && (ctx.me.role === 'operator' || ctx.me.role === 'admin');

// Today on the site's clock, YYYY-MM-DD.
function today(ctx) {
  return new Intl.DateTimeFormat('en-CA', { timeZone: ctx.site.timezone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(now());
}

export const bookingsView = {
  title: 'nav.bookings',
  async render(ctx) {
    // Today at each visit (a desk left open overnight shows the new day), unless picked since.
    if (!this.picked) this.day = today(ctx);
    this.picked = false;
    this.room = this.room || '';
    this.list = h('div', { class: 'card scroll', id: 'bookings-list' });
    const zone = ctx.site.timezone;
    this.clock = (iso) => new Date(iso).toLocaleTimeString(locale(), { hour: '2-digit', minute: '2-digit', timeZone: zone });
    const day = h('input', { type: 'date', id: 'bookings-day', value: this.day, 'aria-label': t('bookings.day') });
    day.addEventListener('change', () => { if (day.value) { this.day = day.value; this.picked = true; this.fill(ctx).catch((e) => ctx.error(e)); } });
    const rooms = ctx.site.rooms.slice().sort((a, b) => a.name.localeCompare(b.name, locale()));
    const room = h('select', { id: 'bookings-room', 'aria-label': t('bookings.room') },
      h('option', { value: '' }, t('bookings.all')),
      rooms.map((r) => h('option', { value: r.id, selected: r.id === this.room }, r.name)));
    room.addEventListener('change', () => { this.room = room.value; this.fill(ctx).catch((e) => ctx.error(e)); });
    const parts = [h('h1', {}, t('bookings.title')),
      h('div', { class: 'toolbar' }, h('label', { class: 'field' }, h('span', {}, t('bookings.day')), day),
        h('label', { class: 'field' }, h('span', {}, t('bookings.room')), room))];
    if (canOperate(ctx)) parts.push(this.addForm(ctx, rooms.filter((r) => r.bookable_at_desk)));
    parts.push(this.list);
    await this.fill(ctx);
    return h('section', {}, parts);
  },

  async fill(ctx) {
    const q = `day=${encodeURIComponent(this.day)}${this.room ? `&room=${encodeURIComponent(this.room)}` : ''}`;
    const d = await api(`/api/v1/schedule?${q}`);
    const name = (id) => (ctx.site.rooms.find((r) => r.id === id) || { name: id }).name;
    const heads = ['bookings.time', 'bookings.room', 'bookings.what', 'bookings.organiser', 'bookings.status'];
    if (canOperate(ctx)) heads.push('people.actions');
    const csv = h('button', {
      type: 'button', class: 'secondary', id: 'bookings-csv',
      onclick: () => downloadCsv(`bookings-${this.day}${this.room ? `-${this.room}` : ''}.csv`, [
        ['start', 'end', 'room', 'title', 'kind', 'source', 'organiser', 'attendees', 'status', 'no_show', 'no_power'],
        ...d.bookings.map((b) => [b.start, b.end, name(b.room), b.title, b.kind, b.source, b.organiser_name || b.organiser || '', b.attendees || 0, b.status, b.no_show ? 'yes' : '',
          (b.dark || []).map(([a, z]) => `${a}/${z}`).join(' ')]),
      ]),
    }, t('usage.csv'));
    clear(this.list).append(
      h('div', { class: 'toolbar' }, csv),
      h('p', { class: 'muted', id: 'bookings-count', role: 'status' }, t('bookings.count', { n: d.bookings.length })),
      d.bookings.length === 0 ? '' : sortable(h('table', { id: 'bookings-table' },
        h('thead', {}, h('tr', {}, heads.map((k) => h('th', {}, t(k))))),
        h('tbody', {}, d.bookings.map((b) => {
          const cancelled = b.status === 'cancelled';
          const status = [b.no_show ? h('span', { class: 'pill bad' }, t('room.noshow'))
            : h('span', { class: `pill ${cancelled ? 'grey' : 'ok'}` }, t(cancelled ? 'bookings.cancelled' : 'bookings.confirmed')),
          // The room has no power during it by the outage schedule (the booking system was told).
          ...(b.dark || []).map(([a, z]) => h('div', {}, h('span', { class: 'pill warn', 'data-dark': b.key },
            t('bookings.dark', { from: this.clock(a), until: this.clock(z) }))))];
          const cells = [
            h('td', {}, `${this.clock(b.start)}–${this.clock(b.end)}`),
            h('td', {}, name(b.room)),
            h('td', {}, b.title || '—', h('div', { class: 'muted' }, t(`bookings.kind.${b.kind}`), ' · ', b.source)),
            h('td', {}, b.organiser_name || b.organiser || '—', b.attendees ? h('div', { class: 'muted' }, t('bookings.attendees', { n: b.attendees })) : ''),
            h('td', {}, status),
          ];
          if (canOperate(ctx)) {
            cells.push(h('td', {}, cancelled ? '' : h('button', {
              type: 'button', class: 'link revoke', 'data-cancel': b.key,
              // A booking system's booking comes back at its next sync unless cancelled there too.
              onclick: () => this.act(ctx, [t('bookings.cancel.confirm', { title: b.title, room: name(b.room), time: this.clock(b.start) }),
                b.source === 'dashboard' ? '' : t('bookings.cancel.elsewhere', { source: b.source })].filter(Boolean).join('\n\n'),
                () => api(`/api/v1/schedule/${encodeURIComponent(b.source)}/${encodeURIComponent(b.external_id)}`, { method: 'DELETE' }),
                t('bookings.cancelled.done')),
            }, t('bookings.cancel'))));
          }
          return h('tr', { 'data-booking': b.key, class: cancelled ? 'suspended' : undefined }, cells);
        }))), locale()));
  },

  addForm(ctx, rooms) {
    const input = (id, attrs) => h('input', { id, name: id, autocomplete: 'off', ...attrs });
    const form = h('form', { id: 'bookings-add', class: 'card form-grid' },
      h('h2', {}, t('bookings.add')),
      h('label', { class: 'field' }, h('span', {}, t('bookings.room')),
        h('select', { id: 'book-room', required: true }, rooms.map((r) => h('option', { value: r.id }, r.name)))),
      h('label', { class: 'field' }, h('span', {}, t('bookings.what')), input('book-title', { required: true, maxlength: 200 })),
      h('label', { class: 'field' }, h('span', {}, t('bookings.from')), input('book-start', { type: 'time', required: true })),
      h('label', { class: 'field' }, h('span', {}, t('bookings.until')), input('book-end', { type: 'time', required: true })),
      h('label', { class: 'field' }, h('span', {}, t('bookings.organiser.id')), input('book-organiser', { required: true })),
      h('button', { type: 'submit', class: 'action' }, t('bookings.add.submit')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const v = (id) => form.querySelector(`#${id}`).value.trim();
      // Local times on the day shown, on the site's clock (the server reads them so).
      const body = { room: v('book-room'), title: v('book-title'), organiser: v('book-organiser'),
        start: `${this.day} ${v('book-start')}`, end: `${this.day} ${v('book-end')}` };
      this.act(ctx, null, () => api('/api/v1/schedule', { method: 'POST', body }), t('bookings.added'))
        .then((ok) => { if (ok) form.reset(); });
    });
    return form;
  },

  act(ctx, confirm, send, done) {
    return change(ctx, confirm, send, done, () => this.fill(ctx));
  },
};
