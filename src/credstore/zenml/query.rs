//! ZenML list queries: `page`/`size` pagination, `sort_by`, and field filters
//! written as `operator:value` (`name=contains:ci`), combined by `logical_operator`.

use std::cmp::Ordering;

use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::credstore::http::ApiError;

const DEFAULT_SIZE: usize = 20;
const MAX_SIZE: usize = 10_000;
const OPERATORS: &[&str] = &[
    "equals",
    "notequals",
    "contains",
    "startswith",
    "endswith",
    "gt",
    "gte",
    "lt",
    "lte",
];

/// A field value of a listed item, typed for comparison.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub enum Field {
    Text(String),
    Bool(bool),
    Time(Option<i64>),
}

pub struct Query {
    page: usize,
    size: usize,
    sort_field: String,
    descending: bool,
    any: bool,
    filters: Vec<(String, String, String)>,
    pub hydrate: bool,
}

fn invalid(loc: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, loc, message)
}

pub fn parse(raw: Option<&str>, filterable: &[&str]) -> Result<Query, ApiError> {
    let mut query = Query {
        page: 1,
        size: DEFAULT_SIZE,
        sort_field: "created".into(),
        descending: false,
        any: false,
        filters: Vec::new(),
        hydrate: false,
    };
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match &*name {
            "page" => {
                query.page = value
                    .parse()
                    .ok()
                    .filter(|&p| p >= 1)
                    .ok_or_else(|| invalid("query.page", "page must be an integer >= 1"))?
            }
            "size" => {
                query.size = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=MAX_SIZE).contains(s))
                    .ok_or_else(|| {
                        invalid(
                            "query.size",
                            format!("size must be an integer between 1 and {MAX_SIZE}"),
                        )
                    })?;
            }
            "hydrate" => {
                query.hydrate =
                    parse_bool(&value).ok_or_else(|| invalid("query.hydrate", "hydrate must be a boolean"))?
            }
            "logical_operator" => {
                query.any = match &*value {
                    "and" => false,
                    "or" => true,
                    _ => {
                        return Err(invalid(
                            "query.logical_operator",
                            "logical_operator must be 'and' or 'or'",
                        ));
                    }
                }
            }
            "sort_by" => {
                let (direction, field) = value.split_once(':').unwrap_or(("asc", &value));
                if !filterable.contains(&field) || !matches!(direction, "asc" | "desc") {
                    return Err(ApiError::status(
                        StatusCode::BAD_REQUEST,
                        format!("Invalid sort_by value {value}"),
                    ));
                }
                query.sort_field = field.to_owned();
                query.descending = direction == "desc";
            }
            field if filterable.contains(&field) => {
                let (op, operand) = match value.split_once(':') {
                    Some((op, operand)) if OPERATORS.contains(&op) => (op, operand),
                    _ => ("equals", &*value),
                };
                query
                    .filters
                    .push((field.to_owned(), op.to_owned(), operand.to_owned()));
            }
            _ => {}
        }
    }
    Ok(query)
}

pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parses an RFC 3339 date-time, or a naive ISO 8601 one taken as UTC.
fn parse_time(text: &str) -> Option<i64> {
    text.parse::<Timestamp>()
        .ok()
        .or_else(|| {
            text.parse::<jiff::civil::DateTime>()
                .ok()
                .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp())
        })
        .map(|ts| ts.as_millisecond())
}

fn matches(field: &Field, op: &str, operand: &str) -> Result<bool, ApiError> {
    let ordering = |ord: Ordering| match op {
        "equals" => Ok(ord == Ordering::Equal),
        "notequals" => Ok(ord != Ordering::Equal),
        "gt" => Ok(ord == Ordering::Greater),
        "gte" => Ok(ord != Ordering::Less),
        "lt" => Ok(ord == Ordering::Less),
        "lte" => Ok(ord != Ordering::Greater),
        _ => Err(ApiError::status(
            StatusCode::BAD_REQUEST,
            format!("operator {op} does not apply to this field"),
        )),
    };
    match field {
        Field::Text(text) => match op {
            "contains" => Ok(text.contains(operand)),
            "startswith" => Ok(text.starts_with(operand)),
            "endswith" => Ok(text.ends_with(operand)),
            _ => ordering(text.as_str().cmp(operand)),
        },
        Field::Bool(value) => {
            let operand = parse_bool(operand).ok_or_else(|| {
                ApiError::status(StatusCode::BAD_REQUEST, "expected a boolean filter value")
            })?;
            match op {
                "equals" => Ok(*value == operand),
                "notequals" => Ok(*value != operand),
                _ => Err(ApiError::status(
                    StatusCode::BAD_REQUEST,
                    format!("operator {op} does not apply to booleans"),
                )),
            }
        }
        Field::Time(value) => {
            let operand = parse_time(operand).ok_or_else(|| {
                ApiError::status(StatusCode::BAD_REQUEST, "expected a date-time filter value")
            })?;
            match value {
                Some(value) => ordering(value.cmp(&operand)),
                None => Ok(op == "notequals"),
            }
        }
    }
}

/// Filters, sorts and pages `items`; `field` reads a named field of an item.
pub fn page<T>(
    query: &Query,
    mut items: Vec<T>,
    field: impl Fn(&T, &str) -> Field,
    render: impl Fn(&T) -> Value,
) -> Result<Value, ApiError> {
    let mut kept = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        let mut results = Vec::with_capacity(query.filters.len());
        for (name, op, operand) in &query.filters {
            results.push(matches(&field(&item, name), op, operand)?);
        }
        let keep = results.is_empty()
            || if query.any {
                results.iter().any(|&r| r)
            } else {
                results.iter().all(|&r| r)
            };
        if keep {
            kept.push(item);
        }
    }
    kept.sort_by(|a, b| {
        let ord = field(a, &query.sort_field)
            .partial_cmp(&field(b, &query.sort_field))
            .unwrap_or(Ordering::Equal);
        if query.descending { ord.reverse() } else { ord }
    });
    let total = kept.len();
    let total_pages = total.div_ceil(query.size).max(1);
    if query.page > total_pages {
        return Err(ApiError::status(
            StatusCode::BAD_REQUEST,
            format!(
                "Invalid page {}. The requested page size is {} and there are a total of {total} items for this query. The maximum page value therefore is {total_pages}.",
                query.page, query.size
            ),
        ));
    }
    let items: Vec<Value> = kept
        .iter()
        .skip((query.page - 1) * query.size)
        .take(query.size)
        .map(render)
        .collect();
    Ok(
        json!({"index": query.page, "max_size": query.size, "total_pages": total_pages, "total": total, "items": items}),
    )
}
