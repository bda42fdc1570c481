//! The sandbox's faults and limits on the wire: 429s with their `Retry-After`, 5xx answers,
//! the fault drawn for each request, and the service time it takes.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Fault {
    None,
    ServerError(u16),
    Stall,
    DropAfterCommit,
    Malformed,
    KeyInUse,
}

pub(super) fn rate_limited(state: &State, class: Class, wait: Duration) -> Response {
    *lock(&state.ledger).rate_limited.entry(class).or_default() += 1;
    let mut response = error(429, "rate_limit_exceeded", "Too many requests, retry later");
    // Whole seconds, rounded up, at least one: what a server with a one-second clock says.
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let value = match state.config.retry_after {
        RetryAfter::Seconds => Some(seconds.to_string()),
        RetryAfter::HttpDate => Some(httpdate::fmt_http_date(
            SystemTime::now() + Duration::from_secs(seconds),
        )),
        RetryAfter::Absent => None,
    };
    if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

pub(super) fn server_error(status: u16) -> Response {
    if status == 500 {
        return error(500, "internal_error", "Unexpected error");
    }
    // A gateway in front of the API answers with its own page, not a Facturapi body.
    let mut r = Response::new(Body::from(format!(
        "<html><body><h1>{status}</h1></body></html>"
    )));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r
}

pub(super) fn draw_fault(state: &State) -> Fault {
    let f = state.config.faults;
    let mut rng = lock(&state.rng);
    let mut u = rng.f64();
    for (p, fault) in [
        (
            f.server_error,
            Fault::ServerError([500, 502, 503][rng.usize(..3)]),
        ),
        (f.stall, Fault::Stall),
        (f.drop_after_commit, Fault::DropAfterCommit),
        (f.malformed_json, Fault::Malformed),
        (f.key_in_use, Fault::KeyInUse),
    ] {
        if u < p {
            return fault;
        }
        u -= p;
    }
    Fault::None
}

/// Log-normal: `median · e^(σ·z)`, z standard normal by Box–Muller (fastrand has no
/// distributions, and two lines do not justify another dependency).
pub(super) fn service_time(state: &State, class: Class) -> Duration {
    let st = &state.config.service_time;
    let Some((median, sigma)) = st.per_class.get(&class).copied() else {
        return Duration::ZERO;
    };
    if st.scale <= 0.0 {
        return Duration::ZERO;
    }
    let mut rng = lock(&state.rng);
    let (u1, u2) = (1.0 - rng.f64(), rng.f64());
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median.mul_f64((sigma * z).exp() * st.scale)
}
