// "Now" as the gateway has it: the site's answer carries its clock and the pace it runs at, and
// the pages read the time from here, not from the browser. In the demo the gateway runs the
// simulated building's day thirty times as fast: the charts, "x minutes ago" and "today" follow
// that day, not the visitor's. A browser whose own clock is wrong shows the gateway's time too.

import { locale } from './i18n.js';

let base = { at: Date.now(), now: Date.now(), rate: 1 };
// The site's time zone (Europe/Kyiv): times are shown on the site's clock, wherever the browser is.
let zone;

export function setZone(tz) { zone = tz; }

// A moment (ISO text, a Date, or Unix ms) as date and time on the site's clock.
export const fmtTime = (when) => new Date(when).toLocaleString(locale(), { dateStyle: 'short', timeStyle: 'medium', timeZone: zone });

// Unix seconds as hours and minutes on the site's clock.
export const fmtClock = (secs) => new Date(secs * 1000).toLocaleTimeString(locale(), { hour: '2-digit', minute: '2-digit', timeZone: zone });

export function setClock(c) {
  if (!c || typeof c.now_ms !== 'number') return;
  base = { at: Date.now(), now: c.now_ms, rate: c.rate > 0 ? c.rate : 1 };
}

// The gateway's time now, Unix milliseconds.
export function nowMs() { return base.now + (Date.now() - base.at) * base.rate; }

// The same, as a Date.
export function now() { return new Date(nowMs()); }
