// signpost status page: follows /ui/state (a blocking query) and redraws what changed, and
// filters by name and tag as you type. Data only ever reaches the page through textContent and
// setAttribute, never parsed as markup. The markup mirrors src/api/ui/html.rs.
(function () {
  'use strict';

  var WAIT = '30s';
  var conn = document.getElementById('conn');
  var q = document.getElementById('q');
  var form = document.getElementById('filter');
  var page = null;

  // ---- helpers ---------------------------------------------------------------------------

  // el('td', {'data-label': 'Status'}, child, 'text', ...): children are nodes or text.
  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === 'class') e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  // The same format as the server: 2025-06-01 12:34:56 UTC.
  function fmtTime(ms) {
    if (!ms) return 'never';
    var d = new Date(ms);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds()) + ' UTC';
  }

  function status(s) { return el('span', { 'class': 'st st-' + s }, s); }

  function tags(list) {
    var f = document.createDocumentFragment();
    list.forEach(function (t, i) {
      if (i > 0) f.appendChild(document.createTextNode(' '));
      f.appendChild(el('span', { 'class': 'tag' }, t));
    });
    return f;
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  // ---- rendering -------------------------------------------------------------------------

  function banner(z) {
    var s = el('section', { id: 'zones', 'class': z.errors.length ? 'banner bad' : 'banner ok', 'aria-labelledby': 'zones-h' },
      el('h2', { id: 'zones-h' }, 'Zone files'));
    var p = el('p', null, 'Last reload: ', el('span', { 'class': 'reloaded' }, fmtTime(z.reloaded_ms)), '.');
    s.appendChild(p);
    if (!z.errors.length) {
      p.appendChild(document.createTextNode(' No errors.'));
      return s;
    }
    var n = z.errors.length;
    p.appendChild(document.createTextNode(' '));
    p.appendChild(el('strong', null, n + ' error' + (n === 1 ? '' : 's')));
    p.appendChild(document.createTextNode(': the last good version of each file keeps serving.'));
    var ul = el('ul', { 'class': 'errors' });
    z.errors.forEach(function (e) {
      ul.appendChild(el('li', null, el('code', null, e.file + ':' + e.line + ':' + e.col), ': ' + e.message));
    });
    s.appendChild(ul);
    return s;
  }

  function summaryRow(s) {
    var c = s.counts;
    return el('tr', { 'data-service': s.name },
      el('th', { scope: 'row', 'data-label': 'Service' }, el('a', { href: '#svc-' + s.name }, s.name)),
      el('td', { 'data-label': 'Instances' }, c.total),
      el('td', { 'data-label': 'Passing' }, c.passing),
      el('td', { 'data-label': 'Warning' }, c.warning),
      el('td', { 'data-label': 'Critical' }, c.critical),
      el('td', { 'data-label': 'Maintenance' }, c.maintenance),
      el('td', { 'data-label': 'Tags' }, tags(s.tags)));
  }

  function dig(a, name, domain) {
    var qname = a ? a.name : name + '.service.' + domain;
    var dl = el('dl');
    [['A', a ? a.a : []], ['AAAA', a ? a.aaaa : []], ['SRV', a ? a.srv : []]].forEach(function (kr) {
      dl.appendChild(el('dt', null, el('code', null, 'dig ' + qname + ' ' + kr[0])));
      var dd = el('dd', { 'data-kind': kr[0] });
      if (!kr[1].length) {
        dd.appendChild(el('span', { 'class': 'none' }, 'no healthy instance (NODATA)'));
      } else {
        var ol = el('ol');
        kr[1].forEach(function (r) { ol.appendChild(el('li', null, el('code', null, r))); });
        dd.appendChild(ol);
      }
      dl.appendChild(dd);
    });
    return el('div', { 'class': 'dig' }, el('h3', null, 'What DNS answers now'), dl);
  }

  function check(c) {
    var li = el('li', { 'data-check': c.id }, status(c.status), ' ', el('span', { 'class': 'check-name' }, c.name), ' ',
      el('code', { 'class': 'target' }, c.kind + ' ' + c.target));
    if (c.output) li.appendChild(el('pre', { 'class': 'output' }, c.output));
    li.appendChild(el('div', { 'class': 'since' }, 'since ' + fmtTime(c.changed_ms)));
    return li;
  }

  function instance(i) {
    var head = el('th', { scope: 'row', 'data-label': 'Instance' }, i.id);
    var metaKeys = Object.keys(i.meta);
    if (metaKeys.length) {
      var meta = el('ul', { 'class': 'meta', 'aria-label': 'Metadata' });
      metaKeys.forEach(function (k) { meta.appendChild(el('li', null, el('code', null, k + '=' + i.meta[k]))); });
      head.appendChild(meta);
    }
    var st = el('td', { 'data-label': 'Status' }, status(i.status));
    if (i.maintenance !== null) st.appendChild(el('div', { 'class': 'reason' }, i.maintenance));
    var source = i.file === null ? el('td', { 'data-label': 'Source' }, 'API')
      : el('td', { 'data-label': 'Source' }, 'zone file ', el('code', null, i.file));
    var checks = el('td', { 'data-label': 'Checks' });
    if (!i.checks.length) {
      checks.appendChild(el('span', { 'class': 'none' }, 'no checks (passing)'));
    } else {
      var ul = el('ul', { 'class': 'checks' });
      i.checks.forEach(function (c) { ul.appendChild(check(c)); });
      checks.appendChild(ul);
    }
    return el('tr', { 'data-id': i.id }, head, st,
      el('td', { 'data-label': 'Address' }, el('code', null, i.address + ':' + i.port)),
      el('td', { 'data-label': 'Region' }, i.region === null ? '\u2014' : i.region),
      el('td', { 'data-label': 'Tags' }, tags(i.tags)),
      el('td', { 'data-label': 'Weight' }, i.weight),
      source, checks);
  }

  function service(s, answers, domain) {
    var tbody = el('tbody');
    s.instances.forEach(function (i) { tbody.appendChild(instance(i)); });
    var headRow = el('tr');
    ['Instance', 'Status', 'Address', 'Region', 'Tags', 'Weight', 'Source', 'Checks'].forEach(function (h) {
      headRow.appendChild(el('th', { scope: 'col' }, h));
    });
    return el('section', { 'class': 'service', id: 'svc-' + s.name, 'data-service': s.name, 'aria-labelledby': 'svc-' + s.name + '-h' },
      el('h2', { id: 'svc-' + s.name + '-h' }, s.name),
      s.dns_sd ? el('p', { 'class': 'dns-sd' }, 'DNS-SD service type ', el('code', null, s.dns_sd)) : null,
      dig(answers, s.name, domain),
      el('div', { 'class': 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Instances of ' + s.name }, el('table', { 'class': 'instances' },
        el('caption', null, 'Instances of ' + s.name), el('thead', null, headRow), tbody)));
  }

  // Puts keyboard focus back where it was after a redraw replaced the focused element.
  function focusKey() {
    var a = document.activeElement;
    if (!a || a === document.body || a === q) return null;
    return a.getAttribute('href') || (a.id ? '#' + a.id : null);
  }

  function refocus(key) {
    if (!key) return;
    var target = document.querySelector('a[href="' + CSS.escape(key) + '"]') || document.getElementById(key.slice(1));
    if (target) target.focus();
  }

  function render(next) {
    var full = !page || next.hash !== page.hash;
    var key = focusKey();
    var container = document.getElementById('services');
    if (full) {
      document.getElementById('zones').replaceWith(banner(next.zones));
      var tbody = document.querySelector('#summary tbody');
      tbody.replaceChildren.apply(tbody, next.services.map(summaryRow));
      container.replaceChildren.apply(container, next.services.map(function (s) {
        return service(s, next.answers[s.name], next.domain);
      }));
    } else {
      // Only the rotation moved: redraw the DNS answers alone.
      next.services.forEach(function (s) {
        var sec = container.querySelector('section[data-service="' + CSS.escape(s.name) + '"]');
        var old = sec && sec.querySelector('.dig');
        if (old) old.replaceWith(dig(next.answers[s.name], s.name, next.domain));
      });
    }
    page = next;
    document.body.setAttribute('data-index', next.index);
    document.body.setAttribute('data-hash', next.hash);
    document.getElementById('index').textContent = String(next.index);
    applyFilter();
    refocus(key);
  }

  // ---- filtering (the same rule as html::matches) ------------------------------------------

  function matches(name, tagList, terms) {
    name = name.toLowerCase();
    var lower = tagList.map(function (t) { return t.toLowerCase(); });
    return terms.every(function (t) {
      return name.indexOf(t) >= 0 || lower.some(function (g) { return g.indexOf(t) >= 0; });
    });
  }

  function applyFilter() {
    if (!page) return;
    var terms = q.value.toLowerCase().split(/\s+/).filter(Boolean);
    var byName = {};
    page.services.forEach(function (s) { byName[s.name] = s; });
    var shown = 0;
    document.querySelectorAll('#summary tbody tr, #services section.service').forEach(function (e) {
      var s = byName[e.getAttribute('data-service')];
      var ok = !!s && matches(s.name, s.tags, terms);
      e.hidden = !ok;
      if (ok && e.tagName === 'TR') shown++;
    });
    var tbody = document.querySelector('#summary tbody');
    var empty = tbody.querySelector('tr.empty');
    if (shown === 0) {
      if (!empty) tbody.appendChild(empty = el('tr', { 'class': 'empty' }, el('td', { colspan: '7' }, '')));
      empty.firstChild.textContent = page.services.length ? 'No service matches the filter.' : 'No services.';
    } else if (empty) {
      empty.remove();
    }
    document.querySelector('#summary-h .count').textContent = '(' + shown + ' of ' + page.services.length + ')';
  }

  q.addEventListener('input', function () {
    applyFilter();
    var url = new URL(window.location.href);
    if (q.value) url.searchParams.set('q', q.value); else url.searchParams.delete('q');
    history.replaceState(null, '', url);
  });
  form.addEventListener('submit', function (e) { e.preventDefault(); applyFilter(); });

  // ---- following the server --------------------------------------------------------------

  function setConn(ok, text) {
    conn.classList.toggle('down', !ok);
    conn.textContent = text;
  }

  async function follow() {
    var failures = 0;
    var downSince = 0;
    for (;;) {
      var url = '/ui/state';
      if (page) url += '?index=' + page.index + '&hash=' + encodeURIComponent(page.hash) + '&wait=' + WAIT;
      var ctl = new AbortController();
      var timer = setTimeout(function () { ctl.abort(); }, 45000);
      var asked = Date.now();
      try {
        var r = await fetch(url, { cache: 'no-store', credentials: 'same-origin', headers: { Accept: 'application/json' }, signal: ctl.signal });
        if (r.status === 403) {
          setConn(false, 'Not authorised: reads need the token. Reload the page to sign in.');
          await sleep(5000);
          continue;
        }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        var next = await r.json();
        var unchanged = page && next.hash === page.hash;
        render(next);
        failures = 0;
        downSince = 0;
        setConn(true, 'Live: updated ' + fmtTime(page.generated_ms));
        // A server shutting down answers at once; do not spin while it drains.
        if (unchanged && Date.now() - asked < 1000) await sleep(1000);
      } catch (e) {
        failures++;
        if (!downSince) downSince = Date.now();
        setConn(false, 'Server unreachable since ' + fmtTime(downSince) + '; retrying. Showing the last state seen.');
        await sleep(Math.min(5000, 500 * failures));
      } finally {
        clearTimeout(timer);
      }
    }
  }

  follow();
})();
