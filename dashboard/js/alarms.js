// Alarms as work: each standing alarm with what kind it is (a door forced or tampered with is a
// security event, a door held open or a lock in the wrong state wants someone to go and look,
// a device or feed that is down is maintenance), since when, and who has taken it in hand. An
// operator acknowledges one with a note (who goes, what they found); the server logs it and
// every open dashboard shows it. A new alarm nobody has taken can sound and notify in this
// browser, if staff switch that on here (kept in this browser only).

import { api } from './api.js';
import { h } from './dom.js';
import { t } from './i18n.js';
import { fmtClock } from './clock.js';

const KEY = 'kombinat.alarm-signal';

// How urgent each kind is: 'bad' security, 'warn' someone should look, 'grey' maintenance.
export const SEVERITY = {
  forced: 'bad', tamper: 'bad',
  held_open: 'warn', lock_differs: 'warn', alert_feed_failing: 'warn',
  device_offline: 'grey', feed_failing: 'grey', disk_low: 'warn', clock_unsynchronised: 'warn',
  mains_lost: 'warn', battery_low: 'warn',
};

export function signalOn() {
  try { return localStorage.getItem(KEY) === 'on'; } catch (_) { return false; }
}

function setSignal(on) {
  try { localStorage.setItem(KEY, on ? 'on' : 'off'); } catch (_) { /* not kept */ }
}

let audio;
function beep() {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    const now = audio.currentTime;
    for (let i = 0; i < 3; i += 1) {
      const o = audio.createOscillator();
      const g = audio.createGain();
      o.frequency.value = 880;
      g.gain.setValueAtTime(0.0001, now + i * 0.3);
      g.gain.exponentialRampToValueAtTime(0.3, now + i * 0.3 + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.3 + 0.2);
      o.connect(g).connect(audio.destination);
      o.start(now + i * 0.3);
      o.stop(now + i * 0.3 + 0.22);
    }
  } catch (_) { /* no sound here */ }
}

// A new alarm came in: sound and notify, if switched on in this browser.
export function alarmSignal(ctx, a, text) {
  if (!signalOn()) return;
  beep();
  if ('Notification' in window && Notification.permission === 'granted') {
    try {
      // One notification per alarm: the same alarm again replaces it.
      const n = new Notification(t('alarms.notify', { site: ctx.site ? ctx.site.name : '' }), {
        body: text ? text(a) : t(`alarm.${a.alarm}`), tag: `${a.alarm}/${a.door || a.device || a.feed || ''}`,
      });
      n.onclick = () => { window.focus(); ctx.go('doors'); };
    } catch (_) { /* some browsers allow notifications from a service worker only */ }
  }
}

// The switch for this browser.
export function signalSwitch() {
  const box = h('input', { type: 'checkbox', id: 'alarm-signal', checked: signalOn() });
  box.addEventListener('change', async () => {
    setSignal(box.checked);
    if (box.checked) {
      beep();
      if ('Notification' in window && Notification.permission === 'default') {
        try { await Notification.requestPermission(); } catch (_) { /* sound only */ }
      }
    }
  });
  return h('label', { class: 'check' }, box, ' ', t('alarms.signal'));
}


// The list: security first, then the rest; within each, the oldest first.
export function alarmList(ctx, text, ago, canAct) {
  const rank = { bad: 0, warn: 1, grey: 2 };
  const alarms = [...ctx.live.alarms].sort((a, b) => (rank[SEVERITY[a.alarm] || 'warn'] - rank[SEVERITY[b.alarm] || 'warn']) || (a.since - b.since));
  if (!alarms.length) return h('p', { class: 'muted' }, t('alarms.none'));
  return h('ul', { id: 'alarm-list', class: 'alarms' }, alarms.map((a) => {
    const sev = SEVERITY[a.alarm] || 'warn';
    const taken = a.ack
      ? h('span', { class: 'ack' }, t('alarms.taken', { by: a.ack.by, time: fmtClock(a.ack.at) }),
        a.ack.note ? [' — ', h('q', {}, a.ack.note)] : null)
      : canAct ? h('button', {
        type: 'button', class: 'action ack-button',
        'aria-label': t('alarms.ack.aria', { what: text(a) }),
        onclick: async (e) => {
          const note = window.prompt(t('alarms.ack.note', { what: text(a) }), '');
          if (note === null) return;
          if (note.length > 200) { ctx.toast(t('alarms.ack.long')); return; }
          e.target.disabled = true;
          try {
            await api('/api/v1/alarms/ack', { method: 'POST', body: { alarm: a.alarm, door: a.door, device: a.device, feed: a.feed, note } });
            ctx.toast(t('alarms.ack.done'));
          } catch (err) {
            e.target.disabled = false;
            ctx.error(err);
          }
        },
      }, t('alarms.ack')) : h('span', { class: 'muted' }, t('alarms.untaken'));
    return h('li', { class: `alarm ${sev}${a.ack ? ' taken' : ''}`, 'data-alarm': a.alarm, 'data-door': a.door || undefined },
      h('span', { class: `pill ${sev}` }, t(`severity.${sev}`)), ' ',
      h('strong', {}, text(a)), ' ',
      h('span', { class: 'muted' }, t('alarms.since', { t: ago(a.since) })), ' ',
      taken);
  }));
}
