// People and their cards, through the running gateway: find a member by name, id or e-mail (an
// admin also by card number), and, for admins, add a member with a card, suspend and resume,
// issue and revoke cards. The server enforces every role and logs who did what; a viewer or an
// operator sees the list with card numbers masked.

import { api, change } from './api.js';
import { h, clear, sortable, downloadCsv } from './dom.js';
import { t, locale } from './i18n.js';

const isAdmin = (ctx) => ctx.me && ctx.me.role === 'admin';

function field(id, label, attrs = {}) {
  return h('label', { class: 'field' }, h('span', {}, t(label)), h('input', { id, name: id, ...attrs }));
}

export const peopleView = {
  title: 'nav.people',
  reset() { this.q = ''; },
  async render(ctx) {
    this.q = this.q || '';
    this.list = h('div', { class: 'card scroll', id: 'people-list' });
    const search = h('input', {
      type: 'search', id: 'people-q', value: this.q, autocomplete: 'off',
      placeholder: t(isAdmin(ctx) ? 'people.search.admin' : 'people.search'),
      'aria-label': t(isAdmin(ctx) ? 'people.search.admin' : 'people.search'),
    });
    let timer;
    search.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => { this.q = search.value.trim(); this.fill(ctx).catch((e) => ctx.error(e)); }, 250);
    });
    // A PIN just issued, shown this once for the admin to hand over.
    this.pinShown = h('p', { id: 'people-pin', class: 'notice', role: 'status', hidden: true });
    const parts = [h('h1', {}, t('people.title')), h('div', { class: 'toolbar' }, search), this.pinShown];
    if (isAdmin(ctx)) parts.push(this.addForm(ctx));
    else parts.push(h('p', { class: 'muted' }, t('people.admins')));
    parts.push(this.list);
    await this.fill(ctx);
    return h('section', {}, parts);
  },

  async fill(ctx) {
    // Only the answer to the latest search is drawn (an older one may come back later).
    const mine = (this.seq = (this.seq || 0) + 1);
    const page = await api(`/api/v1/members?limit=200&q=${encodeURIComponent(this.q)}`);
    if (mine !== this.seq) return;
    const heads = ['people.name', 'people.id', 'people.plan', 'people.status', 'people.cards'];
    if (isAdmin(ctx)) heads.push('people.actions');
    // The list as shown (card numbers masked below admin, as on the page).
    const csv = h('button', {
      type: 'button', class: 'secondary', id: 'people-csv',
      onclick: () => downloadCsv('people.csv', [
        ['id', 'name', 'email', 'plan', 'organisation', 'status', 'suspended_reason', 'cards', 'pins'],
        ...page.members.map((m) => [m.id, m.name, m.email || '', m.plan || '', m.organisation || '', m.status, m.suspended_reason || '',
          m.cards.map((c) => c.card).join(' '), m.pins || 0]),
      ]),
    }, t('usage.csv'));
    clear(this.list).append(
      h('div', { class: 'toolbar' }, csv),
      h('p', { class: 'muted', id: 'people-count', role: 'status' }, t('people.count', { n: page.total }),
        page.total > page.members.length ? ` ${t('people.first', { n: page.members.length })}` : ''),
      sortable(h('table', { id: 'people-table' },
        h('thead', {}, h('tr', {}, heads.map((k) => h('th', {}, t(k))))),
        h('tbody', {}, page.members.map((m) => this.row(ctx, m)))), locale()));
  },

  row(ctx, m) {
    const admin = isAdmin(ctx);
    const suspended = m.status === 'suspended';
    const cards = h('ul', { class: 'cards' }, m.cards.map((c) => h('li', { 'data-card': c.card }, c.card,
      admin ? h('button', {
        type: 'button', class: 'link revoke', 'data-revoke': c.card,
        'aria-label': t('people.revoke.label', { card: c.card, name: m.name }),
        onclick: () => this.act(ctx, t('people.revoke.confirm', { card: c.card, name: m.name }),
          () => api(`/api/v1/cards/${encodeURIComponent(c.card)}`, { method: 'DELETE' }), t('people.revoked')),
      }, t('people.revoke')) : '')),
    // PINs are never shown again: that one is held, and (admins) revoke it.
    m.pins ? h('li', { 'data-pin': m.id }, t('people.pin.held'),
      admin ? h('button', {
        type: 'button', class: 'link revoke', 'data-revoke-pin': m.id,
        onclick: () => this.act(ctx, t('people.pin.revoke.confirm', { name: m.name }),
          () => api(`/api/v1/members/${encodeURIComponent(m.id)}/pin`, { method: 'DELETE' }), t('people.pin.revoked')),
      }, t('people.revoke')) : '') : null);
    const cells = [
      h('td', {}, m.name, m.organisation ? h('div', { class: 'muted' }, m.organisation) : ''),
      h('td', {}, m.id),
      h('td', {}, m.plan ? ((ctx.site.plans || []).find((p) => p.id === m.plan) || { name: m.plan }).name : '—'),
      h('td', {}, h('span', { class: `pill ${suspended ? 'bad' : 'ok'}` }, t(suspended ? 'people.suspended' : 'people.active')),
        suspended && m.suspended_reason ? h('div', { class: 'muted' }, m.suspended_reason) : ''),
      h('td', {}, cards),
    ];
    if (admin) {
      const card = h('input', { class: 'card-input', 'aria-label': t('people.card.label', { name: m.name }), placeholder: t('people.card'), size: 12 });
      const toggle = suspended
        ? h('button', { type: 'button', class: 'secondary', 'data-resume': m.id,
          onclick: () => this.act(ctx, null, () => api(`/api/v1/members/${encodeURIComponent(m.id)}`, { method: 'PATCH', body: { suspended: '' } }), t('people.resumed')) }, t('people.resume'))
        : h('button', { type: 'button', class: 'secondary', 'data-suspend': m.id,
          onclick: () => {
            const why = window.prompt(t('people.suspend.why', { name: m.name }), t('people.suspend.default'));
            if (why === null || why.trim() === '') return;
            this.act(ctx, null, () => api(`/api/v1/members/${encodeURIComponent(m.id)}`, { method: 'PATCH', body: { suspended: why.trim() } }), t('people.suspended.done'));
          } }, t('people.suspend'));
      const pin = h('button', {
        type: 'button', class: 'secondary', 'data-issue-pin': m.id,
        onclick: async () => {
          if (!window.confirm(t('people.pin.confirm', { name: m.name }))) return;
          try {
            const issued = await api(`/api/v1/members/${encodeURIComponent(m.id)}/pin`, { method: 'POST' });
            clear(this.pinShown).append(t('people.pin.shown', { name: m.name }), ' ', h('code', { id: 'people-pin-value' }, issued.pin));
            this.pinShown.hidden = false;
          } catch (err) { ctx.error(err); }
          await this.fill(ctx).catch((err) => ctx.error(err));
        },
      }, t('people.pin.issue'));
      // Erasure cannot be undone: the member's id is typed again to confirm it.
      const erase = h('button', {
        type: 'button', class: 'danger', 'data-erase': m.id,
        onclick: async () => {
          const typed = window.prompt(t('people.erase.confirm', { name: m.name, id: m.id }), '');
          if (typed === null) return;
          if (typed.trim() !== m.id) { ctx.toast(t('people.erase.mismatch')); return; }
          try {
            const done = await api(`/api/v1/members/${encodeURIComponent(m.id)}/erase`, { method: 'POST', body: { confirm: typed.trim() } });
            ctx.toast(t('people.erase.done', { pseudonym: done.pseudonym, n: done.entries }));
          } catch (err) { ctx.error(err); }
          await this.fill(ctx).catch((err) => ctx.error(err));
        },
      }, t('people.erase'));
      cells.push(h('td', {}, h('div', { class: 'actions' }, toggle, pin, erase,
        h('form', { class: 'inline', 'data-add-card': m.id,
          onsubmit: (e) => {
            e.preventDefault();
            if (!card.value.trim()) return;
            this.act(ctx, null, () => api(`/api/v1/members/${encodeURIComponent(m.id)}/cards`, { method: 'POST', body: { card: card.value.trim() } }), t('people.card.added'));
          } }, card, h('button', { type: 'submit', class: 'action' }, t('people.card.add'))))));
    }
    return h('tr', { 'data-member': m.id, class: suspended ? 'suspended' : undefined }, cells);
  },

  addForm(ctx) {
    const form = h('form', { id: 'people-add', class: 'card form-grid' },
      h('h2', {}, t('people.add')),
      field('new-id', 'people.id', { required: true, pattern: '[a-z0-9][a-z0-9._\\-]{0,31}', autocomplete: 'off', title: t('people.id.hint') }),
      field('new-name', 'people.name', { required: true, autocomplete: 'off' }),
      field('new-email', 'people.email', { type: 'email', autocomplete: 'off' }),
      field('new-plan', 'people.plan', { autocomplete: 'off', list: 'plans' }),
      field('new-card', 'people.card', { autocomplete: 'off' }),
      h('datalist', { id: 'plans' }, (ctx.site.plans || []).map((p) => h('option', { value: p.id }, p.name))),
      h('button', { type: 'submit', class: 'action' }, t('people.add.submit')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const v = (id) => form.querySelector(`#${id}`).value.trim();
      const body = { id: v('new-id'), name: v('new-name') };
      if (v('new-email')) body.email = v('new-email');
      if (v('new-plan')) body.plan = v('new-plan');
      if (v('new-card')) body.cards = v('new-card');
      this.act(ctx, null, () => api('/api/v1/members', { method: 'POST', body }), t('people.added', { name: body.name }))
        .then((ok) => { if (ok) { form.reset(); } });
    });
    return form;
  },

  act(ctx, confirm, send, done) {
    return change(ctx, confirm, send, done, () => this.fill(ctx));
  },
};
