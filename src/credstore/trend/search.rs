//! Trend Micro `POST /apikeys/search`: ANDed criteria, ID paging via `idTest` +
//! `sortByObjectID`, and `maxItems`.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::credstore::http::ApiError;

const DEFAULT_MAX_ITEMS: usize = 5000;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchFilter {
    max_items: Option<i64>,
    #[serde(default)]
    search_criteria: Vec<Criterion>,
    #[serde(rename = "sortByObjectID")]
    sort_by_object_id: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Criterion {
    field_name: Option<String>,
    boolean_test: Option<bool>,
    numeric_test: Option<String>,
    numeric_value: Option<f64>,
    string_test: Option<String>,
    string_value: Option<String>,
    string_wildcards: Option<bool>,
    choice_test: Option<String>,
    choice_value: Option<String>,
    first_date_value: Option<i64>,
    first_date_inclusive: Option<bool>,
    last_date_value: Option<i64>,
    last_date_inclusive: Option<bool>,
    null_test: Option<bool>,
    id_value: Option<i64>,
    id_test: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::status(StatusCode::BAD_REQUEST, message)
}

fn compare(test: &str, left: f64, right: f64) -> Result<bool, ApiError> {
    Ok(match test {
        "less-than" => left < right,
        "less-than-or-equal" => left <= right,
        "equal" => left == right,
        "greater-than-or-equal" => left >= right,
        "greater-than" => left > right,
        "not-equal" => left != right,
        _ => return Err(bad(format!("Unknown numeric test {test}"))),
    })
}

/// SQL-LIKE matching (`%` any run of characters, `_` exactly one), by dynamic
/// programming so hostile patterns stay O(pattern × text).
fn wildcard_match(pattern: &[char], text: &[char]) -> bool {
    // matched[j]: pattern prefix so far matches text[..j].
    let mut matched = vec![false; text.len() + 1];
    matched[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            next[j] = match p {
                '%' => matched[j] || (j > 0 && next[j - 1]),
                '_' => j > 0 && matched[j - 1],
                c => j > 0 && matched[j - 1] && text[j - 1] == c,
            };
        }
        matched = next;
    }
    matched[text.len()]
}

impl Criterion {
    /// Does `key` (its JSON representation) satisfy this criterion?
    fn matches(&self, key: &Value) -> Result<bool, ApiError> {
        if let (Some(test), Some(value)) = (&self.id_test, self.id_value) {
            let id = key["ID"].as_f64().unwrap_or_default();
            return compare(test, id, value as f64);
        }
        let name = self
            .field_name
            .as_deref()
            .ok_or_else(|| bad("Search criteria need a fieldName"))?;
        let field = key
            .get(name)
            .filter(|_| SEARCHABLE.contains(&name))
            .ok_or_else(|| bad(format!("Field {name} is not searchable")))?;
        if let Some(want_null) = self.null_test {
            return Ok(field.is_null() == want_null);
        }
        if let Some(want) = self.boolean_test {
            return Ok(field
                .as_bool()
                .ok_or_else(|| bad(format!("Field {name} is not a boolean")))?
                == want);
        }
        if let Some(test) = &self.string_test {
            let text = field
                .as_str()
                .ok_or_else(|| bad(format!("Field {name} is not a string")))?;
            let value = self.string_value.as_deref().unwrap_or_default();
            let equal = if self.string_wildcards == Some(true) {
                wildcard_match(
                    &value.chars().collect::<Vec<_>>(),
                    &text.chars().collect::<Vec<_>>(),
                )
            } else {
                text == value
            };
            return match test.as_str() {
                "equal" => Ok(equal),
                "not-equal" => Ok(!equal),
                _ => Err(bad(format!("Unknown string test {test}"))),
            };
        }
        if let Some(test) = &self.choice_test {
            let equal = field.as_str() == self.choice_value.as_deref();
            return match test.as_str() {
                "equal" => Ok(equal),
                "not-equal" => Ok(!equal),
                _ => Err(bad(format!("Unknown choice test {test}"))),
            };
        }
        if let Some(test) = &self.numeric_test {
            let number = field
                .as_f64()
                .ok_or_else(|| bad(format!("Field {name} is not numeric")))?;
            return compare(
                test,
                number,
                self.numeric_value
                    .ok_or_else(|| bad("numericTest needs numericValue"))?,
            );
        }
        if self.first_date_value.is_some() || self.last_date_value.is_some() {
            let Some(date) = field.as_i64() else {
                return Ok(false);
            };
            let after_first = self.first_date_value.is_none_or(|first| {
                if self.first_date_inclusive.unwrap_or(true) {
                    date >= first
                } else {
                    date > first
                }
            });
            let before_last = self.last_date_value.is_none_or(|last| {
                if self.last_date_inclusive.unwrap_or(true) {
                    date <= last
                } else {
                    date < last
                }
            });
            return Ok(after_first && before_last);
        }
        Err(bad("Search criteria need a test"))
    }
}

const SEARCHABLE: &[&str] = &[
    "keyName",
    "description",
    "locale",
    "roleID",
    "timeZone",
    "active",
    "created",
    "lastSignIn",
    "unlockTime",
    "unsuccessfulSignInAttempts",
    "expiryDate",
    "serviceAccount",
];

/// Applies `filter` to keys already in ascending ID order.
pub fn run(filter: &SearchFilter, keys: Vec<Value>) -> Result<Vec<Value>, ApiError> {
    let max_items = match filter.max_items {
        None => DEFAULT_MAX_ITEMS,
        Some(n) if (0..=DEFAULT_MAX_ITEMS as i64).contains(&n) => n as usize,
        Some(_) => {
            return Err(bad(format!("maxItems must be between 0 and {DEFAULT_MAX_ITEMS}")));
        }
    };
    let mut found = Vec::new();
    for key in keys {
        let mut keep = true;
        for criterion in &filter.search_criteria {
            keep &= criterion.matches(&key)?;
        }
        if keep {
            found.push(key);
        }
    }
    if filter.sort_by_object_id == Some(false) {
        found.sort_by(|a, b| a["keyName"].as_str().cmp(&b["keyName"].as_str()));
    }
    found.truncate(max_items);
    Ok(found)
}
