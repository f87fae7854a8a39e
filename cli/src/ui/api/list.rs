//! `GET /api/dispatches`: the dispatch list, with its query (status, search, sort, order,
//! limit, offset), the rows as the list draws them, and counts per status.
//!
//! It owns the list's query messages and its sort order; it must not describe single
//! dispatches or their graphs.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use chrono::{DateTime, Utc};
use covalent::Status;
use covalent::store::{DispatchSummary, ListFilter};
use serde::Serialize;
use serde_json::{Value, json};

use crate::ui::api::reply::ApiResult;
use crate::ui::security::query_param;
use crate::ui::state::{Shared, UiError, blocking};

/// A row of the dispatch list.
#[derive(Serialize)]
struct SummaryView {
    id: String,
    lattice: String,
    status: Status,
    done: usize,
    total: usize,
    start_time: DateTime<Utc>,
    end_time: Option<DateTime<Utc>>,
    runtime_ms: f64,
}

impl From<&DispatchSummary> for SummaryView {
    fn from(s: &DispatchSummary) -> Self {
        SummaryView {
            id: s.id.to_string(),
            lattice: s.lattice.clone(),
            status: s.status,
            done: s.done,
            total: s.total,
            start_time: s.start_time,
            end_time: s.end_time,
            runtime_ms: s.runtime().as_secs_f64() * 1e3,
        }
    }
}

/// The sort keys of the list.
const SORTS: &[&str] = &["start", "id", "lattice", "status", "tasks", "runtime"];

/// The parsed query of `GET /api/dispatches`.
struct ListQuery {
    status: Option<Status>,
    search: Option<String>,
    sort: &'static str,
    descending: bool,
    limit: usize,
    offset: usize,
}

impl ListQuery {
    fn parse(q: &str) -> Result<Self, UiError> {
        let p = |name| query_param(q, name).filter(|v| !v.trim().is_empty());
        let status = p("status")
            .map(|s| s.trim().parse::<Status>())
            .transpose()
            .map_err(UiError::BadRequest)?;
        let sort = match p("sort") {
            None => "start",
            Some(s) => SORTS.iter().copied().find(|k| *k == s).ok_or_else(|| {
                UiError::BadRequest(format!(
                    "unknown sort `{s}`; expected one of: {}",
                    SORTS.join(", ")
                ))
            })?,
        };
        let descending = match p("order").as_deref() {
            None => !matches!(sort, "id" | "lattice" | "status"),
            Some("desc") => true,
            Some("asc") => false,
            Some(o) => {
                return Err(UiError::BadRequest(format!(
                    "unknown order `{o}`; expected asc or desc"
                )));
            }
        };
        let number = |name: &str, default: usize| -> Result<usize, UiError> {
            query_param(q, name)
                .filter(|v| !v.trim().is_empty())
                .map_or(Ok(default), |v| {
                    v.trim().parse().map_err(|_| {
                        UiError::BadRequest(format!("`{name}` must be a whole number, not `{v}`"))
                    })
                })
        };
        Ok(ListQuery {
            status,
            search: p("search").map(|s| s.trim().to_string()),
            sort,
            descending,
            limit: number("limit", 50)?.clamp(1, 1000),
            offset: number("offset", 0)?,
        })
    }
}

/// `GET /api/dispatches`.
pub async fn list(State(state): State<Shared>, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(q.as_deref().unwrap_or(""))?;
    let page = blocking(&state, move |s| {
        let Some(store) = s.store.get()? else {
            return Ok(json!({
                "dispatches": [], "matched": 0, "total": 0, "counts": {},
                "offset": q.offset, "limit": q.limit, "sort": q.sort,
                "order": if q.descending { "desc" } else { "asc" },
                "data_version": null,
                "store": { "path": s.store.path, "exists": false },
            }));
        };
        let version = store.data_version()?;
        let counts = store.counts()?;
        let total: usize = counts.iter().map(|(_, n)| n).sum();
        let (rows, matched) = if q.sort == "start" && q.descending && q.search.is_none() {
            // The store's own order: let it paginate.
            let rows = store.list(&ListFilter {
                status: q.status,
                search: None,
                limit: Some(q.limit),
                offset: q.offset,
            })?;
            let matched = match q.status {
                Some(st) => counts.iter().find(|(s, _)| *s == st).map_or(0, |(_, n)| *n),
                None => total,
            };
            (rows, matched)
        } else {
            let mut all = store.list(&ListFilter {
                status: q.status,
                search: q.search.clone(),
                limit: None,
                offset: 0,
            })?;
            sort_rows(&mut all, q.sort, q.descending);
            let matched = all.len();
            let rows = all.into_iter().skip(q.offset).take(q.limit).collect();
            (rows, matched)
        };
        let counts: BTreeMap<String, usize> = counts
            .iter()
            .map(|(s, n)| (s.as_str().to_string(), *n))
            .collect();
        let rows: Vec<SummaryView> = rows.iter().map(SummaryView::from).collect();
        Ok(json!({
            "dispatches": rows,
            "matched": matched,
            "total": total,
            "counts": counts,
            "offset": q.offset,
            "limit": q.limit,
            "sort": q.sort,
            "order": if q.descending { "desc" } else { "asc" },
            "data_version": version,
            "store": { "path": s.store.path, "exists": true },
        }))
    })
    .await?;
    Ok(Json(page))
}

fn sort_rows(rows: &mut [DispatchSummary], key: &str, descending: bool) {
    rows.sort_by(|a, b| {
        let o = match key {
            "id" => a.id.cmp(&b.id),
            "lattice" => a.lattice.to_lowercase().cmp(&b.lattice.to_lowercase()),
            "status" => a.status.as_str().cmp(b.status.as_str()),
            "tasks" => (a.done, a.total).cmp(&(b.done, b.total)),
            "runtime" => a.runtime().cmp(&b.runtime()),
            _ => a.start_time.cmp(&b.start_time),
        }
        .then_with(|| a.start_time.cmp(&b.start_time))
        .then_with(|| a.id.cmp(&b.id));
        if descending { o.reverse() } else { o }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_parse_with_defaults_and_clear_errors() {
        let q = ListQuery::parse("").unwrap();
        assert_eq!(
            (q.sort, q.descending, q.limit, q.offset),
            ("start", true, 50, 0)
        );
        let q = ListQuery::parse("sort=lattice&status=failed&limit=5000&search=%20wf%20").unwrap();
        assert_eq!((q.sort, q.descending, q.limit), ("lattice", false, 1000));
        assert_eq!(q.status, Some(Status::Failed));
        assert_eq!(q.search.as_deref(), Some("wf"));
        for bad in ["sort=size", "order=up", "limit=x", "status=bogus"] {
            let Err(UiError::BadRequest(m)) = ListQuery::parse(bad) else {
                panic!("{bad} parsed")
            };
            assert!(!m.is_empty());
        }
    }
}
