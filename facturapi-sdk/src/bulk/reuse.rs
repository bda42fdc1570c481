//! Find-or-create for the documents invoices refer to: create each customer and product once,
//! then reuse its id, as Facturapi advises.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::OnceCell;

use crate::{Client, Result, models};

/// Ids of customers and products, found or created once per process and then reused.
///
/// - [`Reuse::customer`] keys customers by tax id (RFC). Facturapi answers a creation for a
///   tax id it already has with the existing customer, so a creation is also the lookup, and
///   two runs that race both get the same customer.
/// - [`Reuse::product`] keys products by SKU, or by product key and description when there is
///   no SKU. It looks the product up first and creates it only when the API lists none; when
///   a creation may have been processed (a 5xx, a dropped connection), it looks again before
///   creating again. Two runs that race can both find nothing and both create: give products
///   a SKU and create them before a parallel run starts, or reuse stored ids with
///   [`Reuse::remember_product`].
///
/// Concurrent calls for the same customer or product wait for one lookup or creation: a bulk
/// run of 10,000 invoices for 40 customers creates 40 customers. Failures are not cached.
#[derive(Debug)]
pub struct Reuse {
    client: Client,
    customers: Cache,
    products: Cache,
}

#[derive(Debug, Default)]
struct Cache(Mutex<HashMap<String, Arc<OnceCell<String>>>>);

impl Cache {
    fn cell(&self, key: &str) -> Arc<OnceCell<String>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    fn set(&self, key: &str, id: &str) {
        let cell = Arc::new(OnceCell::new_with(Some(id.to_owned())));
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), cell);
    }
}

impl Reuse {
    /// Empty caches over `client`.
    pub fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
            customers: Cache::default(),
            products: Cache::default(),
        }
    }

    /// The id of the customer with `body`'s tax id, created when the organization has none.
    pub async fn customer(&self, body: &models::CustomerCreateInput) -> Result<String> {
        let key = normalize(&body.tax_id);
        let cell = self.customers.cell(&key);
        cell.get_or_try_init(|| async {
            let query = Default::default();
            let mut delay = Duration::from_millis(200);
            for attempt in 0.. {
                match self.client.customers().create(body, &query).await {
                    Ok(customer) => return Ok(customer.id),
                    Err(e) if e.was_processed() && e.created_id().is_some() => {
                        return Ok(e.created_id().unwrap_or_default().to_owned());
                    }
                    // Creating again returns the customer the first attempt made, if any.
                    Err(e) if e.may_have_been_processed() && attempt < 5 => {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    Err(e) => return Err(e),
                }
            }
            unreachable!("the loop returns")
        })
        .await
        .cloned()
    }

    /// Records that the customer with `tax_id` is `id` (an id you stored earlier).
    pub fn remember_customer(&self, tax_id: &str, id: &str) {
        self.customers.set(&normalize(tax_id), id);
    }

    /// The id of the product with `body`'s SKU (or product key and description), created
    /// when the organization has none.
    pub async fn product(&self, body: &models::ProductCreateBody) -> Result<String> {
        let wanted = ProductKey::of(body);
        let cell = self.products.cell(&wanted.cache_key());
        cell.get_or_try_init(|| self.find_or_create_product(body, &wanted))
            .await
            .cloned()
    }

    /// Records that the product with this SKU is `id` (an id you stored earlier).
    pub fn remember_product(&self, sku: &str, id: &str) {
        self.products.set(&format!("sku\0{}", sku.trim()), id);
    }

    async fn find_or_create_product(
        &self,
        body: &models::ProductCreateBody,
        wanted: &ProductKey,
    ) -> Result<String> {
        let mut delay = Duration::from_millis(200);
        for attempt in 0.. {
            if let Some(id) = self.find_product(wanted).await? {
                return Ok(id);
            }
            match self.client.products().create(body).await {
                Ok(product) => return Ok(product.id),
                // It may exist now: look again before creating again.
                Err(e) if e.may_have_been_processed() && attempt < 5 => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    async fn find_product(&self, wanted: &ProductKey) -> Result<Option<String>> {
        let call = self.client.raw("listProducts")?;
        let call = match &wanted.sku {
            Some(sku) => call.query("sku", sku),
            None => call.query("q", &wanted.description),
        };
        let found = call.query("limit", &50).json().await?;
        let text = |doc: &Value, field: &str| {
            doc.get(field)
                .and_then(Value::as_str)
                .map(str::trim)
                .map(str::to_owned)
        };
        Ok(found
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|doc| match &wanted.sku {
                Some(sku) => text(doc, "sku").as_ref() == Some(sku),
                None => {
                    text(doc, "product_key").as_ref() == Some(&wanted.product_key)
                        && text(doc, "description").as_ref() == Some(&wanted.description)
                }
            })
            .and_then(|doc| text(doc, "id")))
    }
}

/// What tells products apart: the SKU, or the product key and description.
struct ProductKey {
    sku: Option<String>,
    product_key: String,
    description: String,
}

impl ProductKey {
    fn of(body: &models::ProductCreateBody) -> Self {
        let product = &body.0;
        Self {
            sku: product
                .sku
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            product_key: product.product_key.trim().to_owned(),
            description: product.description.trim().to_owned(),
        }
    }

    fn cache_key(&self) -> String {
        match &self.sku {
            Some(sku) => format!("sku\0{sku}"),
            None => format!("key\0{}\0{}", self.product_key, self.description),
        }
    }
}

fn normalize(tax_id: &str) -> String {
    tax_id.trim().to_uppercase()
}
