// Building elements without HTML strings: every text goes in as a text node, so a name or a
// reason from the log can never become markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// Makes a table's columns sortable by their headers (a button in each, `aria-sort` on the
// column sorted): numbers by value, other text in the page's language's order. Returns it.
export function sortable(table, lang) {
  const heads = [...table.querySelectorAll('thead th')];
  heads.forEach((th, i) => {
    const label = [...th.childNodes];
    const button = h('button', { type: 'button', class: 'sort' }, label);
    th.append(button);
    button.addEventListener('click', () => {
      const down = th.getAttribute('aria-sort') === 'ascending';
      heads.forEach((x) => x.removeAttribute('aria-sort'));
      th.setAttribute('aria-sort', down ? 'descending' : 'ascending');
      const body = table.tBodies[0];
      const key = (tr) => (tr.cells[i] ? tr.cells[i].textContent.trim() : '');
      const rows = [...body.rows].sort((a, b) => {
        const [x, y] = [key(a), key(b)];
        const [nx, ny] = [parseFloat(x), parseFloat(y)];
        const c = !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : x.localeCompare(y, lang);
        return down ? -c : c;
      });
      body.append(...rows);
    });
  });
  return table;
}

function csvCell(v) {
  const text = String(v ?? '');
  // A cell a spreadsheet would take for a formula is kept as text.
  const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return /[",\r\n;]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

// Saves `rows` (arrays of cells, the first the heading) as a CSV file the browser downloads:
// UTF-8 with a byte-order mark, so a spreadsheet opens Ukrainian text as it is.
export function downloadCsv(name, rows) {
  const text = `\ufeff${rows.map((r) => r.map(csvCell).join(',')).join('\r\n')}\r\n`;
  const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' })), download: name });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}
