//! What the benchmarks share: signing in to a region, and reading latencies.

#![allow(dead_code)] // each benchmark uses its part

use std::time::Duration;

/// The `p` quantile (0 to 1) of `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `d` in milliseconds, two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The JSON document `url` answers `token`'s GET with.
pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A client of `base` keeping up to `connections` idle connections, and an access token for
/// the administrator key in `key_file`.
pub async fn sign_in(
    base: &str,
    key_file: &std::path::Path,
    connections: usize,
) -> (reqwest::Client, String) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let key = std::fs::read_to_string(key_file).unwrap();
    let token: serde_json::Value = http
        .post(format!("{base}/v1/regions/global/auth/token"))
        .json(&serde_json::json!({"grant_type": "api_key", "api_key": key.trim()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (http, token["access_token"].as_str().unwrap().to_owned())
}

/// The network a benchmark's many instances go on: the default one's /16 holds 65,532 guests.
pub const FLEET: &str = "/v1/regions/local-1/projects/default/compute/networks/fleet";

/// Creates the [`FLEET`] network, a /12 (about a million guests).
pub async fn create_fleet(http: &reqwest::Client, base: &str, token: &str) {
    let fleet = http
        .post(format!("{base}{}", FLEET.trim_end_matches("/fleet")))
        .bearer_auth(token)
        .json(&serde_json::json!({"id": "fleet", "cidr": "10.64.0.0/12"}))
        .send()
        .await
        .unwrap();
    assert_eq!(fleet.status(), 201, "{}", fleet.text().await.unwrap());
}
