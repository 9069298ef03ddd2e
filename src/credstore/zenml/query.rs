//! ZenML list queries: `page`/`size` pagination, `sort_by`, and field filters
//! written as `operator:value` (`name=contains:ci`), combined by `logical_operator`.
//! Errors as the real server gives them: parameter types and bounds are FastAPI's
//! bare-array 422; the filter model's own checks (sort field, boolean and date-time
//! filter values) are `{"detail": ["ValueError", "1 validation error for <Filter>…"]}`.

use std::cmp::Ordering;

use axum::http::StatusCode;
use jiff::civil::DateTime;
use serde_json::{Value, json};

use super::validate::{self, Issue, parse_bool, py_str, query_issue};
use crate::credstore::http::ApiError;

const DEFAULT_SIZE: usize = 20;
const MAX_SIZE: usize = 10_000;
/// `zenml.constants.FILTERING_DATETIME_FORMAT`.
const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
const OPERATORS: &[&str] = &[
    "equals",
    "notequals",
    "contains",
    "notcontains",
    "startswith",
    "endswith",
    "gt",
    "gte",
    "lt",
    "lte",
];
/// Fields of every filter model that are not filters (nor sort keys).
const NOT_SORTABLE: &[&str] = &["sort_by", "page", "size", "logical_operator"];

/// A field value of a listed item, typed for comparison.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub enum Field {
    Text(String),
    Bool(bool),
    Time(Option<i64>),
}

/// How a filter field is typed (decides how its operand is read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Bool,
    Time,
}

/// The filter model of one list endpoint: its name (in error texts), its fields,
/// and fields that exist on the model but can be neither filtered nor sorted here.
pub struct Model {
    pub name: &'static str,
    pub fields: &'static [(&'static str, FieldType)],
    pub excluded: &'static [&'static str],
}

enum Operand {
    Text(String),
    Bool(bool),
    Time(i64),
}

pub struct Query {
    page: usize,
    size: usize,
    sort_field: String,
    descending: bool,
    any: bool,
    filters: Vec<(String, String, Operand)>,
    pub hydrate: bool,
}

fn model_error(model: &Model, field: Option<&str>, message: &str, input: &str) -> ApiError {
    let field_line = field.map(|f| format!("\n{f}")).unwrap_or_default();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "ValueError",
        format!(
            "1 validation error for {}{field_line}\n  Value error, {message} [type=value_error, input_value={input}, input_type={}]\n    For further information visit https://errors.pydantic.dev/2.12/v/value_error",
            model.name,
            if field.is_some() { "str" } else { "dict" },
        ),
    )
}

fn int_param(name: &str, value: &str, min: usize, max: usize, issues: &mut Vec<Issue>) -> Option<usize> {
    let Some(n) = validate::parse_int(value) else {
        issues.push(query_issue(
            "int_parsing",
            name,
            "Input should be a valid integer, unable to parse string as an integer",
            value,
        ));
        return None;
    };
    if n < min as i64 {
        issues.push(validate::with_ctx(
            query_issue(
                "greater_than_equal",
                name,
                format!("Input should be greater than or equal to {min}"),
                value,
            ),
            format!("{{'ge': {min}}}"),
        ));
        return None;
    }
    if n > max as i64 {
        issues.push(validate::with_ctx(
            query_issue(
                "less_than_equal",
                name,
                format!("Input should be less than or equal to {max}"),
                value,
            ),
            format!("{{'le': {max}}}"),
        ));
        return None;
    }
    usize::try_from(n).ok()
}

