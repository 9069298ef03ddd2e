//! Request validation shaped like the real server's: FastAPI + pydantic (lax mode)
//! errors, rendered by ZenML as a bare `["ValueError", "<n> validation error(s):\n
//! {'type': …, 'loc': (…), 'msg': …, 'input': …}"]` with status 422. The real text
//! also names the server's source file; that part is left out.

use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::credstore::http::{ApiError, ZENML_VALIDATION};

/// One element of a pydantic error location.
#[derive(Clone, Debug)]
pub enum Loc {
    Key(String),
    Index(usize),
}

impl From<&str> for Loc {
    fn from(key: &str) -> Self {
        Self::Key(key.to_owned())
    }
}

/// One pydantic error: its `type`, `loc`, `msg`, the offending `input` and `ctx`.
#[derive(Clone, Debug)]
pub struct Issue {
    pub kind: &'static str,
    pub loc: Vec<Loc>,
    pub msg: String,
    pub input: Value,
    pub ctx: Option<String>,
}

impl Issue {
    pub fn new(kind: &'static str, loc: Vec<Loc>, msg: impl Into<String>, input: Value) -> Self {
        Self {
            kind,
            loc,
            msg: msg.into(),
            input,
            ctx: None,
        }
    }

    fn with_ctx(mut self, ctx: String) -> Self {
        self.ctx = Some(ctx);
        self
    }
}

/// The 422 the real server answers for these issues.
pub fn failure(issues: &[Issue]) -> ApiError {
    let count = issues.len();
    let mut text = format!("{count} validation error{}:", if count == 1 { "" } else { "s" });
    for issue in issues {
        let loc = match issue.loc.as_slice() {
            [single] => format!("({},)", loc_repr(single)),
            many => format!("({})", many.iter().map(loc_repr).collect::<Vec<_>>().join(", ")),
        };
        text.push_str(&format!(
            "\n  {{'type': '{}', 'loc': {loc}, 'msg': {}, 'input': {}",
            issue.kind,
            py_str(&issue.msg),
            py_repr(&issue.input)
        ));
        if let Some(ctx) = &issue.ctx {
            text.push_str(&format!(", 'ctx': {ctx}"));
        }
        text.push('}');
    }
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ZENML_VALIDATION, text)
}

fn loc_repr(loc: &Loc) -> String {
    match loc {
        Loc::Key(key) => py_str(key),
        Loc::Index(index) => index.to_string(),
    }
}

