//! `?filter=`: Consul's filter expressions on list reads, evaluated against each entry as the API
//! renders it (its JSON), so that a selector is the field name a client sees.
//!
//! ```text
//! Expression = Or
//! Or         = And ("or" And)*
//! And        = Not ("and" Not)*
//! Not        = "not" Not | "(" Or ")" | Match
//! Match      = Selector ("==" | "!=") Value
//!            | Selector ("is empty" | "is not empty")
//!            | Selector ["not"] ("contains" | "matches") Value
//!            | Value ["not"] "in" Selector
//! Selector   = Name ("." Name | "[" Quoted "]")*       e.g. Service.Tags, ServiceMeta["build id"]
//! Value      = Quoted ("..." or `...`) | a bare word or number
//! ```
//!
//! A selector that passes through a list (`Checks.Status`) stands for each element's field: `==`,
//! `contains` and `matches` hold if any element's value does, and their negations if none does.
//! On a string, `contains` and `in` are substring tests; on a list, membership; on an object, a
//! key's presence. A selector naming a field the entries do not have is an error naming it,
//! except below the fields that are free-form maps (`ServiceMeta.version`): there an absent key
//! is simply absent. Keywords are case-insensitive, as in Consul.

use regex::Regex;
use serde_json::Value;

/// Fields whose keys are the client's own (metadata): any key below them may be absent.
const MAPS: &[&str] = &["ServiceMeta", "NodeMeta", "Meta", "TaggedAddresses", "ServiceTaggedAddresses"];

/// A parsed filter expression.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Expr,
}

/// A filter that cannot be used, with the byte offset of where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter: {message} at position {position}")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

#[derive(Debug, Clone)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match { selector: Selector, op: Op, negated: bool },
}

#[derive(Debug, Clone)]
struct Selector {
    path: Vec<String>,
    /// Where it starts in the expression, for errors found when evaluating.
    at: usize,
}

#[derive(Debug, Clone)]
enum Op {
    Equal(String),
    IsEmpty,
    Contains(String),
    Matches(Regex),
}

impl Filter {
    /// Parses a filter expression.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let mut p = Parser { tokens: tokenize(text)?, at: 0, end: text.len() };
        let root = p.or()?;
        if let Some(t) = p.tokens.get(p.at) {
            return Err(FilterError { position: t.at, message: format!("unexpected {}", t.kind.describe()) });
        }
        Ok(Filter { root })
    }

    /// Returns true if `entry` (an entry of the response, as JSON) passes.
    pub fn matches(&self, entry: &Value) -> Result<bool, FilterError> {
        eval(&self.root, entry)
    }

    /// The items that pass, in their order, each judged by the JSON `entry` makes of it; every
    /// item passes when there is no filter.
    pub fn keep<T>(
        filter: Option<&Filter>,
        items: impl IntoIterator<Item = T>,
        entry: impl Fn(&T) -> Value,
    ) -> Result<Vec<T>, FilterError> {
        let mut kept = Vec::new();
        for item in items {
            if filter.map_or(Ok(true), |f| f.matches(&entry(&item)))? {
                kept.push(item);
            }
        }
        Ok(kept)
    }
}

fn eval(e: &Expr, entry: &Value) -> Result<bool, FilterError> {
    Ok(match e {
        Expr::Or(a, b) => eval(a, entry)? || eval(b, entry)?,
        Expr::And(a, b) => eval(a, entry)? && eval(b, entry)?,
        Expr::Not(a) => !eval(a, entry)?,
        Expr::Match { selector, op, negated } => {
            let values = select(selector, entry)?;
            let hit = match op {
                Op::Equal(v) => values.iter().any(|x| text(x).is_some_and(|t| t == *v)),
                Op::IsEmpty => values.iter().all(|x| is_empty(x)),
                Op::Contains(v) => values.iter().any(|x| contains(x, v)),
                Op::Matches(re) => values.iter().any(|x| text(x).is_some_and(|t| re.is_match(&t))),
            };
            hit != *negated
        }
    })
}

