//! Lists as Facturapi answers them: the page envelope, `page`/`limit`, `q`, `date[…]` ranges
//! and field filters.

use super::*;

impl Ctx<'_> {
    /// Lists with Facturapi's envelope, `page`/`limit`, `q`, `date[…]` and field filters.
    pub(super) fn list(
        &self,
        coll: &'static str,
        fields: &[(&str, &str)],
        default_limit: u64,
    ) -> Outcome {
        let number = |name: &str, default: u64, max: u64| -> Result<u64, ApiErr> {
            match self.query(name) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    Ok(n) if name == "page" && n > max => Err(err(
                        400,
                        "page_too_large",
                        "page must be at most 30: narrow the query with date filters",
                    )),
                    _ => {
                        let mut e =
                            err(400, "invalid_request", format!("{name} must be 1..={max}"));
                        e.errors = vec![
                            json!({"message": format!("{name} must be 1..={max}"), "code": "invalid_value", "location": "query", "path": name, "source": "facturapi"}),
                        ];
                        Err(e)
                    }
                },
            }
        };
        let page = number("page", 1, 30)?;
        let limit = number("limit", default_limit, 100)?;
        let mut bounds = Vec::new();
        for (name, value) in &self.query {
            let op = match name.as_str() {
                "date[gt]" => "gt",
                "date[gte]" => "gte",
                "date[lt]" => "lt",
                "date[lte]" => "lte",
                _ => continue,
            };
            let at = parse_date(value).ok_or_else(|| {
                err(
                    400,
                    "invalid_date",
                    format!("{name}={value:?} is not an ISO-8601 date"),
                )
            })?;
            bounds.push((op, at));
        }
        let q = self.query("q").map(str::to_lowercase);
        let store = self.store();
        let matching: Vec<&Value> = store
            .all(self.env, coll)
            .filter(|doc| {
                fields
                    .iter()
                    .all(|(param, pointer)| match self.query(param) {
                        None => true,
                        // Lists like `cancellation_status=none,accepted` match any of their values.
                        Some(wanted) => text(doc.pointer(pointer))
                            .is_some_and(|have| wanted.split(',').any(|w| w == have)),
                    })
            })
            .filter(|doc| {
                let q = match &q {
                    None => return true,
                    Some(q) => q,
                };
                [
                    "/legal_name",
                    "/tax_id",
                    "/description",
                    "/external_id",
                    "/sku",
                    "/email",
                    "/url",
                    "/customer/legal_name",
                    "/customer/tax_id",
                ]
                .iter()
                .filter_map(|p| doc.pointer(p).and_then(Value::as_str))
                .any(|s| s.to_lowercase().contains(q.as_str()))
            })
            .filter(|doc| {
                if bounds.is_empty() {
                    return true;
                }
                let at = doc
                    .get("date")
                    .or_else(|| doc.get("created_at"))
                    .and_then(Value::as_str)
                    .and_then(parse_date);
                let Some(at) = at else { return false };
                bounds.iter().all(|(op, bound)| match *op {
                    "gt" => at > *bound,
                    "gte" => at >= *bound,
                    "lt" => at < *bound,
                    _ => at <= *bound,
                })
            })
            .collect();
        let total = matching.len() as u64;
        let data: Vec<Value> = matching
            .into_iter()
            .skip(((page - 1) * limit) as usize)
            .take(limit as usize)
            .cloned()
            .collect();
        Ok(ok(json!({
            "page": page,
            "total_pages": total.div_ceil(limit),
            "total_results": total,
            "data": data,
        })))
    }
}

/// RFC 3339, or a bare date (midnight UTC).
pub(super) fn parse_date(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_as_rfc3339_or_bare_dates() {
        assert_eq!(
            parse_date("2026-01-02").unwrap(),
            parse_date("2026-01-02T00:00:00Z").unwrap()
        );
        assert!(parse_date("yesterday").is_none());
    }
}