/// Python's `repr()` of a string.
pub fn py_str(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr()` of a parsed JSON value.
pub fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_str(s),
        Value::Array(items) => format!("[{}]", items.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", py_str(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The type of a body field, as the real request model declares it.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `str` with a `max_length`.
    Str(usize),
    Bool,
    Int,
}

/// A body field: name, type, and whether it must be present (and not null).
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

pub const fn field(name: &'static str, kind: Kind, required: bool) -> Field {
    Field { name, kind, required }
}

/// The fields of a JSON body after pydantic's lax coercion; absent and null
/// optional fields are left out, unknown fields are ignored (`extra="ignore"`).
pub fn body(bytes: &[u8], fields: &[Field]) -> Result<Map<String, Value>, ApiError> {
    let body_loc = || vec![Loc::from("body")];
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(failure(&[Issue::new(
            "missing",
            body_loc(),
            "Field required",
            Value::Null,
        )]));
    }
    let parsed: Value = serde_json::from_slice(bytes).map_err(|err| {
        let position = json_error_position(bytes, &err);
        failure(&[Issue::new(
            "json_invalid",
            vec![Loc::from("body"), Loc::Index(position)],
            "JSON decode error",
            Value::Object(Map::new()),
        )
        .with_ctx(format!("{{'error': {}}}", py_str(&err.to_string())))])
    })?;
    let Value::Object(object) = &parsed else {
        return Err(failure(&[Issue::new(
            "model_attributes_type",
            body_loc(),
            "Input should be a valid dictionary or object to extract fields from",
            parsed.clone(),
        )]));
    };
    let mut issues = Vec::new();
    let mut out = Map::new();
    for field in fields {
        let loc = || vec![Loc::from("body"), Loc::from(field.name)];
        match object.get(field.name) {
            None if field.required => {
                issues.push(Issue::new("missing", loc(), "Field required", parsed.clone()))
            }
            None => {}
            Some(Value::Null) if !field.required && !matches!(field.kind, Kind::Int) => {}
            Some(value) => match coerce(field.kind, value) {
                Ok(value) => {
                    out.insert(field.name.to_owned(), value);
                }
                Err((kind, msg, ctx)) => {
                    let mut issue = Issue::new(kind, loc(), msg, value.clone());
                    issue.ctx = ctx;
                    issues.push(issue);
                }
            },
        }
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(failure(&issues))
    }
}

type Coerced = Result<Value, (&'static str, String, Option<String>)>;

fn coerce(kind: Kind, value: &Value) -> Coerced {
    match kind {
        Kind::Str(max) => match value {
            Value::String(s) if s.chars().count() > max => Err((
                "string_too_long",
                format!("String should have at most {max} characters"),
                Some(format!("{{'max_length': {max}}}")),
            )),
            Value::String(_) => Ok(value.clone()),
            _ => Err(("string_type", "Input should be a valid string".into(), None)),
        },
        Kind::Bool => {
            let parsing = || {
                Err((
                    "bool_parsing",
                    "Input should be a valid boolean, unable to interpret input".into(),
                    None,
                ))
            };
            match value {
                Value::Bool(_) => Ok(value.clone()),
                Value::Number(n) => match n.as_f64() {
                    Some(0.0) => Ok(Value::Bool(false)),
                    Some(1.0) => Ok(Value::Bool(true)),
                    _ => parsing(),
                },
                Value::String(s) => parse_bool(s).map(Value::Bool).map_or_else(parsing, Ok),
                _ => Err(("bool_type", "Input should be a valid boolean".into(), None)),
            }
        }
        Kind::Int => {
            let int_type = || Err(("int_type", "Input should be a valid integer".into(), None));
            match value {
                Value::Bool(b) => Ok(Value::from(i64::from(*b))),
                Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => Ok(Value::from(i)),
                    (None, Some(x)) if x.fract() == 0.0 => Ok(Value::from(saturate(x))),
                    (None, Some(_)) => Err((
                        "int_from_float",
                        "Input should be a valid integer, got a number with a fractional part".into(),
                        None,
                    )),
                    _ => int_type(),
                },
                Value::String(s) => parse_int(s).map(Value::from).ok_or((
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer".into(),
                    None,
                )),
                _ => int_type(),
            }
        }
    }
}

fn saturate(x: f64) -> i64 {
    // `as` saturates at the i64 bounds.
    x as i64
}

/// Pydantic's lax `int` from a string: an integer, or a float text without a fraction.
pub fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Some(i);
    }
    if text
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+' || b == b'.')
    {
        let x: f64 = text.parse().ok()?;
        return (x.fract() == 0.0).then(|| saturate(x));
    }
    None
}

/// Pydantic's lax `bool` from a string.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
        "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// Where Python's `json` module reports the error (a character offset); serde
/// reports the line and column of the last character it read.
fn json_error_position(bytes: &[u8], err: &serde_json::Error) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let before: usize = text
        .split('\n')
        .take(err.line().saturating_sub(1))
        .map(|line| line.chars().count() + 1)
        .sum();
    let column = if err.is_eof() {
        err.column()
    } else {
        err.column().saturating_sub(1)
    };
    before + column
}

/// A query parameter error (`loc` `('query', name)`).
pub fn query_issue(kind: &'static str, name: &str, msg: impl Into<String>, input: &str) -> Issue {
    Issue::new(
        kind,
        vec![Loc::from("query"), Loc::from(name)],
        msg,
        Value::String(input.to_owned()),
    )
}

pub fn with_ctx(issue: Issue, ctx: String) -> Issue {
    issue.with_ctx(ctx)
}

/// `?hydrate=`: a lax boolean, or a 422 for it.
pub fn hydrate_param(raw: Option<&str>, default: bool) -> Result<bool, ApiError> {
    let mut hydrate = default;
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if name == "hydrate" {
            hydrate = parse_bool(&value).ok_or_else(|| {
                failure(&[query_issue(
                    "bool_parsing",
                    "hydrate",
                    "Input should be a valid boolean, unable to interpret input",
                    &value,
                )])
            })?;
        }
    }
    Ok(hydrate)
}

/// A path UUID, or pydantic's `uuid_parsing` error.
pub fn uuid_path(name: &str, raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| {
        let why = uuid_error(raw);
        failure(&[Issue::new(
            "uuid_parsing",
            vec![Loc::from("path"), Loc::from(name)],
            format!("Input should be a valid UUID, {why}"),
            Value::String(raw.to_owned()),
        )
        .with_ctx(format!("{{'error': {}}}", py_str(&why)))])
    })
}

/// The text pydantic-core's `uuid` crate (an older release than ours, whose texts
/// differ) gives for an unparsable UUID.
fn uuid_error(raw: &str) -> String {
    let (offset, inner, braced) = if raw.len() >= 9 && raw[..9].eq_ignore_ascii_case("urn:uuid:") {
        (9, &raw[9..], false)
    } else if raw.len() >= 2 && raw.starts_with('{') && raw.ends_with('}') {
        (1, &raw[1..raw.len() - 1], true)
    } else {
        (0, raw, false)
    };
    if let Some((index, c)) = inner
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit() && *c != '-')
    {
        return format!(
            "invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `{c}` at {}",
            offset + index + 1
        );
    }
    let groups: Vec<&str> = inner.split('-').collect();
    if groups.len() == 1 && !braced {
        return format!(
            "invalid length: expected length 32 for simple format, found {}",
            inner.len()
        );
    }
    if groups.len() != 5 {
        return format!("invalid group count: expected 5, found {}", groups.len());
    }
    for (group, (text, expected)) in groups.iter().zip([8, 4, 4, 4, 12]).enumerate() {
        if text.len() != expected {
            return format!(
                "invalid group length in group {group}: expected {expected}, found {}",
                text.len()
            );
        }
    }
    format!(
        "invalid length: expected length 32 for simple format, found {}",
        inner.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_errors_read_like_pydantic_cores() {
        // Texts measured with pydantic 2.12 (`TypeAdapter(UUID).validate_python`).
        let cases = [
            (
                "diff-bot",
                "invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `i` at 2",
            ),
            (
                "1234",
                "invalid length: expected length 32 for simple format, found 4",
            ),
            (
                "0bc4b3f8-26cd-44e4-89a3-38dfed2f02f",
                "invalid group length in group 4: expected 12, found 11",
            ),
            (
                "0bc4b3f826cd-44e4-89a3-38dfed2f02fd",
                "invalid group count: expected 5, found 4",
            ),
            (
                "urn:uuid:zz",
                "invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `z` at 10",
            ),
            ("{abc}", "invalid group count: expected 5, found 1"),
            ("-", "invalid group count: expected 5, found 2"),
            (
                "a-b-c-d-e",
                "invalid group length in group 0: expected 8, found 1",
            ),
            (
                "",
                "invalid length: expected length 32 for simple format, found 0",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(uuid_error(input), want, "{input:?}");
        }
    }

    #[test]
    fn bodies_are_coerced_and_refused_like_pydantic_lax_mode() {
        let fields = [field("n", Kind::Int, false), field("b", Kind::Bool, false)];
        let ok = body(br#"{"n": "3", "b": "on"}"#, &fields).unwrap();
        assert_eq!((ok["n"].as_i64(), ok["b"].as_bool()), (Some(3), Some(true)));
        let err = body(br#"{"n": 1.5, "b": [1]}"#, &fields).unwrap_err();
        assert!(err.message.starts_with("2 validation errors:"), "{}", err.message);
        assert!(
            err.message
                .contains("'type': 'int_from_float', 'loc': ('body', 'n')")
        );
        assert!(err.message.contains("'type': 'bool_type', 'loc': ('body', 'b')"));
        let err = body(b"{", &fields).unwrap_err();
        assert!(
            err.message.contains("'type': 'json_invalid', 'loc': ('body', 1)"),
            "{}",
            err.message
        );
        assert_eq!(py_str("it's"), "\"it's\"");
    }
}
