//! The status page as server-rendered HTML: the first paint, and the whole page for browsers
//! without JavaScript. Every piece of registry data goes through `E`, which escapes it; the
//! markup mirrors what `ui.js` builds from `/ui/state`, so a live update looks like a reload.

use std::fmt::{self, Display, Write as _};

use super::model::{Answers, Check, Instance, Page, Service};

/// Text escaped for HTML element content and double-quoted attribute values.
pub struct E<'a>(pub &'a str);

impl Display for E<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// `2025-06-01 12:34:56 UTC`, the format `ui.js` uses too; "never" for 0.
pub fn time(ms: u64) -> String {
    if ms == 0 {
        return "never".into();
    }
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Returns true if the service matches every whitespace-separated term of `filter`: each term
/// is part of its name or of one of its tags (case-insensitively). `ui.js` applies the same rule.
pub fn matches(service: &Service, filter: &str) -> bool {
    let name = service.name.to_lowercase();
    let tags: Vec<String> = service.tags.iter().map(|t| t.to_lowercase()).collect();
    filter.split_whitespace().map(str::to_lowercase).all(|t| name.contains(&t) || tags.iter().any(|g| g.contains(&t)))
}

/// The whole page. `filter` is the `?q=` search, applied here for browsers without JavaScript.
pub fn page(p: &Page, filter: &str) -> String {
    let mut o = String::with_capacity(16 * 1024);
    let _ = write!(
        o,
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>signpost status</title>
<link rel="stylesheet" href="/ui/assets/ui.css">
</head>
<body data-index="{index}" data-hash="{hash}">
<a class="skip" href="#services">Skip to services</a>
<header>
<h1>signpost <span class="sub">status</span></h1>
<p id="conn" class="conn" role="status" aria-live="polite">Updated {generated}</p>
</header>
<main>
"##,
        index = p.index,
        hash = E(&p.hash),
        generated = E(&time(p.generated_ms)),
    );
    banner(&mut o, p);
    let _ = write!(
        o,
        r##"<form id="filter" class="filter" role="search" action="/ui" method="get">
<label for="q">Filter by service name or tag</label>
<input id="q" name="q" type="search" value="{q}" autocomplete="off" spellcheck="false" placeholder="e.g. payment v2">
<button type="submit">Filter</button>
</form>
"##,
        q = E(filter)
    );
    let shown: Vec<&Service> = p.services.iter().filter(|s| matches(s, filter)).collect();
    summary(&mut o, &shown, p.services.len());
    o.push_str("<div id=\"services\">\n");
    for s in &shown {
        service(&mut o, s, p.answers.get(&s.name), &p.domain);
    }
    o.push_str("</div>\n</main>\n");
    let _ = write!(
        o,
        r##"<footer><p>Read-only view of the registry at index <span id="index">{}</span>. DNS answers are shown for a client whose region is unknown, in the order the next query gets, without moving the rotation.</p></footer>
<script src="/ui/assets/ui.js"></script>
</body>
</html>
"##,
        p.index
    );
    o
}

fn banner(o: &mut String, p: &Page) {
    let z = &p.zones;
    let class = if z.errors.is_empty() { "banner ok" } else { "banner bad" };
    let _ = write!(
        o,
        "<section id=\"zones\" class=\"{class}\" aria-labelledby=\"zones-h\">\n<h2 id=\"zones-h\">Zone files</h2>\n"
    );
    let _ = writeln!(o, "<p>Last reload: <span class=\"reloaded\">{}</span>.", E(&time(z.reloaded_ms)));
    if z.errors.is_empty() {
        o.push_str(" No errors.</p>\n");
    } else {
        let n = z.errors.len();
        let _ = writeln!(
            o,
            " <strong>{n} error{}</strong>: the last good version of each file keeps serving.</p>\n<ul class=\"errors\">",
            if n == 1 { "" } else { "s" }
        );
        for e in &z.errors {
            let _ = writeln!(o, "<li><code>{}:{}:{}</code>: {}</li>", E(&e.file), e.line, e.col, E(&e.message));
        }
        o.push_str("</ul>\n");
    }
    o.push_str("</section>\n");
}

fn summary(o: &mut String, shown: &[&Service], total: usize) {
    let _ = write!(
        o,
        r##"<section id="summary" aria-labelledby="summary-h">
<h2 id="summary-h">Services <span class="count">({} of {total})</span></h2>
<div class="scroll" tabindex="0" role="region" aria-label="Services table"><table class="summary">
<thead><tr><th scope="col">Service</th><th scope="col">Instances</th><th scope="col">Passing</th><th scope="col">Warning</th><th scope="col">Critical</th><th scope="col">Maintenance</th><th scope="col">Tags</th></tr></thead>
<tbody>
"##,
        shown.len()
    );
    if shown.is_empty() {
        o.push_str("<tr><td colspan=\"7\">No services.</td></tr>\n");
    }
    for s in shown {
        let c = &s.counts;
        let _ = writeln!(
            o,
            "<tr data-service=\"{n}\"><th scope=\"row\" data-label=\"Service\"><a href=\"#svc-{n}\">{n}</a></th><td data-label=\"Instances\">{}</td><td data-label=\"Passing\">{}</td><td data-label=\"Warning\">{}</td><td data-label=\"Critical\">{}</td><td data-label=\"Maintenance\">{}</td><td data-label=\"Tags\">{}</td></tr>",
            c.total,
            c.passing,
            c.warning,
            c.critical,
            c.maintenance,
            tags(&s.tags),
            n = E(&s.name),
        );
    }
    o.push_str("</tbody></table></div>\n</section>\n");
}

fn tags(tags: &[String]) -> String {
    tags.iter().map(|t| format!("<span class=\"tag\">{}</span>", E(t))).collect::<Vec<_>>().join(" ")
}

fn status(s: &str) -> String {
    format!("<span class=\"st st-{s}\">{s}</span>", s = E(s))
}

fn service(o: &mut String, s: &Service, answers: Option<&Answers>, domain: &str) {
    let _ = write!(
        o,
        "<section class=\"service\" id=\"svc-{n}\" data-service=\"{n}\" aria-labelledby=\"svc-{n}-h\">\n<h2 id=\"svc-{n}-h\">{n}</h2>\n",
        n = E(&s.name)
    );
    if let Some(t) = &s.dns_sd {
        let _ = writeln!(o, "<p class=\"dns-sd\">DNS-SD service type <code>{}</code></p>", E(t));
    }
    dig(o, answers, &s.name, domain);
    let _ = write!(
        o,
        r##"<div class="scroll" tabindex="0" role="region" aria-label="Instances of {n}"><table class="instances">
<caption>Instances of {n}</caption>
<thead><tr><th scope="col">Instance</th><th scope="col">Status</th><th scope="col">Address</th><th scope="col">Region</th><th scope="col">Tags</th><th scope="col">Weight</th><th scope="col">Source</th><th scope="col">Checks</th></tr></thead>
<tbody>
"##,
        n = E(&s.name)
    );
    for i in &s.instances {
        instance(o, i);
    }
    o.push_str("</tbody></table></div>\n</section>\n");
}

fn dig(o: &mut String, a: Option<&Answers>, name: &str, domain: &str) {
    let qname = a.map_or_else(|| format!("{name}.service.{domain}"), |a| a.name.clone());
    let _ = write!(o, "<div class=\"dig\">\n<h3>What DNS answers now</h3>\n<dl>\n");
    let none = "no healthy instance (NODATA)";
    let empty = Vec::new();
    for (kind, records) in [
        ("A", a.map_or(&empty, |a| &a.a)),
        ("AAAA", a.map_or(&empty, |a| &a.aaaa)),
        ("SRV", a.map_or(&empty, |a| &a.srv)),
    ] {
        let _ = write!(o, "<dt><code>dig {} {kind}</code></dt><dd data-kind=\"{kind}\">", E(&qname));
        if records.is_empty() {
            let _ = write!(o, "<span class=\"none\">{none}</span>");
        } else {
            o.push_str("<ol>");
            for r in records {
                let _ = write!(o, "<li><code>{}</code></li>", E(r));
            }
            o.push_str("</ol>");
        }
        o.push_str("</dd>\n");
    }
    o.push_str("</dl>\n</div>\n");
}

fn instance(o: &mut String, i: &Instance) {
    let _ = write!(o, "<tr data-id=\"{id}\"><th scope=\"row\" data-label=\"Instance\">{id}", id = E(&i.id));
    if !i.meta.is_empty() {
        o.push_str("<ul class=\"meta\" aria-label=\"Metadata\">");
        for (k, v) in &i.meta {
            let _ = write!(o, "<li><code>{}={}</code></li>", E(k), E(v));
        }
        o.push_str("</ul>");
    }
    o.push_str("</th>");
    let _ = write!(o, "<td data-label=\"Status\">{}", status(i.status));
    if let Some(reason) = &i.maintenance {
        let _ = write!(o, "<div class=\"reason\">{}</div>", E(reason));
    }
    let _ = write!(
        o,
        "</td><td data-label=\"Address\"><code>{}:{}</code></td><td data-label=\"Region\">{}</td><td data-label=\"Tags\">{}</td><td data-label=\"Weight\">{}</td><td data-label=\"Source\">{}</td><td data-label=\"Checks\">",
        E(&i.address),
        i.port,
        E(i.region.as_deref().unwrap_or("—")),
        tags(&i.tags),
        i.weight,
        match &i.file {
            Some(f) => format!("zone file <code>{}</code>", E(f)),
            None => "API".into(),
        },
    );
    if i.checks.is_empty() {
        o.push_str("<span class=\"none\">no checks (passing)</span>");
    } else {
        o.push_str("<ul class=\"checks\">");
        for c in &i.checks {
            check(o, c);
        }
        o.push_str("</ul>");
    }
    o.push_str("</td></tr>\n");
}

fn check(o: &mut String, c: &Check) {
    let _ = write!(
        o,
        "<li data-check=\"{}\">{} <span class=\"check-name\">{}</span> <code class=\"target\">{} {}</code>",
        E(&c.id),
        status(c.status),
        E(&c.name),
        E(c.kind),
        E(&c.target),
    );
    if !c.output.is_empty() {
        let _ = write!(o, "<pre class=\"output\">{}</pre>", E(&c.output));
    }
    let _ = write!(o, "<div class=\"since\">since {}</div></li>", E(&time(c.changed_ms)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            E("<script>alert('x')</script> & \"q\"").to_string(),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(E("plain").to_string(), "plain");
    }

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(time(0), "never");
        assert_eq!(time(1_000), "1970-01-01 00:00:01 UTC");
        assert_eq!(time(951_825_600_000), "2000-02-29 12:00:00 UTC");
        assert_eq!(time(1_767_225_599_000), "2025-12-31 23:59:59 UTC");
    }
}
