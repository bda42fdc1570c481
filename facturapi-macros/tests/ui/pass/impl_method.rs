use facturapi_sdk::{AsClient, Client, Result, endpoint};

/// Your own API wrapper, protected by the same class limits as the SDK's methods.
struct Reports {
    client: Client,
}

impl AsClient for Reports {
    fn as_client(&self) -> &Client {
        &self.client
    }
}

#[derive(serde::Serialize)]
struct ReportRequest {
    month: u8,
}

impl Reports {
    #[endpoint(POST "/reports", class = heavy_write, body = request)]
    pub async fn request(&self, request: &ReportRequest) -> Result<serde_json::Value>;

    #[endpoint(DELETE "/reports/{report_id}", class = write)]
    pub async fn delete(&self, report_id: &str) -> Result<()>;
}

fn main() {
    let _ = Reports::request;
    let _ = Reports::delete;
    let _ = ReportRequest { month: 1 };
}
