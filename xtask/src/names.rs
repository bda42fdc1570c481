//! Identifier spelling shared by the rules and the generators.

/// `create-invoice`, `tax_id`, `createInvoice`, `IVA` → `CreateInvoice`, `TaxId`, `CreateInvoice`, `Iva`.
pub(crate) fn pascal(text: &str) -> String {
    words(text)
        .iter()
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
            })
        })
        .collect()
}

/// `createInvoice`, `tax-id`, `IVA` → `create_invoice`, `tax_id`, `iva`.
pub(crate) fn snake(text: &str) -> String {
    words(text)
        .iter()
        .map(|w| w.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("_")
}

/// Splits on non-alphanumerics and on lower→upper case changes.
fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        assert_eq!(pascal("createInvoice"), "CreateInvoice");
        assert_eq!(pascal("tax_id"), "TaxId");
        assert_eq!(pascal("IVA"), "Iva");
        assert_eq!(snake("listLiveApiKeys"), "list_live_api_keys");
        assert_eq!(snake("air-transport-codes"), "air_transport_codes");
    }
}
