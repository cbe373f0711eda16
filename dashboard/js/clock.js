// "Now" as the gateway has it: the site's answer carries its clock and the pace it runs at, and
// the pages read the time from here, not from the browser. In the demo the gateway runs the
// simulated building's day thirty times as fast: the charts, "x minutes ago" and "today" follow
// that day, not the visitor's. A browser whose own clock is wrong shows the gateway's time too.

let base = { at: Date.now(), now: Date.now(), rate: 1 };

export function setClock(c) {
  if (!c || typeof c.now_ms !== 'number') return;
  base = { at: Date.now(), now: c.now_ms, rate: c.rate > 0 ? c.rate : 1 };
}

// The gateway's time now, Unix milliseconds.
export function nowMs() { return base.now + (Date.now() - base.at) * base.rate; }

// The same, as a Date.
export function now() { return new Date(nowMs()); }