pub fn parse(raw: Option<&str>, model: &Model) -> Result<Query, ApiError> {
    let mut query = Query {
        page: 1,
        size: DEFAULT_SIZE,
        sort_field: "created".into(),
        descending: false,
        any: false,
        filters: Vec::new(),
        hydrate: false,
    };
    let field_type = |name: &str| model.fields.iter().find(|(f, _)| *f == name).map(|(_, t)| *t);
    let mut issues = Vec::new();
    let mut sort_by = None;
    let mut raw_filters = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match &*name {
            "page" => {
                if let Some(page) = int_param("page", &value, 1, usize::MAX >> 1, &mut issues) {
                    query.page = page;
                }
            }
            "size" => {
                if let Some(size) = int_param("size", &value, 1, MAX_SIZE, &mut issues) {
                    query.size = size;
                }
            }
            "hydrate" => match parse_bool(&value) {
                Some(hydrate) => query.hydrate = hydrate,
                None => issues.push(query_issue(
                    "bool_parsing",
                    "hydrate",
                    "Input should be a valid boolean, unable to interpret input",
                    &value,
                )),
            },
            "logical_operator" => match &*value {
                "and" => query.any = false,
                "or" => query.any = true,
                _ => issues.push(validate::with_ctx(
                    query_issue(
                        "enum",
                        "logical_operator",
                        "Input should be 'or' or 'and'",
                        &value,
                    ),
                    "{'expected': \"'or' or 'and'\"}".into(),
                )),
            },
            "sort_by" => sort_by = Some(value.into_owned()),
            field => {
                if let Some(kind) = field_type(field) {
                    raw_filters.push((field.to_owned(), kind, value.into_owned()));
                }
            }
        }
    }
    if !issues.is_empty() {
        return Err(validate::failure(&issues));
    }

    if let Some(value) = sort_by {
        // An unknown direction falls back to ascending on the text after the colon.
        let (direction, column) = match value.split_once(':') {
            Some((direction, column)) => (direction, column),
            None => ("asc", value.as_str()),
        };
        if model.excluded.contains(&column) || NOT_SORTABLE.contains(&column) {
            return Err(model_error(
                model,
                Some("sort_by"),
                &format!("This resource can not be sorted by this field: '{value}'"),
                &py_str(&value),
            ));
        }
        if field_type(column).is_none() {
            return Err(model_error(
                model,
                Some("sort_by"),
                "You can only sort by valid fields of this resource",
                &py_str(&value),
            ));
        }
        query.sort_field = column.to_owned();
        query.descending = direction == "desc";
    }

    for (field, kind, value) in raw_filters {
        let (op, operand) = match value.split_once(':') {
            Some((op, operand)) if OPERATORS.contains(&op) => (op.to_owned(), operand.to_owned()),
            _ => ("equals".to_owned(), value.clone()),
        };
        let operand = match kind {
            FieldType::Text => Operand::Text(operand),
            FieldType::Bool => Operand::Bool(zenml_bool(&operand).ok_or_else(|| {
                model_error(
                    model,
                    Some("value"),
                    "The bool filter only works with boolean values.",
                    &py_str(&value),
                )
            })?),
            FieldType::Time => Operand::Time(parse_time(&operand).ok_or_else(|| {
                model_error(
                    model,
                    None,
                    &format!(
                        "The datetime filter only works with values in the following format: {DATETIME_FORMAT}"
                    ),
                    "{…}",
                )
            })?),
        };
        query.filters.push((field, op, operand));
    }
    Ok(query)
}

/// The filter's boolean reading: pydantic's lax booleans, then ZenML's own strings.
fn zenml_bool(text: &str) -> Option<bool> {
    parse_bool(text).or_else(|| match text.trim().to_ascii_lowercase().as_str() {
        "1" | "y" | "yes" | "true" => Some(true),
        "0" | "n" | "no" | "false" => Some(false),
        _ => None,
    })
}

/// `%Y-%m-%d %H:%M:%S`, taken as UTC (the real server stores naive UTC times).
fn parse_time(text: &str) -> Option<i64> {
    DateTime::strptime(DATETIME_FORMAT, text)
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp().as_millisecond())
}

fn matches(field: &Field, op: &str, operand: &Operand) -> bool {
    let ordering = |ord: Ordering| match op {
        "notequals" => ord != Ordering::Equal,
        "gt" => ord == Ordering::Greater,
        "gte" => ord != Ordering::Less,
        "lt" => ord == Ordering::Less,
        "lte" => ord != Ordering::Greater,
        _ => ord == Ordering::Equal,
    };
    match (field, operand) {
        (Field::Text(text), Operand::Text(operand)) => match op {
            "contains" => text.contains(operand.as_str()),
            "notcontains" => !text.contains(operand.as_str()),
            "startswith" => text.starts_with(operand.as_str()),
            "endswith" => text.ends_with(operand.as_str()),
            _ => ordering(text.as_str().cmp(operand)),
        },
        (Field::Bool(value), Operand::Bool(operand)) => match op {
            "notequals" => value != operand,
            _ => value == operand,
        },
        // SQL: a comparison with NULL is never true.
        (Field::Time(Some(value)), Operand::Time(operand)) => {
            // Stored times have sub-second precision, filter values do not.
            ordering(value.cmp(operand))
        }
        _ => false,
    }
}

/// Filters, sorts and pages `items`; `field` reads a named field of an item.
pub fn page<T>(
    query: &Query,
    items: Vec<T>,
    field: impl Fn(&T, &str) -> Field,
    render: impl Fn(&T) -> Value,
) -> Result<Value, ApiError> {
    let mut kept: Vec<T> = items
        .into_iter()
        .filter(|item| {
            let mut results = query
                .filters
                .iter()
                .map(|(name, op, operand)| matches(&field(item, name), op, operand));
            if query.filters.is_empty() {
                true
            } else if query.any {
                results.any(|r| r)
            } else {
                results.all(|r| r)
            }
        })
        .collect();
    kept.sort_by(|a, b| {
        let ord = field(a, &query.sort_field)
            .partial_cmp(&field(b, &query.sort_field))
            .unwrap_or(Ordering::Equal);
        if query.descending { ord.reverse() } else { ord }
    });
    let total = kept.len();
    let total_pages = total.div_ceil(query.size).max(1);
    if query.page > total_pages {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValueError",
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