/// The values a selector reaches in `entry` (several through lists, none for an absent map key).
fn select<'a>(selector: &Selector, entry: &'a Value) -> Result<Vec<&'a Value>, FilterError> {
    let mut current = vec![entry];
    let mut free = false;
    for name in &selector.path {
        let mut next = Vec::new();
        for v in current {
            let items: Vec<&Value> = match v {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for item in items {
                match item.as_object().and_then(|o| o.get(name)) {
                    Some(found) => next.push(found),
                    None if free || !item.is_object() => {}
                    None => {
                        return Err(FilterError {
                            position: selector.at,
                            message: format!(
                                "no field {:?} in the entries (selector {})",
                                name,
                                selector.path.join(".")
                            ),
                        });
                    }
                }
            }
        }
        free = free || MAPS.contains(&name.as_str());
        current = next;
    }
    Ok(current)
}

/// A scalar's text, as the expression's values are written.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn contains(v: &Value, wanted: &str) -> bool {
    match v {
        Value::String(s) => s.contains(wanted),
        Value::Array(a) => a.iter().any(|x| text(x).is_some_and(|t| t == wanted)),
        Value::Object(o) => o.contains_key(wanted),
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Word(String),
    Quoted(String),
    Op(&'static str),
    Open,
    Close,
    Dot,
    OpenBracket,
    CloseBracket,
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::Word(w) => format!("{w:?}"),
            Kind::Quoted(q) => format!("the string {q:?}"),
            Kind::Op(o) => format!("{o:?}"),
            Kind::Open => "\"(\"".into(),
            Kind::Close => "\")\"".into(),
            Kind::Dot => "\".\"".into(),
            Kind::OpenBracket => "\"[\"".into(),
            Kind::CloseBracket => "\"]\"".into(),
        }
    }

    fn is_keyword(&self, k: &str) -> bool {
        matches!(self, Kind::Word(w) if w.eq_ignore_ascii_case(k))
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    at: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let at = i;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => Kind::Open,
            b')' => Kind::Close,
            b'.' => Kind::Dot,
            b'[' => Kind::OpenBracket,
            b']' => Kind::CloseBracket,
            b'=' | b'!' if bytes.get(i + 1) == Some(&b'=') => {
                i += 1;
                Kind::Op(if c == b'=' { "==" } else { "!=" })
            }
            b'"' | b'`' => {
                let (value, next) = quoted(text, i)?;
                i = next;
                out.push(Token { kind: Kind::Quoted(value), at });
                continue;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'/' || c == b':' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'/' | b':'))
                {
                    i += 1;
                }
                out.push(Token { kind: Kind::Word(text[start..i].to_string()), at });
                continue;
            }
            _ => {
                let shown = text[i..].chars().next().unwrap_or('?');
                return Err(FilterError { position: i, message: format!("unexpected character {shown:?}") });
            }
        };
        i += 1;
        out.push(Token { kind, at });
    }
    Ok(out)
}

