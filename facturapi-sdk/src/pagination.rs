//! Paged lists: the `{page, total_pages, total_results, data}` envelope, and a stream of
//! every item across pages.
//!
//! Facturapi serves at most [`MAX_PAGE`] pages per query (`page` is 1..=30), so at most
//! 3,000 results at `limit=100`. [`list_all`] stops there with an [`Error::PageCap`] item
//! when results remain, rather than ending silently: narrow the query (a `date` range) to
//! read the rest.

use std::future::Future;

use futures_core::Stream;

use crate::error::{Error, Result};
use crate::request::QueryParams;

/// The highest page the API serves.
pub const MAX_PAGE: i64 = 30;

/// A page of a list response.
pub trait Page {
    /// The listed item.
    type Item;
    /// This page's number (1-based).
    fn page(&self) -> Option<i64>;
    /// Pages in the whole result.
    fn total_pages(&self) -> Option<i64>;
    /// Results in the whole result.
    fn total_results(&self) -> Option<i64>;
    /// The items.
    fn into_items(self) -> Vec<Self::Item>;
}

/// A query with a `page` parameter.
pub trait PagedQuery: QueryParams + Clone {
    /// Sets the page to fetch.
    fn set_page(&mut self, page: i64);
    /// The page it asks for (1 when unset).
    fn page(&self) -> i64;
}

/// Every item of a paged list, fetching page after page with `fetch` (one call per page,
/// each through the class limits). Ends after the last page; yields [`Error::PageCap`]
/// after page [`MAX_PAGE`] when results remain.
pub fn list_all<Q, P, F, Fut>(
    operation_id: &'static str,
    query: Q,
    fetch: F,
) -> impl Stream<Item = Result<P::Item>>
where
    Q: PagedQuery,
    P: Page,
    F: FnMut(Q) -> Fut,
    Fut: Future<Output = Result<P>>,
{
    struct State<Q, F, I> {
        query: Q,
        fetch: F,
        buffer: std::vec::IntoIter<I>,
        next_page: Option<i64>,
        fetched: u64,
        total_results: i64,
    }
    let first = query.page().max(1);
    let state = State {
        query,
        fetch,
        buffer: Vec::new().into_iter(),
        next_page: Some(first),
        fetched: 0,
        total_results: 0,
    };
    futures_util::stream::try_unfold(state, move |mut state| async move {
        loop {
            if let Some(item) = state.buffer.next() {
                state.fetched += 1;
                return Ok(Some((item, state)));
            }
            let Some(page) = state.next_page else {
                return Ok(None);
            };
            if page > MAX_PAGE {
                return Err(Error::PageCap {
                    operation_id,
                    pages: MAX_PAGE,
                    fetched: state.fetched,
                    total_results: state.total_results,
                });
            }
            let mut query = state.query.clone();
            query.set_page(page);
            let response: P = (state.fetch)(query).await?;
            let total_pages = response.total_pages().unwrap_or(page);
            state.total_results = response.total_results().unwrap_or(0);
            let items = response.into_items();
            let empty = items.is_empty();
            state.buffer = items.into_iter();
            state.next_page = if empty || page >= total_pages {
                None
            } else {
                // Past MAX_PAGE this becomes the cap error, after this page's items.
                Some(page + 1)
            };
        }
    })
}
