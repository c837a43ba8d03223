//! List paging: `pageSize`, opaque `pageToken`, and `offset` with `total`.
//!
//! A page token is the id of the last item served (the keyset cursor), bound to the query it
//! came from and signed with the region's HMAC key. A forged or altered token, or one from
//! another query, is a 400, never a silent restart from the beginning. Because the cursor is an
//! id rather than a position, creating and deleting items between pages neither repeats nor
//! skips any item that existed throughout.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use stratus_core::Error;
use stratus_store::PageRequest;

/// Default and largest `pageSize`.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 500;

/// The query parameters every list operation takes.
pub const PAGING_PARAMS: &[&str] = &["pageSize", "pageToken", "offset"];

/// Which part of a list the caller asks for: `pageSize`, `pageToken`, `offset`, as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Paging {
    pub page_size: Option<u64>,
    pub page_token: Option<String>,
    pub offset: Option<u64>,
}

/// Bytes of the HMAC-SHA256 tag a token carries (128 bits).
const TAG_BYTES: usize = 16;

/// Signs and checks page tokens.
#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

impl PageTokens {
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(payload);
        mac
    }

    /// The token that continues `query` after the item `last_id`.
    pub fn next_token(&self, query: &str, last_id: &str) -> String {
        let payload = format!("{}:{last_id}", query_digest(query));
        let tag = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_BYTES])
        )
    }

    fn cursor(&self, query: &str, token: &str) -> Result<String, Error> {
        let bad = |why: &str| Error::invalid("pageToken", why.to_owned());
        let (payload, tag) = token
            .split_once('.')
            .ok_or_else(|| bad("not a page token issued by this server"))?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| bad("not a page token issued by this server"))?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .ok()
            // The whole tag, never a prefix an attacker could guess byte by byte.
            .filter(|t| t.len() == TAG_BYTES)
            .ok_or_else(|| bad("not a page token issued by this server"))?;
        self.mac(&payload)
            .verify_truncated_left(&tag)
            .map_err(|_| bad("not a page token issued by this server"))?;
        let payload = String::from_utf8(payload).map_err(|_| bad("malformed page token"))?;
        let (digest, last_id) = payload
            .split_once(':')
            .ok_or_else(|| bad("malformed page token"))?;
        if digest != query_digest(query) {
            return Err(bad(
                "this page token belongs to a different list query; repeat the query it came from",
            ));
        }
        Ok(last_id.to_owned())
    }

    /// The store's page request for `paging` of a list of `query` (the collection and its
    /// filters, which a token is bound to).
    pub fn page_request(&self, paging: &Paging, query: &str) -> Result<PageRequest, Error> {
        let limit = match paging.page_size {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            Some(n) => {
                return Err(Error::invalid(
                    "pageSize",
                    format!("{n} is out of range; it must be between 1 and {MAX_PAGE_SIZE}"),
                ));
            }
        } as u32;
        let offset = paging.offset;
        let after = match paging.page_token.as_deref() {
            None | Some("") => None,
            Some(_) if offset.is_some() => {
                return Err(Error::invalid(
                    "pageToken",
                    "pageToken and offset cannot be combined; use one way of paging",
                ));
            }
            Some(token) => Some(self.cursor(query, token)?),
        };
        Ok(PageRequest {
            after,
            offset,
            limit,
            with_total: offset.is_some(),
        })
    }
}

fn query_digest(query: &str) -> String {
    hex::encode(&Sha256::digest(query.as_bytes())[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paging from a query string, as the HTTP layer reads it.
    fn params(q: &str) -> Paging {
        let mut paging = Paging::default();
        for (key, value) in form_urlencoded::parse(q.as_bytes()) {
            match key.as_ref() {
                "pageSize" => paging.page_size = Some(value.parse().unwrap_or(u64::MAX)),
                "offset" => paging.offset = Some(value.parse().unwrap_or(u64::MAX)),
                _ => paging.page_token = Some(value.into_owned()),
            }
        }
        paging
    }

    #[test]
    fn tokens_round_trip_only_for_their_query() {
        let tokens = PageTokens::new(b"k".to_vec());
        let t = tokens.next_token("instances:p", "web-7");
        let page = tokens
            .page_request(&params(&format!("pageToken={t}")), "instances:p")
            .unwrap();
        assert_eq!(page.after.as_deref(), Some("web-7"));
        assert!(
            tokens
                .page_request(&params(&format!("pageToken={t}")), "instances:q")
                .is_err()
        );
    }

    #[test]
    fn forged_tokens_and_bad_sizes_are_refused() {
        let tokens = PageTokens::new(b"k".to_vec());
        let other = PageTokens::new(b"other".to_vec()).next_token("instances:p", "x");
        for q in [
            format!("pageToken={other}"),
            "pageToken=garbage".into(),
            "pageSize=0".into(),
            "pageSize=501".into(),
            format!(
                "pageToken={}&offset=3",
                tokens.next_token("instances:p", "a")
            ),
        ] {
            assert!(
                tokens.page_request(&params(&q), "instances:p").is_err(),
                "{q}"
            );
        }
        let page = tokens
            .page_request(&params("offset=5"), "instances:p")
            .unwrap();
        assert_eq!(
            (page.offset, page.with_total, page.limit),
            (Some(5), true, 50)
        );
    }

    #[test]
    fn a_cursor_with_a_guessed_short_tag_is_refused() {
        // The attack: choose a cursor, then try every one-byte tag until one matches the
        // first byte of the real tag. With the whole tag required, none of the 256 passes.
        let tokens = PageTokens::new(b"k".to_vec());
        let payload = URL_SAFE_NO_PAD.encode(format!("{}:zzz", query_digest("instances:p")));
        let passed = (0..=255u8)
            .filter(|byte| {
                let forged = format!("{payload}.{}", URL_SAFE_NO_PAD.encode([*byte]));
                tokens
                    .page_request(&params(&format!("pageToken={forged}")), "instances:p")
                    .is_ok()
            })
            .count();
        assert_eq!(passed, 0);
    }
}