/// A string in double quotes (with `\"` and `\\` escapes) or backticks (raw); returns it and
/// the position after its closing quote.
fn quoted(text: &str, start: usize) -> Result<(String, usize), FilterError> {
    let quote = text.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((out, start + 1 + off + 1)),
            '\\' if quote == '"' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(FilterError { position: start, message: "a string that is never closed".into() })
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// The expression's length: where "the end" is.
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn here(&self) -> usize {
        self.peek().map_or(self.end, |t| t.at)
    }

    fn expected(&self, what: &str) -> FilterError {
        let found = self.peek().map_or("the end".to_string(), |t| t.kind.describe());
        FilterError { position: self.here(), message: format!("expected {what}, found {found}") }
    }

    fn keyword(&mut self, k: &str) -> bool {
        if self.peek().is_some_and(|t| t.kind.is_keyword(k)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.not()?;
        while self.keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        if self.peek().is_some_and(|t| t.kind == Kind::Open) {
            self.at += 1;
            let inner = self.or()?;
            if !self.peek().is_some_and(|t| t.kind == Kind::Close) {
                return Err(self.expected("\")\""));
            }
            self.at += 1;
            return Ok(inner);
        }
        self.matching()
    }

    /// A match: selector first, or a value first (`"v" in Selector`).
    fn matching(&mut self) -> Result<Expr, FilterError> {
        let start = self.at;
        if let Some(Kind::Quoted(value)) = self.peek().map(|t| t.kind.clone()) {
            self.at += 1;
            return self.value_in(value);
        }
        // A bare word followed by `in` / `not in` is a value too (`web in Service.Tags`).
        if let (Some(Kind::Word(w)), Some(next)) = (self.peek().map(|t| t.kind.clone()), self.tokens.get(self.at + 1))
            && (next.kind.is_keyword("in") || next.kind.is_keyword("not"))
        {
            let after = self.tokens.get(self.at + 2);
            if next.kind.is_keyword("in") || after.is_some_and(|t| t.kind.is_keyword("in")) {
                self.at += 1;
                return self.value_in(w);
            }
        }
        self.at = start;
        let selector = self.selector()?;
        if self.keyword("is") {
            let negated = self.keyword("not");
            if !self.keyword("empty") {
                return Err(self.expected("\"empty\""));
            }
            return Ok(Expr::Match { selector, op: Op::IsEmpty, negated });
        }
        let negated = self.keyword("not");
        let op_at = self.here();
        let kind = self.peek().map(|t| t.kind.clone());
        self.at += 1;
        let op = match kind {
            Some(Kind::Op(o)) if !negated => {
                let value = self.value()?;
                return Ok(Expr::Match { selector, op: Op::Equal(value), negated: o == "!=" });
            }
            Some(k) if k.is_keyword("contains") => Op::Contains(self.value()?),
            Some(k) if k.is_keyword("matches") => {
                let pattern_at = self.here();
                let pattern = self.value()?;
                let re = Regex::new(&pattern).map_err(|e| FilterError {
                    position: pattern_at,
                    message: format!("not a regular expression: {}", e.to_string().lines().last().unwrap_or_default()),
                })?;
                Op::Matches(re)
            }
            _ => {
                self.at -= 1;
                let what = if negated {
                    "\"contains\", \"matches\" or \"in\""
                } else {
                    "\"==\", \"!=\", \"is empty\", \"contains\" or \"matches\""
                };
                return Err(FilterError { position: op_at, message: self.expected(what).message });
            }
        };
        Ok(Expr::Match { selector, op, negated })
    }

    /// `value [not] in Selector`, the value read.
    fn value_in(&mut self, value: String) -> Result<Expr, FilterError> {
        let negated = self.keyword("not");
        if !self.keyword("in") {
            return Err(self.expected("\"in\""));
        }
        let selector = self.selector()?;
        Ok(Expr::Match { selector, op: Op::Contains(value), negated })
    }

    fn selector(&mut self) -> Result<Selector, FilterError> {
        let at = self.here();
        let mut path = Vec::new();
        match self.peek().map(|t| t.kind.clone()) {
            Some(Kind::Word(w)) if !["and", "or", "not", "in", "is"].iter().any(|k| w.eq_ignore_ascii_case(k)) => {
                self.at += 1;
                path.push(w);
            }
            _ => return Err(self.expected("a selector such as Service.Tags")),
        }
        loop {
            match self.peek().map(|t| t.kind.clone()) {
                Some(Kind::Dot) => {
                    self.at += 1;
                    match self.peek().map(|t| t.kind.clone()) {
                        Some(Kind::Word(w)) => {
                            self.at += 1;
                            path.push(w);
                        }
                        _ => return Err(self.expected("a field name after \".\"")),
                    }
                }
                Some(Kind::OpenBracket) => {
                    self.at += 1;
                    match self.peek().map(|t| t.kind.clone()) {
                        Some(Kind::Quoted(q)) => {
                            self.at += 1;
                            path.push(q);
                        }
                        _ => return Err(self.expected("a quoted key after \"[\"")),
                    }
                    if !self.peek().is_some_and(|t| t.kind == Kind::CloseBracket) {
                        return Err(self.expected("\"]\""));
                    }
                    self.at += 1;
                }
                _ => return Ok(Selector { path, at }),
            }
        }
    }

    fn value(&mut self) -> Result<String, FilterError> {
        match self.peek().map(|t| t.kind.clone()) {
            Some(Kind::Quoted(q) | Kind::Word(q)) => {
                self.at += 1;
                Ok(q)
            }
            _ => Err(self.expected("a value")),
        }
    }
}

#[cfg(test)]
mod tests;
