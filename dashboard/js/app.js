// The dashboard's shell: sign-in, the header (site, mode, shelter count, live state,
// language, user), the alarm bar, routing by the address's #fragment, and the live stream
// that keeps `ctx.live` current and tells the page in view.

import { api, setCsrf, stream, ApiError } from './api.js';
import { h, clear } from './dom.js';
import { t, setLang, lang, locale } from './i18n.js';
import { planView, roomView, doorsView, logView, usageView, devicesView, alarmText, deviceWhere, doorName, hoursMinutes } from './views.js';
import { peopleView } from './people.js';
import { staffView } from './staff.js';
import { bookingsView } from './bookings.js';
import { insideView } from './inside.js';
import { alarmSignal } from './alarms.js';
import { setClock, setZone, now as clockNow, fmtClock } from './clock.js';

const $ = (id) => document.getElementById(id);

const ROUTES = [
  ['plan', planView],
  ['inside', insideView],
  ['doors', doorsView],
  ['log', logView],
  ['people', peopleView],
  ['bookings', bookingsView],
  ['usage', usageView],
  ['devices', devicesView],
  ['staff', staffView],
];

// Pages only admins are shown in the menu (the server refuses the others anyway).
const ADMIN_ONLY = new Set(['staff']);

const ctx = {
  site: null,
  live: null,
  me: null,
  view: null,
  go(route) { window.location.hash = `#/${route}`; },
  rerender() { render(); },
  toast(msg) {
    const el = $('toast');
    el.textContent = msg;
    el.classList.add('show');
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => el.classList.remove('show'), 4000);
  },
  error(err) {
    if (err instanceof ApiError && err.status === 401) { signedOut(); return; }
    if (err instanceof ApiError && err.status === 403) { this.toast(t('error.forbidden')); return; }
    this.toast(err instanceof TypeError ? t('error.network') : t('error.generic', { why: err.message }));
  },
};

let es = null;

function texts() {
  document.title = t('app.title');
  $('skip').textContent = t('app.skip');
  $('login-title').textContent = t('login.title');
  $('login-name-label').textContent = t('login.name');
  $('login-password-label').textContent = t('login.password');
  $('login-submit').textContent = t('login.submit');
  for (const id of ['lang', 'login-lang']) {
    $(id).textContent = t('lang.switch');
    $(id).setAttribute('aria-label', t('lang.switch.label'));
    $(id).setAttribute('lang', lang() === 'uk' ? 'en' : 'uk');
  }
  $('logout').textContent = t('logout');
  const nav = clear($('nav'));
  nav.setAttribute('aria-label', t('nav.main'));
  for (const [route] of ROUTES) {
    nav.append(h('a', { href: `#/${route}`, 'data-route': route }, t(`nav.${route}`)));
  }
}

function header() {
  if (!ctx.live) return;
  $('site-name').textContent = ctx.site ? ctx.site.name : '';
  const mode = $('mode');
  mode.textContent = `${t('mode.label')}: ${t(`mode.${ctx.live.mode}`)}`;
  mode.className = `mode ${ctx.live.mode}`;
  const shelter = $('shelter');
  const room = ctx.live.shelter && ctx.live.rooms.find((r) => r.room === ctx.live.shelter);
  shelter.hidden = !(ctx.live.mode === 'shelter' && room);
  if (room) shelter.textContent = t('shelter.count', { n: room.count });
  // In shelter and emergency modes the people to account for are one click from every page.
  const rollcall = $('rollcall');
  rollcall.hidden = !['shelter', 'emergency'].includes(ctx.live.mode);
  // The count is the roll-call page's (names and counts together), not the sensors' alone.
  rollcall.textContent = rollcall.hidden ? '' : t('rollcall');
  $('user').textContent = ctx.me ? t('user.role', { name: ctx.me.name, role: t(`role.${ctx.me.role}`) }) : '';
  for (const a of $('nav').querySelectorAll('a')) {
    a.hidden = ADMIN_ONLY.has(a.dataset.route) && !(ctx.me && ctx.me.role === 'admin');
  }
  powerBar();
  // The bar is for alarms nobody has taken in hand yet; the taken ones stay on the doors page.
  const bar = $('alarm-bar');
  const open = ctx.live.alarms.filter((a) => !a.ack);
  bar.hidden = open.length === 0;
  if (!open.length) clear(bar);
  else {
    clear(bar).append(h('a', { href: '#/doors' }, `${t('alarms.open', { n: open.length })} — `,
      open.slice(0, 3).map((a) => t(`alarm.${a.alarm}`)).join(', ')));
  }
}

