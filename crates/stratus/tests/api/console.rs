//! The web console is served by the region itself, self-contained; its flow in a browser is
//! tested by `tests/browser` (run by scripts/test.sh).

use crate::support::*;

#[tokio::test]
async fn console_is_served_without_a_token_and_loads_nothing_from_elsewhere() {
    let region = TestRegion::start().await;
    let http = reqwest::Client::new();
    let base = region.endpoint();
    let mut weight = 0;
    for (path, content_type) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/style.css", "text/css"),
    ] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        let policy = header("content-security-policy");
        assert!(
            policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"),
            "{path}: {policy}"
        );
        let body = response.text().await.unwrap();
        weight += body.len();
        for external in ["http://", "https://", "//cdn", "@import"] {
            assert!(!body.contains(external), "{path} mentions {external}");
        }
    }
    assert!(
        weight < 64 * 1024,
        "the console stays small: {weight} bytes"
    );
    let index = http
        .get(format!("{base}/console"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(index.contains(r#"<script src="/console/app.js""#));
    assert!(index.contains(r#"<html lang="en">"#));
    region.stop().await;
}
