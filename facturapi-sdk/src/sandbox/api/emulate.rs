//! Facturapi's behaviour, resource by resource: creation (invoices, receipts, retentions,
//! customers and products), updates, state changes (cancel, stamp, drafts), downloads and
//! canned answers.

use super::*;

pub(super) const CUSTOMERS: &str = "customers";
pub(super) const PRODUCTS: &str = "products";
pub(super) const INVOICES: &str = "invoices";
pub(super) const RECEIPTS: &str = "receipts";
pub(super) const RETENTIONS: &str = "retentions";
pub(super) const WEBHOOKS: &str = "webhooks";

pub(super) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(super) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

pub(super) fn pdf(id: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% facturapi-rs sandbox document {id}\n%%EOF\n").into_bytes()
}

pub(super) fn xml(doc: &Value) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<cfdi:Comprobante xmlns:cfdi=\"http://www.sat.gob.mx/cfd/4\" Version=\"4.0\" Folio=\"{}\" Total=\"{}\"/>\n",
        text(doc.get("folio_number")).unwrap_or_default(),
        text(doc.get("total")).unwrap_or_default()
    )
    .into_bytes()
}

/// An empty ZIP archive: only the end-of-central-directory record.
pub(super) fn zip() -> Vec<u8> {
    let mut z = vec![0x50, 0x4b, 0x05, 0x06];
    z.resize(22, 0);
    z
}

pub(super) fn download(format: &str, doc: &Value, id: &str) -> Outcome {
    match format {
        "pdf" => Ok(Reply::Binary("application/pdf", pdf(id))),
        "xml" => Ok(Reply::Binary("application/xml", xml(doc))),
        "zip" => Ok(Reply::Binary("application/zip", zip())),
        other => Err(err(
            400,
            "invalid_request",
            format!("Unknown format {other:?}: use pdf, xml or zip"),
        )),
    }
}