// Mains lost anywhere: since when, which doors run on battery, how long the emptiest battery
// lasts at the rate it falls, and which doors shedding left unlocked.
function powerBar() {
  const bar = $('power-bar');
  const p = ctx.live.power;
  bar.hidden = !p || (p.on_battery.length === 0 && p.shed_doors.length === 0);
  if (bar.hidden) { clear(bar); return; }
  const parts = [];
  if (p.mains_lost_since != null) {
    parts.push(t('power.lost', { time: fmtClock(p.mains_lost_since), n: p.on_battery.length }));
  }
  if (p.least_left) {
    parts.push(t('power.left', { where: deviceWhere(ctx, p.least_left[0]), left: hoursMinutes(p.least_left[1]) }));
  }
  if (p.shed_doors.length) {
    parts.push(t('power.shed', { doors: p.shed_doors.map((d) => doorName(ctx, d)).join(', ') }));
  }
  clear(bar).append(h('a', { href: '#/devices' }, parts.join(' · ')));
}

// While the live stream is down, what the pages show is only as of when it was last up: they
// are greyed and a bar says since when, so nobody takes a stale count for the building now.
let lastUp = null;
function liveState(up) {
  const el = $('live');
  el.textContent = up ? t('live.on') : t('live.off');
  el.classList.toggle('off', !up);
  if (up) lastUp = null; else if (!lastUp) lastUp = clockNow();
  const bar = $('stale-bar');
  bar.hidden = up || !ctx.live;
  if (!bar.hidden) {
    const time = lastUp.toLocaleTimeString(locale(), { hour: '2-digit', minute: '2-digit', timeZone: ctx.site ? ctx.site.timezone : undefined });
    bar.textContent = t('live.stale', { time });
  }
  document.body.classList.toggle('stale', !bar.hidden);
}

function route() {
  const parts = (window.location.hash.replace(/^#\/?/, '') || 'plan').split('/');
  return { name: parts[0], arg: parts.slice(1).map(decodeURIComponent).join('/') };
}

let rendering = 0;
async function render() {
  if (!ctx.site || !ctx.live) return;
  const r = route();
  const view = r.name === 'room' ? roomView : (ROUTES.find(([n]) => n === r.name) || ROUTES[0])[1];
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.dataset.route === (r.name === 'room' ? 'plan' : r.name)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const mine = ++rendering;
  ctx.view = null;
  try {
    const node = await view.render(ctx, r.arg);
    if (mine !== rendering) return;
    clear($('view')).append(node);
    // What can only be measured once drawn (the plan's labels).
    if (view.mounted) view.mounted(ctx);
    ctx.view = view;
    document.body.dataset.view = r.name;
  } catch (err) {
    if (mine === rendering) ctx.error(err);
  }
}

// Live events change `ctx.live`; the page in view follows at the next frame.
let pending = false;
function changed() {
  header();
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    if (ctx.view && ctx.view.update) ctx.view.update(ctx);
  });
}

function replace(list, key, item) {
  const i = list.findIndex((x) => x[key] === item[key]);
  if (i >= 0) list[i] = item; else list.push(item);
}

function sameAlarm(a, b) {
  return a.alarm === b.alarm && a.door === b.door && a.device === b.device && a.feed === b.feed;
}

