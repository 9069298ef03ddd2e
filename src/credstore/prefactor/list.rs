//! Listing API tokens: `pagination[offset]`, `pagination[page_size]`,
//! `sorting[field]` and `sorting[direction]` (the sorting names are inferred).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{API, TOKEN, Token, authenticate_manager, details};
use crate::credstore::AppState;
use crate::credstore::http::{ApiError, json_response};

const DEFAULT_PAGE_SIZE: usize = 25;
const MAX_PAGE_SIZE: usize = 100;
const MAX_OFFSET: usize = 1_000_000_000;

struct ListQuery {
    account_id: Option<String>,
    offset: usize,
    page_size: usize,
    sort_field: String,
    descending: bool,
}

const SORT_FIELDS: &[&str] = &["inserted_at", "updated_at", "expires_at", "status", "id"];

fn parse_list_query(raw: Option<&str>) -> Result<ListQuery, ApiError> {
    let invalid = |message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message);
    let mut query = ListQuery {
        account_id: None,
        offset: 0,
        page_size: DEFAULT_PAGE_SIZE,
        sort_field: "inserted_at".into(),
        descending: false,
    };
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match &*name {
            "account_id" => query.account_id = Some(value.into_owned()),
            "pagination[offset]" => {
                query.offset = value
                    .parse()
                    .ok()
                    .filter(|offset| *offset <= MAX_OFFSET)
                    .ok_or_else(|| {
                        invalid(format!(
                            "pagination[offset] must be an integer between 0 and {MAX_OFFSET}"
                        ))
                    })?;
            }
            "pagination[page_size]" => {
                query.page_size = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                    .ok_or_else(|| {
                        invalid(format!(
                            "pagination[page_size] must be between 1 and {MAX_PAGE_SIZE}"
                        ))
                    })?;
            }
            "sorting[field]" if SORT_FIELDS.contains(&&*value) => query.sort_field = value.into_owned(),
            "sorting[field]" => {
                return Err(invalid(format!(
                    "sorting[field] must be one of {}",
                    SORT_FIELDS.join(", ")
                )));
            }
            "sorting[direction]" => {
                query.descending = match &*value {
                    "asc" => false,
                    "desc" => true,
                    _ => return Err(invalid("sorting[direction] must be asc or desc".into())),
                }
            }
            _ => {}
        }
    }
    Ok(query)
}

pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let query = parse_list_query(raw.as_deref())?;
    let mut tokens: Vec<Token> = state.db.write(|tx| {
        let caller = authenticate_manager(tx, &headers, now_ms)?;
        let account_id = query
            .account_id
            .clone()
            .unwrap_or_else(|| caller.account_id.clone());
        if account_id != caller.account_id {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_permitted",
                "account_id is not an account of the caller",
            ));
        }
        Ok(tx.list(API, TOKEN, Some(&account_id))?)
    })?;
    tokens.sort_by(|a, b| {
        let order = match query.sort_field.as_str() {
            "updated_at" => a.updated_at_ms.cmp(&b.updated_at_ms),
            "expires_at" => a.expires_at_ms.cmp(&b.expires_at_ms),
            "status" => json!(a.status).as_str().cmp(&json!(b.status).as_str()),
            "id" => a.id.cmp(&b.id),
            _ => a.inserted_at_ms.cmp(&b.inserted_at_ms),
        }
        .then_with(|| a.id.cmp(&b.id));
        if query.descending { order.reverse() } else { order }
    });
    let total = tokens.len();
    let page: Vec<Value> = tokens
        .iter()
        .skip(query.offset)
        .take(query.page_size)
        .map(details)
        .collect();
    let size = query.page_size;
    let pagination = json!({
        "item_count": total,
        "item_start": if page.is_empty() { 0 } else { query.offset + 1 },
        "item_end": query.offset + page.len(),
        "page_count": total.div_ceil(size),
        "page_index": query.offset / size,
        "page_offset": query.offset,
        "page_size": size,
        "next_page_offset": (query.offset + size < total).then_some(query.offset + size),
        "previous_page_offset": (query.offset > 0).then(|| query.offset.saturating_sub(size)),
    });
    let sorting =
        json!({"field": query.sort_field, "direction": if query.descending { "desc" } else { "asc" }});
    Ok(json_response(
        StatusCode::OK,
        &json!({"status": "success", "summaries": page, "pagination": pagination, "sorting": sorting}),
    ))
}