impl Ctx<'_> {
    pub(super) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.state.store)
    }

    pub(super) fn param(&self, i: usize) -> &str {
        self.params.get(i).map_or("", String::as_str)
    }

    pub(super) fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn fixture(&self) -> &OpFixture {
        static EMPTY: OpFixture = OpFixture {
            status: 200,
            kind: String::new(),
            ty: None,
            content_type: None,
            body_type: None,
            required: Vec::new(),
            required_query: Vec::new(),
        };
        self.state.ops.get(self.op.operation_id).unwrap_or(&EMPTY)
    }

    pub(super) fn not_found(&self, coll: &str) -> ApiErr {
        let code = match coll {
            CUSTOMERS => "customer_not_found",
            PRODUCTS => "product_not_found",
            INVOICES => "invoice_not_found",
            RECEIPTS => "receipt_not_found",
            RETENTIONS => "retention_not_found",
            WEBHOOKS => "webhook_not_found",
            _ => "not_found",
        };
        err(
            404,
            code,
            format!("No {coll} document with id {:?}", self.param(0)),
        )
    }

    pub(super) fn get(&self, coll: &'static str) -> Result<Value, ApiErr> {
        self.store()
            .get(self.env, coll, self.param(0))
            .cloned()
            .ok_or_else(|| self.not_found(coll))
    }

    /// Checks required query parameters, then parses and validates the body; `Ok(None)` for
    /// operations without a JSON body.
    pub(super) fn body(&self, raw: &Bytes) -> Result<Option<Value>, ApiErr> {
        let fixture = self.fixture();
        let missing: Vec<Value> = fixture
            .required_query
            .iter()
            .filter(|name| self.query(name).is_none_or(str::is_empty))
            .map(|name| {
                json!({
                    "message": format!("{name} is required"),
                    "code": "required",
                    "location": "query",
                    "path": name,
                    "source": "facturapi",
                })
            })
            .collect();
        if !missing.is_empty() {
            let mut e = err(400, "invalid_request", "The request has invalid parameters");
            e.errors = missing;
            return Err(e);
        }
        if fixture.body_type.is_none() {
            return Ok(None);
        }
        let body: Value = if raw.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(raw).map_err(|e| {
                err(
                    400,
                    "invalid_json",
                    format!("The body is not valid JSON: {e}"),
                )
            })?
        };
        if !body.is_object() {
            return Err(err(
                400,
                "invalid_request",
                "The body must be a JSON object",
            ));
        }
        let missing: Vec<Value> = fixture
            .required
            .iter()
            .filter(|f| body.get(f.as_str()).is_none_or(Value::is_null))
            .map(|f| {
                json!({
                    "message": format!("{f} is required"),
                    "code": "required",
                    "location": "body",
                    "path": f,
                    "source": "facturapi",
                })
            })
            .collect();
        if !missing.is_empty() {
            let mut e = err(400, "invalid_request", "The request has invalid fields");
            e.errors = missing;
            return Err(e);
        }
        Ok(Some(body))
    }

    /// Runs the operation: body checks, idempotency reservation, service time, the work.
    /// Returns the outcome and whether state was committed.
    pub(super) async fn run(&self, raw: &Bytes, service: Duration) -> (Outcome, bool) {
        let body = match self.body(raw) {
            Ok(body) => body,
            Err(e) => return (Err(e), false),
        };
        let keyed_coll = match self.op.operation_id {
            "createInvoice" => Some(INVOICES),
            "createReceipt" => Some(RECEIPTS),
            "createRetention" => Some(RETENTIONS),
            _ => None,
        };
        let mut reservation = Reservation {
            state: self.state.clone(),
            key: None,
        };
        if let Some(coll) = keyed_coll
            && let Some(key) = body
                .as_ref()
                .and_then(|b| b.get("idempotency_key"))
                .and_then(Value::as_str)
        {
            match self.reserve(coll, key) {
                Ok(slot) => reservation.key = Some(slot),
                Err(Ok(doc)) => {
                    tokio::time::sleep(service).await;
                    lock(&self.state.ledger).idempotent_replays += 1;
                    let status = if doc["status"] == "pending" { 202 } else { 200 };
                    return (Ok(Reply::Json(status, doc)), false);
                }
                Err(Err(e)) => return (Err(e), false),
            }
        }
        tokio::time::sleep(service).await;
        let outcome = self.work(body.unwrap_or(Value::Null));
        let committed = outcome.is_ok() && self.op.method != "GET";
        if let (Some(_), Ok(Reply::Json(_, doc))) = (keyed_coll, &outcome) {
            let id = doc["id"].as_str().unwrap_or_default().to_owned();
            if let Some(key) = reservation.key.take() {
                self.store().keys.insert(key, Idempotency::Done(id));
            }
            let mut ledger = lock(&self.state.ledger);
            ledger.documents_created += 1;
            if let Some(external) = doc.get("external_id").and_then(Value::as_str) {
                let count = ledger
                    .created_by_external_id
                    .entry(external.to_owned())
                    .or_default();
                *count += 1;
                if *count > 1 {
                    ledger.duplicates += 1;
                }
            }
        }
        (outcome, committed)
    }

    /// Marks an idempotency key as in use; or the document it already made; or 409 while
    /// another request holds it.
    #[allow(clippy::type_complexity, reason = "private, one caller")]
    pub(super) fn reserve(
        &self,
        coll: &'static str,
        key: &str,
    ) -> Result<(Env, &'static str, String), Result<Value, ApiErr>> {
        let slot = (self.env, coll, key.to_owned());
        let mut store = self.store();
        match store.keys.get(&slot).cloned() {
            Some(Idempotency::Done(id)) => Err(store
                .get(self.env, coll, &id)
                .cloned()
                .ok_or_else(|| self.not_found(coll))),
            Some(Idempotency::InUse) => Err(Err(err(
                409,
                "idempotency_key_in_use",
                "Another request with this idempotency_key is in progress",
            ))),
            None => {
                store.keys.insert(slot.clone(), Idempotency::InUse);
                Ok(slot)
            }
        }
    }

    pub(super) fn work(&self, body: Value) -> Outcome {
        match self.op.operation_id {
            "createCustomer" => self.create_unique(CUSTOMERS, "tax_id", body),
            "listCustomers" => self.list(CUSTOMERS, &[], 50),
            "getCustomer" => self.get(CUSTOMERS).map(ok),
            "editCustomer" => self.update(CUSTOMERS, body, |_| Ok(())),
            "deleteCustomer" => self.delete(CUSTOMERS),
            "sendEditLinkByEmail" | "validateCustomerTaxInfo" => {
                self.get(CUSTOMERS).and_then(|_| self.canned())
            }

            "createProduct" => self.create(PRODUCTS, body).map(ok),
            "listProducts" => self.list(PRODUCTS, &[("sku", "/sku")], 50),
            "getProduct" => self.get(PRODUCTS).map(ok),
            "editProduct" => self.update(PRODUCTS, body, |_| Ok(())),
            "deleteProduct" => self.delete(PRODUCTS),

            "createInvoice" => self.create_invoice(body),
            "listInvoices" => self.list(
                INVOICES,
                &[
                    ("customer", "/customer/id"),
                    ("type", "/type"),
                    ("payment_method", "/payment_method"),
                    ("folio_number", "/folio_number"),
                    ("series", "/series"),
                    ("external_id", "/external_id"),
                    ("cancellation_status", "/cancellation_status"),
                    ("uuid", "/uuid"),
                ],
                100,
            ),
            "getInvoice" => self.get(INVOICES).map(ok),
            "updateDraftInvoice" => self.update(INVOICES, body, |doc| {
                if doc["status"] == "draft" {
                    Ok(())
                } else {
                    Err(err(
                        400,
                        "invoice_not_draft",
                        "Only draft invoices can be edited",
                    ))
                }
            }),
            "cancelInvoice" => self.cancel(INVOICES),
            "copyToDraftInvoice" => self.copy_to_draft(INVOICES),
            "stampDraftInvoice" => self.stamp(INVOICES),
            "downloadInvoice" => {
                let doc = self.get(INVOICES)?;
                if doc["status"] == "draft" {
                    return Err(err(400, "invoice_not_stamped", "A draft has no files yet"));
                }
                download(self.param(1), &doc, self.param(0))
            }
            "downloadCancellationReceiptXml" => {
                let doc = self.get(INVOICES)?;
                if doc["status"] != "canceled" {
                    return Err(err(
                        400,
                        "invoice_cancellation_receipt_unavailable",
                        "The invoice has not been canceled",
                    ));
                }
                download(self.param(1), &doc, self.param(0))
            }
            "sendInvoiceByEmail" => self.send_email(INVOICES),
            "updateInvoiceStatus" => self.get(INVOICES).map(ok),

            "createReceipt" => self.create_receipt(body),
            "listReceipts" => self.list(
                RECEIPTS,
                &[
                    ("customer", "/customer"),
                    ("payment_form", "/payment_form"),
                    ("invoice", "/invoice"),
                ],
                50,
            ),
            "getReceipt" => self.get(RECEIPTS).map(ok),
            "assignReceiptCustomer" => self.update(RECEIPTS, body, |_| Ok(())),
            "cancelReceipt" => self.set_status(RECEIPTS, "open", "canceled"),
            "downloadReceiptPdf" => self
                .get(RECEIPTS)
                .map(|_| Reply::Binary("application/pdf", pdf(self.param(0)))),
            "sendReceiptByEmail" => self.send_email(RECEIPTS),
            "invoiceReceipt" => self.invoice_receipt(body),

            "createRetention" => self.create_retention(body),
            "listRetentions" => self.list(
                RETENTIONS,
                &[("customer", "/customer/id"), ("status", "/status")],
                50,
            ),
            "getRetention" => self.get(RETENTIONS).map(ok),
            "updateDraftRetention" => self.update(RETENTIONS, body, |doc| {
                if doc["status"] == "draft" {
                    Ok(())
                } else {
                    Err(err(
                        400,
                        "invalid_operation",
                        "Only draft retentions can be edited",
                    ))
                }
            }),
            "cancelRetention" => self.cancel(RETENTIONS),
            "copyToDraftRetention" => self.copy_to_draft(RETENTIONS),
            "stampDraftRetention" => self.stamp(RETENTIONS),
            "downloadRetention" => {
                let doc = self.get(RETENTIONS)?;
                download(self.param(1), &doc, self.param(0))
            }
            "sendRetentionByEmail" => self.send_email(RETENTIONS),

            "createWebhook" => self.create_unique(WEBHOOKS, "url", body),
            "listWebhooks" => self.list(WEBHOOKS, &[], 50),
            "getWebhook" => self.get(WEBHOOKS).map(ok),
            "editWebhook" => self.update(WEBHOOKS, body, |_| Ok(())),
            "deleteWebhook" => self.delete(WEBHOOKS),

            _ => self.canned(),
        }
    }

    /// The fixture response of this operation.
    pub(super) fn canned(&self) -> Outcome {
        let f = self.fixture();
        Ok(match f.kind.as_str() {
            "json" => {
                let mut body = self.state.template(f.ty.as_deref().unwrap_or_default());
                if let Some(ok) = body.get_mut("ok") {
                    *ok = json!(true);
                }
                if self.op.method == "GET"
                    && self.params.len() == 1
                    && let Some(id) = body.get_mut("id")
                {
                    *id = json!(self.param(0));
                }
                Reply::Json(f.status, body)
            }
            "binary" => match f.content_type.as_deref() {
                Some("application/zip") => Reply::Binary("application/zip", zip()),
                _ => Reply::Binary("application/pdf", pdf(self.op.operation_id)),
            },
            _ => Reply::Empty(f.status),
        })
    }

    /// A document of the operation's response model, filled from the body.
    pub(super) fn new_doc(&self, body: &Value) -> (String, Value) {
        let ty = self.fixture().ty.clone().unwrap_or_default();
        let mut doc = self.state.template(&ty);
        overlay(&mut doc, body);
        let id = self.store().new_id();
        let map = doc
            .as_object_mut()
            .expect("models of documents are objects");
        map.insert("id".into(), json!(id));
        map.insert("created_at".into(), json!(now_rfc3339()));
        map.insert("livemode".into(), json!(self.env == "live"));
        for field in ["canceled_at", "external_id", "idempotency_key"] {
            if body.get(field).is_none_or(Value::is_null) {
                map.remove(field);
            }
        }
        (id, doc)
    }

    pub(super) fn create(&self, coll: &'static str, body: Value) -> Result<Value, ApiErr> {
        let (id, doc) = self.new_doc(&body);
        self.store().insert(self.env, coll, id, doc.clone());
        Ok(doc)
    }

    /// Customers (by `tax_id`) and webhooks (by `url`): an existing one is answered with 200,
    /// a new one with 201.
    pub(super) fn create_unique(&self, coll: &'static str, field: &str, body: Value) -> Outcome {
        let wanted = body.get(field).cloned();
        if let Some(existing) = self
            .store()
            .all(self.env, coll)
            .find(|d| wanted.is_some() && d.get(field) == wanted.as_ref())
        {
            return Ok(Reply::Json(200, existing.clone()));
        }
        self.create(coll, body).map(|d| Reply::Json(201, d))
    }

    /// Replaces `customer` and item `product` ids by the stored documents.
    pub(super) fn resolve_refs(
        &self,
        body: &mut Value,
        customer_as_object: bool,
    ) -> Result<(), ApiErr> {
        let store = self.store();
        if let Some(id) = body
            .get("customer")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            let customer = store
                .get(self.env, CUSTOMERS, &id)
                .ok_or_else(|| err(400, "customer_not_found", format!("No customer {id:?}")))?;
            if customer_as_object {
                body["customer"] = customer.clone();
            }
        }
        if let Some(items) = body.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                if let Some(id) = item
                    .get("product")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                {
                    let product = store.get(self.env, PRODUCTS, &id).ok_or_else(|| {
                        err(400, "product_not_found", format!("No product {id:?}"))
                    })?;
                    item["product"] = product.clone();
                }
            }
        }
        Ok(())
    }

    pub(super) fn total(doc: &Value) -> f64 {
        let sum: f64 = doc["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                i["quantity"].as_f64().unwrap_or(1.0)
                    * i["product"]["price"].as_f64().unwrap_or(0.0)
            })
            .sum();
        (sum * 100.0).round() / 100.0
    }

    pub(super) fn create_invoice(&self, mut body: Value) -> Outcome {
        if body.get("customer").is_none_or(Value::is_null) {
            let mut e = err(400, "invalid_request", "customer is required");
            e.errors = vec![
                json!({"message": "customer is required", "code": "required", "location": "body", "path": "customer", "source": "facturapi"}),
            ];
            return Err(e);
        }
        self.resolve_refs(&mut body, true)?;
        let draft = body["status"] == "draft";
        let pending = !draft && self.query("async") == Some("true");
        let (id, mut doc) = self.new_doc(&body);
        let folio = self.store().next_folio(self.env, INVOICES);
        doc["folio_number"] = json!(folio);
        doc["total"] = json!(Self::total(&doc));
        doc["cancellation_status"] = json!("none");
        doc["status"] = json!(if draft {
            "draft"
        } else if pending {
            "pending"
        } else {
            "valid"
        });
        doc["uuid"] = json!(if draft || pending {
            String::new()
        } else {
            new_uuid()
        });
        if body.get("date").is_none_or(Value::is_null) {
            doc["date"] = doc["created_at"].clone();
        }
        self.store().insert(self.env, INVOICES, id, doc.clone());
        Ok(Reply::Json(if pending { 202 } else { 200 }, doc))
    }

    pub(super) fn create_receipt(&self, mut body: Value) -> Outcome {
        self.resolve_refs(&mut body, false)?;
        let (id, mut doc) = self.new_doc(&body);
        let folio = self.store().next_folio(self.env, RECEIPTS);
        doc["folio_number"] = json!(folio);
        doc["total"] = json!(Self::total(&doc));
        doc["status"] = json!("open");
        doc["key"] = json!(&id[16..]);
        for field in ["invoice", "customer"] {
            if body.get(field).is_none_or(Value::is_null)
                && let Some(map) = doc.as_object_mut()
            {
                map.remove(field);
            }
        }
        if body.get("date").is_none_or(Value::is_null) {
            doc["date"] = doc["created_at"].clone();
        }
        self.store().insert(self.env, RECEIPTS, id, doc.clone());
        Ok(Reply::Json(200, doc))
    }

    pub(super) fn create_retention(&self, mut body: Value) -> Outcome {
        self.resolve_refs(&mut body, true)?;
        let draft = body["status"] == "draft";
        let (id, mut doc) = self.new_doc(&body);
        doc["status"] = json!(if draft { "draft" } else { "valid" });
        doc["uuid"] = json!(if draft { String::new() } else { new_uuid() });
        self.store().insert(self.env, RETENTIONS, id, doc.clone());
        Ok(Reply::Json(200, doc))
    }

    pub(super) fn invoice_receipt(&self, mut body: Value) -> Outcome {
        let receipt = self.get(RECEIPTS)?;
        if receipt["status"] != "open" {
            return Err(err(400, "receipt_not_open", "The receipt is not open"));
        }
        self.resolve_refs(&mut body, true)?;
        body["items"] = receipt["items"].clone();
        let ty = self.fixture().ty.clone().unwrap_or_default();
        let mut doc = self.state.template(&ty);
        overlay(&mut doc, &body);
        let mut store = self.store();
        let id = store.new_id();
        doc["id"] = json!(id);
        doc["created_at"] = json!(now_rfc3339());
        doc["livemode"] = json!(self.env == "live");
        doc["status"] = json!("valid");
        doc["uuid"] = json!(new_uuid());
        doc["folio_number"] = json!(store.next_folio(self.env, INVOICES));
        doc["total"] = json!(Self::total(&doc));
        store.insert(self.env, INVOICES, id.clone(), doc.clone());
        if let Some(r) = store.get_mut(self.env, RECEIPTS, self.param(0)) {
            r["status"] = json!("invoiced_to_customer");
            r["invoice"] = json!(id);
        }
        Ok(Reply::Json(200, doc))
    }

    pub(super) fn update(
        &self,
        coll: &'static str,
        body: Value,
        allowed: impl Fn(&Value) -> Result<(), ApiErr>,
    ) -> Outcome {
        let mut body = body;
        self.resolve_refs(&mut body, coll != RECEIPTS)?;
        let mut store = self.store();
        let doc = store
            .get_mut(self.env, coll, self.param(0))
            .ok_or_else(|| self.not_found(coll))?;
        allowed(doc)?;
        for field in ["id", "created_at", "livemode", "status", "uuid"] {
            if let Some(map) = body.as_object_mut() {
                map.remove(field);
            }
        }
        overlay(doc, &body);
        Ok(ok(doc.clone()))
    }

    pub(super) fn delete(&self, coll: &'static str) -> Outcome {
        self.store()
            .remove(self.env, coll, self.param(0))
            .map(ok)
            .ok_or_else(|| self.not_found(coll))
    }

    pub(super) fn set_status(&self, coll: &'static str, from: &str, to: &str) -> Outcome {
        let mut store = self.store();
        let doc = store
            .get_mut(self.env, coll, self.param(0))
            .ok_or_else(|| self.not_found(coll))?;
        if doc["status"] == from {
            doc["status"] = json!(to);
        } else if doc["status"] != to {
            return Err(err(
                400,
                "invalid_operation",
                format!("A {} document cannot become {to}", doc["status"]),
            ));
        }
        Ok(ok(doc.clone()))
    }

    pub(super) fn cancel(&self, coll: &'static str) -> Outcome {
        let mut store = self.store();
        let doc = store
            .get_mut(self.env, coll, self.param(0))
            .ok_or_else(|| self.not_found(coll))?;
        match doc["status"].as_str() {
            Some("canceled") => {}
            Some("valid") => {
                doc["status"] = json!("canceled");
                if doc.get("cancellation_status").is_some() {
                    doc["cancellation_status"] = json!("accepted");
                }
                if let Some(map) = doc.as_object_mut() {
                    map.insert("canceled_at".into(), json!(now_rfc3339()));
                }
            }
            _ => {
                let code = if coll == INVOICES {
                    "invoice_not_cancelable"
                } else {
                    "retention_not_cancelable"
                };
                return Err(err(400, code, "Only valid documents can be canceled"));
            }
        }
        Ok(ok(doc.clone()))
    }

    pub(super) fn copy_to_draft(&self, coll: &'static str) -> Outcome {
        let mut doc = self.get(coll)?;
        let mut store = self.store();
        let id = store.new_id();
        doc["id"] = json!(id);
        doc["created_at"] = json!(now_rfc3339());
        doc["status"] = json!("draft");
        doc["uuid"] = json!("");
        if let Some(map) = doc.as_object_mut() {
            for field in ["external_id", "idempotency_key", "canceled_at"] {
                map.remove(field);
            }
            if map.contains_key("cancellation_status") {
                map.insert("cancellation_status".into(), json!("none"));
            }
        }
        store.insert(self.env, coll, id, doc.clone());
        Ok(ok(doc))
    }

    pub(super) fn stamp(&self, coll: &'static str) -> Outcome {
        let mut store = self.store();
        let folio = store.next_folio(self.env, coll);
        let doc = store
            .get_mut(self.env, coll, self.param(0))
            .ok_or_else(|| self.not_found(coll))?;
        if doc["status"] != "draft" {
            let code = if coll == INVOICES {
                "invoice_already_stamped"
            } else {
                "invalid_operation"
            };
            return Err(err(400, code, "Only drafts can be stamped"));
        }
        doc["status"] = json!("valid");
        doc["uuid"] = json!(new_uuid());
        if doc.get("folio_number").is_some() {
            doc["folio_number"] = json!(folio);
        }
        Ok(ok(doc.clone()))
    }

    pub(super) fn send_email(&self, coll: &'static str) -> Outcome {
        let doc = self.get(coll)?;
        if doc["status"] == "draft" {
            return Err(err(400, "invalid_operation", "Drafts cannot be sent"));
        }
        self.canned()
    }
}

pub(super) fn ok(doc: Value) -> Reply {
    Reply::Json(200, doc)
}