function onEvent(kind, data) {
  switch (kind) {
    case 'snapshot':
    case 'resync': {
      const first = !ctx.live;
      ctx.live = data;
      if (kind === 'resync') ctx.toast(t('live.resync'));
      if (first) { header(); render(); } else changed();
      return;
    }
    default:
      // Before the first snapshot, and what the snapshot already holds, change nothing.
      if (!ctx.live || (typeof data.seq === 'number' && data.seq <= ctx.live.seq)) return;
  }
  switch (kind) {
    case 'room': replace(ctx.live.rooms, 'room', data.room); break;
    case 'door': replace(ctx.live.doors, 'door', data.door); break;
    case 'device': replace(ctx.live.devices, 'device', data.device); break;
    case 'alarm': {
      const known = ctx.live.alarms.some((x) => sameAlarm(x, data.alarm));
      ctx.live.alarms = ctx.live.alarms.filter((x) => !sameAlarm(x, data.alarm));
      ctx.live.alarms.push(data.alarm);
      if (!known && !data.alarm.ack) alarmSignal(ctx, data.alarm, (a) => alarmText(ctx, a));
      break;
    }
    case 'alarm_cleared':
      ctx.live.alarms = ctx.live.alarms.filter((x) => !sameAlarm(x, data.alarm));
      break;
    case 'mode': ctx.live.mode = data.mode; ctx.live.mode_since = data.since; break;
    case 'power': ctx.live.power = data.power; break;
    case 'decision':
      if (ctx.view && ctx.view.decision) ctx.view.decision(ctx, data.decision);
      return;
    default: return;
  }
  ctx.live.seq = data.seq;
  changed();
}

// The site's names in the dashboard's language: each floor, room and door (and the site) keeps
// its English name and its Ukrainian one where the site file gives it; `name` is the one shown.
function localise(site) {
  if (!site) return;
  const uk = lang() === 'uk';
  for (const x of [site, ...site.floors, ...site.rooms, ...site.doors, ...(site.plans || [])]) {
    if (x.name_en === undefined) x.name_en = x.name;
    x.name = (uk && x.name_uk) || x.name_en;
  }
}

async function start(me) {
  ctx.me = me;
  setCsrf(me.csrf);
  $('login').hidden = true;
  $('top').hidden = false;
  ctx.site = await api('/api/v1/site');
  setClock(ctx.site.clock);
  localise(ctx.site);
  setZone(ctx.site.timezone);
  header();
  if (es) es.close();
  es = stream(onEvent, (up, closed) => {
    liveState(up);
    // The browser gives up on a stream that was refused (a session that ended): ask who we
    // are, which signs out on 401, or try again in a while.
    if (closed) {
      api('/api/v1/session').then(() => setTimeout(() => { if (ctx.me) start(ctx.me); }, 5000), (err) => ctx.error(err));
    }
  });
}

function signedOut() {
  if (es) { es.close(); es = null; }
  ctx.me = null; ctx.live = null; ctx.site = null; ctx.view = null;
  for (const [, view] of ROUTES) if (view.reset) view.reset();
  setCsrf('');
  $('top').hidden = true;
  $('alarm-bar').hidden = true;
  $('stale-bar').hidden = true;
  document.body.classList.remove('stale');
  lastUp = null;
  clear($('view'));
  $('login').hidden = false;
  $('login-name').focus();
}

function switchLang() {
  setLang(lang() === 'uk' ? 'en' : 'uk');
  // A message still showing was in the other language.
  clearTimeout(ctx.toastTimer);
  $('toast').classList.remove('show');
  $('toast').textContent = '';
  localise(ctx.site);
  texts();
  header();
  if (ctx.live) { liveState(!$('live').classList.contains('off')); render(); }
}

async function main() {
  setLang(lang());
  texts();
  $('lang').addEventListener('click', switchLang);
  $('login-lang').addEventListener('click', switchLang);
  $('logout').addEventListener('click', async () => {
    try { await api('/api/v1/session', { method: 'DELETE' }); } catch (_) { /* signed out anyway */ }
    signedOut();
  });
  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('login-error').textContent = '';
    $('login-submit').disabled = true;
    try {
      const me = await api('/api/v1/session', { method: 'POST', body: { name: $('login-name').value.trim(), password: $('login-password').value } });
      $('login-password').value = '';
      await start(me);
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) $('login-error').textContent = t('login.limited', { s: err.body.retry_after_s });
      else if (err instanceof ApiError && err.status === 401) $('login-error').textContent = t('login.failed');
      else $('login-error').textContent = err instanceof TypeError ? t('error.network') : t('error.generic', { why: err.message });
    } finally {
      $('login-submit').disabled = false;
    }
  });
  window.addEventListener('hashchange', () => { render(); $('main').focus({ preventScroll: true }); });
  try {
    await start(await api('/api/v1/session'));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) signedOut();
    else { signedOut(); $('login-error').textContent = t('error.network'); }
  }
}

main();
