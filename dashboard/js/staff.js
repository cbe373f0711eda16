// Staff accounts (admins only; the server refuses everyone else): who can sign in to this
// dashboard and with which role. An admin adds an account with a password made in the browser
// and shown once, changes a role, gives a new password (which signs the account out
// everywhere) and removes an account after a confirmation. The server keeps the last admin.

import { api, change } from './api.js';
import { h, clear } from './dom.js';
import { t, locale } from './i18n.js';

const ROLES = ['viewer', 'operator', 'admin'];
const ALPHABET = 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';

// A password of 20 characters from the browser's cryptographic random source (about 116 bits).
function newPassword() {
  const bytes = new Uint8Array(20);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => ALPHABET[b % ALPHABET.length]).join('');
}

function roleSelect(id, value, label) {
  return h('select', { id, 'aria-label': label }, ROLES.map((r) => h('option', { value: r, selected: r === value }, t(`role.${r}`))));
}

export const staffView = {
  title: 'nav.staff',
  async render(ctx) {
    this.list = h('div', { class: 'card scroll', id: 'staff-list' });
    this.shown = h('p', { id: 'staff-password', class: 'notice', role: 'status', hidden: true });
    const name = h('input', { id: 'staff-new-name', required: true, autocomplete: 'off', pattern: '[a-z0-9][a-z0-9._\\-]{0,31}', title: t('people.id.hint') });
    const role = roleSelect('staff-new-role', 'viewer', t('staff.role'));
    const form = h('form', { id: 'staff-add', class: 'card form-grid' },
      h('h2', {}, t('staff.add')),
      h('label', { class: 'field' }, h('span', {}, t('staff.name')), name),
      h('label', { class: 'field' }, h('span', {}, t('staff.role')), role),
      h('button', { type: 'submit', class: 'action' }, t('staff.add.submit')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const password = newPassword();
      const who = name.value.trim();
      this.act(ctx, null, () => api('/api/v1/staff', { method: 'POST', body: { name: who, role: role.value, password } }),
        t('staff.added', { name: who }))
        .then((ok) => { if (ok) { form.reset(); this.show(who, password); } });
    });
    await this.fill(ctx);
    return h('section', {}, h('h1', {}, t('staff.title')), h('p', { class: 'muted' }, t('staff.intro')), this.shown, form, this.list);
  },

  // A password made here, shown once for the admin to hand over.
  show(name, password) {
    clear(this.shown).append(t('staff.password', { name }), ' ', h('code', { id: 'staff-password-value' }, password));
    this.shown.hidden = false;
  },

  async fill(ctx) {
    const accounts = await api('/api/v1/staff');
    clear(this.list).append(h('table', { id: 'staff-table' },
      h('thead', {}, h('tr', {}, ['staff.name', 'staff.role', 'staff.since', 'people.actions'].map((k) => h('th', {}, t(k))))),
      h('tbody', {}, accounts.map((a) => {
        const me = ctx.me && ctx.me.name === a.name;
        const role = roleSelect(`staff-role-${a.name}`, a.role, t('staff.role.of', { name: a.name }));
        // Asked first: a role is what a person may do at every door and page.
        role.addEventListener('change', () => this.act(ctx, t('staff.role.confirm', { name: a.name, role: t(`role.${role.value}`) }),
          () => api(`/api/v1/staff/${encodeURIComponent(a.name)}`, { method: 'PATCH', body: { role: role.value } }),
          t('staff.changed', { name: a.name })).then((ok) => { if (!ok) role.value = a.role; }));
        return h('tr', { 'data-staff': a.name },
          h('td', {}, a.name, me ? h('span', { class: 'muted' }, ` (${t('staff.you')})`) : ''),
          h('td', {}, role),
          h('td', {}, new Date(a.created_at).toLocaleDateString(locale())),
          h('td', {}, h('div', { class: 'actions' },
            h('button', { type: 'button', class: 'secondary', 'data-new-password': a.name,
              onclick: () => {
                const password = newPassword();
                this.act(ctx, t('staff.password.confirm', { name: a.name }),
                  () => api(`/api/v1/staff/${encodeURIComponent(a.name)}`, { method: 'PATCH', body: { password } }),
                  t('staff.changed', { name: a.name })).then((ok) => { if (ok) this.show(a.name, password); });
              } }, t('staff.password.new')),
            me ? '' : h('button', { type: 'button', class: 'link revoke', 'data-remove': a.name,
              onclick: () => this.act(ctx, t('staff.remove.confirm', { name: a.name }),
                () => api(`/api/v1/staff/${encodeURIComponent(a.name)}`, { method: 'DELETE' }),
                t('staff.removed', { name: a.name })) }, t('staff.remove')))));
      }))));
  },

  act(ctx, confirm, send, done) {
    return change(ctx, confirm, send, done, () => this.fill(ctx));
  },
};
